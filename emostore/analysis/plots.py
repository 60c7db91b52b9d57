"""Figures of the analysis tables, written as PNG (for pages) and SVG (for papers).

Each function draws one DataFrame that another module of :mod:`emostore.analysis` returns, so a
figure always shows exactly the numbers of its table. Figures are drawn on matplotlib's Agg canvas
directly (``Figure`` + ``FigureCanvasAgg``, no pyplot), so importing this module changes no global
backend and works without a display. Every figure has a fixed size (``SIZES``, inches, at ``DPI``),
so a PNG is always ``SIZES[kind] * DPI`` pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from emostore.analysis.layers import group_labels
from emostore.analysis.runs import AnalysisError, NoData
from emostore.evaluate.files import LABELS
from emostore.evaluate.metrics import HIGHER_IS_BETTER

DPI = 100
SIZES = {  # (width, height) in inches
    "radar": (6.4, 5.6),
    "confusion": (5.2, 4.4),
    "layer_weights": (8.0, 4.0),
    "layer_heatmap": (8.0, 4.0),
    "probe_curves": (8.0, 4.0),
    "learning_curves": (6.4, 4.0),
}
FORMATS = ("png", "svg")


def _figure(kind: str) -> Figure:
    fig = Figure(figsize=SIZES[kind], dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (parents created); the paths written."""
    from emostore.outputs import atomic_path

    stem = Path(stem)
    out = []
    for fmt in FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
        out.append(path)
    return out


def _legend_below(ax, entries: int, columns: int = 3) -> None:
    """The legend under the axes, so it never hides data."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=max(1, min(columns, entries)), fontsize=8,
              frameon=False)


def _metric_name(metric: str) -> str:
    return LABELS.get(metric, metric)


HEAD_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def dodge(k: int, n: int, span: float = 0.3) -> float:
    """x offset of series ``k`` of ``n`` drawn around one integer position (0 for a single series)."""
    return 0.0 if n < 2 else span * (k / (n - 1) - 0.5)


def run_labels(runs: pd.DataFrame, columns=("fold", "seed")) -> dict[str, str]:
    """Legend text per ``run_id``: the settings that differ between the runs (``fold1 seed 0``),
    never the run id itself (long, and a hash that says nothing)."""
    per_run = runs.drop_duplicates("run_id").set_index("run_id")
    varying = [c for c in columns if c in per_run and per_run[c].nunique(dropna=False) > 1] or \
        [c for c in columns if c in per_run][:1]
    out = {}
    for run_id, r in per_run.iterrows():
        parts = [str(r[c]) if c == "fold" else f"{c} {r[c]}" for c in varying]
        out[run_id] = " ".join(parts) or str(run_id)
    return out


def radar_chart(board: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Encoders over conditions (the :func:`~emostore.analysis.leaderboard.leaderboard` table): one
    polygon (colour) per encoder, one spoke per condition, the marker shape of each point = the head
    that won that cell. Needs at least 3 corpora: with fewer the spokes are rules or heads of one or
    two corpora, and a polygon's area would suggest a breadth the sweep does not have."""
    conditions, metric = board.attrs["conditions"], board.attrs["metric"]
    corpora = board.attrs.get("corpora") or []
    if len(corpora) < 3:
        raise NoData(f"no radar chart: it needs at least 3 corpora and this leaderboard has {len(corpora)} "
                     f"({', '.join(corpora)}); the table above holds every number")
    heads = sorted({h for c in conditions for h in board.get(f"{c} head", pd.Series(dtype=object)).dropna()})
    marker = {h: HEAD_MARKERS[i % len(HEAD_MARKERS)] for i, h in enumerate(heads)}
    fig = _figure("radar")
    ax = fig.add_subplot(projection="polar")
    angles = np.linspace(0, 2 * np.pi, len(conditions), endpoint=False)
    closed = np.append(angles, angles[0])
    for enc, r in board.iterrows():
        v = r[conditions].to_numpy(dtype=float)
        line, = ax.plot(closed, np.append(v, v[0]), label=str(enc))
        ax.fill(closed, np.append(v, v[0]), alpha=0.1, color=line.get_color())
        for angle, value, c in zip(angles, v, conditions):
            head = r.get(f"{c} head")
            if np.isfinite(value):
                ax.plot([angle], [value], marker=marker.get(head, "o"), color=line.get_color(), linestyle="none")
    for h in heads:  # marker legend entries, in black
        ax.plot([], [], marker=marker[h], color="black", linestyle="none", label=f"head: {h}")
    ax.set_xticks(angles, conditions)
    ax.tick_params(axis="x", pad=10)
    top = np.nanmax(board[conditions].to_numpy(dtype=float))
    ax.set_ylim(0, top * 1.15 if np.isfinite(top) and top > 0 else None)  # keep points off the rim labels
    ax.set_rlabel_position(float(np.degrees(np.pi / len(conditions))))  # between the first two spokes
    ax.tick_params(axis="y", labelsize=8, labelcolor="grey")
    ax.set_title(_metric_name(metric), fontsize=10, pad=22)
    _legend_below(ax, len(board) + len(heads))
    return save(fig, stem)


def confusion_plot(matrix: pd.DataFrame, stem: str | Path, title: str | None = None) -> list[Path]:
    """A confusion matrix (:func:`~emostore.analysis.scoring.confusion_matrix`): colour = share of the
    true class (row-normalised recall), text = counts."""
    counts = matrix.to_numpy()
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = _figure("confusion")
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=8)
    ax.set_xlabel("predicted (argmax)")
    ax.set_ylabel("true (argmax of target)")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="share of true class")
    return save(fig, stem)


def layer_weights_plot(weights: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Learned layer weights of ONE encoder (:func:`~emostore.analysis.layers.layer_weights`),
    EMO-SUPERB Fig. 4 style: one bar per layer, grouped by model (corpus, rule), error bars = std
    over runs, the uniform start 1/L dotted. One encoder per figure: encoders have different layer
    counts and so different uniform levels, and one axis for all hides the smaller profile."""
    encoders = weights["encoder"].unique()
    if len(encoders) != 1:
        raise AnalysisError(f"one layer-weight figure per encoder; got {', '.join(map(str, encoders))} "
                            "(use layer_weights_plots)")
    w = weights.assign(group=group_labels(weights, ["corpus", "rule"]))
    groups = list(dict.fromkeys(w["group"]))
    fig = _figure("layer_weights")
    ax = fig.add_subplot()
    width = 0.8 / len(groups)
    for k, g in enumerate(groups):
        sub = w[w["group"] == g]
        x = sub["layer"].to_numpy() - 0.4 + width * (k + 0.5)
        ax.bar(x, sub["weight"], width, yerr=sub["std"].fillna(0), capsize=2, label=g)
    layers = sorted(w["layer"].unique())
    ax.axhline(1.0 / len(layers), color="grey", linestyle=":", linewidth=1, label=f"uniform start 1/{len(layers)}")
    ax.set_xticks(layers, [str(x) for x in layers])
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("weight (softmax)")
    ax.set_title(f"{encoders[0]}: learned layer weights (weighted-sum head)", fontsize=9)
    _legend_below(ax, len(groups) + 1)
    return save(fig, stem)


def layer_weights_plots(weights: pd.DataFrame, stem: str | Path) -> tuple[dict[str, list[Path]], list[str]]:
    """:func:`layer_weights_plot` per encoder, written to ``stem-<encoder>``: the figures by encoder,
    and the encoders left out because they have a single layer (its weight is 1 by construction)."""
    stem = Path(stem)
    figures, single = {}, []
    for enc, sub in weights.groupby("encoder", sort=True):
        if sub["layer"].nunique() < 2:
            single.append(str(enc))
            continue
        slug = "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in str(enc))
        figures[str(enc)] = layer_weights_plot(sub, stem.with_name(f"{stem.name}-{slug}"))
    return figures, single


def layer_heatmap(matrix: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Layer weights as a heat map (:func:`~emostore.analysis.layers.layer_weight_matrix`): rows =
    models, columns = layers; blank where a model has no such layer. The colour scale starts at 0
    (a weight's colour is proportional to it: 0.16 vs 0.27 must not read as black vs yellow)."""
    values = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    fig = _figure("layer_heatmap")
    ax = fig.add_subplot()
    top = float(values.max()) if values.count() else 1.0
    im = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(top, 1e-12))
    if values.size <= 200:
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if not values.mask[i, j]:
                    dark = im.norm(values[i, j]) < 0.6  # viridis is dark at the low end
                    ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index], fontsize=8)
    ax.set_xlabel("layer (0 = embeddings)")
    fig.colorbar(im, ax=ax, label="weight (scale from 0)")
    return save(fig, stem)


def probe_curves_plot(curves: pd.DataFrame, stem: str | Path) -> list[Path]:
    """Metric vs layer (:func:`~emostore.analysis.layers.probe_curves`): one line per model, the 95%
    bootstrap CI as a band. Models are drawn side by side around each layer (:func:`dodge`) with
    their own marker, so curves with equal values (e.g. MR/PR/AR on a single-label corpus) stay
    visible instead of hiding each other."""
    metric = curves.attrs.get("metric", "macro_f1")
    c = curves.assign(group=group_labels(curves))
    fig = _figure("probe_curves")
    ax = fig.add_subplot()
    groups = list(dict.fromkeys(c["group"]))
    for k, g in enumerate(groups):
        sub = c[c["group"] == g].sort_values("layer")
        x = sub["layer"].to_numpy(dtype=float) + dodge(k, len(groups))
        line, = ax.plot(x, sub["value"], marker=HEAD_MARKERS[k % len(HEAD_MARKERS)], label=g)
        if sub["ci_low"].notna().any():
            ax.fill_between(x, sub["ci_low"], sub["ci_high"], color=line.get_color(), alpha=0.2)
    layers = sorted(c["layer"].unique())
    ax.set_xticks(layers, [str(x) for x in layers])
    ax.set_xlabel("layer (0 = embeddings)")
    arrow = "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓"
    ax.set_ylabel(f"{_metric_name(metric)} {arrow}", fontsize=8)
    ax.set_title(f"linear probe per layer: {_metric_name(metric)}, 95% CI", fontsize=9)
    _legend_below(ax, c["group"].nunique())
    return save(fig, stem)


def learning_curves_plot(curves: pd.DataFrame, stem: str | Path, title: str | None = None) -> list[Path]:
    """Train (dashed) and dev (solid) loss per epoch (:func:`~emostore.analysis.runs.learning_curves`),
    one colour per run, labelled by what differs between the runs (fold, seed: :func:`run_labels`),
    the selected epoch (lowest dev loss) marked with a star; line styles explained once."""
    fig = _figure("learning_curves")
    ax = fig.add_subplot()
    names = run_labels(curves)
    for run_id, sub in curves.groupby("run_id", sort=True):
        line, = ax.plot(sub["epoch"], sub["dev_loss"], label=names[run_id])
        ax.plot(sub["epoch"], sub["train_loss"], linestyle="--", color=line.get_color())
        sel = sub[sub["selected"]]
        ax.plot(sel["epoch"], sel["dev_loss"], marker="*", markersize=12, linestyle="none",
                color=line.get_color())
    ax.plot([], [], color="black", label="dev (solid)")
    ax.plot([], [], color="black", linestyle="--", label="train (dashed)")
    ax.plot([], [], marker="*", markersize=10, linestyle="none", color="black", label="selected epoch")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (class-weighted CE)")
    if title:
        ax.set_title(title, fontsize=9)
    _legend_below(ax, curves["run_id"].nunique() + 3, columns=4)
    return save(fig, stem)
