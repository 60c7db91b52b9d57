"""One static HTML report of a sweep: leaderboard, cross-rule matrix, layer analysis, figures, failures.

Why one page: a sweep's results are read, shared and archived as a folder that opens anywhere. The
page is plain HTML with inline CSS and relative image paths, no JavaScript library and no network
URL; its only script (a few lines) writes how many images loaded into ``<body
data-images-loaded>``, so a headless browser can check the page. Next to it: the tables as files
(``leaderboard.md/.csv``, ``leaderboard_cells.csv``, ``crossrule.csv``, ``layers.csv``,
``layer_matrix.csv``, ``probes.csv``), every figure as PNG and SVG under ``plots/``, and
``summary.json``. A section whose runs are absent (no probe runs, a single rule...) is replaced by
a one-line note; any other problem (a missing label set, unreadable predictions) stops the report
with its error.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd

from emostore.analysis import plots
from emostore.analysis.crossrule import IDENTITY, crossrule, format_crossrule
from emostore.analysis.layer_files import layer_analysis, write_layer_files
from emostore.analysis.layers import group_labels, layer_weight_matrix
from emostore.analysis.formatting import html_table, number, with_ci
from emostore.analysis.leaderboard import board_from_cells, format_leaderboard, format_leaderboards, leaderboard_cells
from emostore.analysis.runs import (
    AnalysisError, NoData, done_runs, failed_runs, learning_curves, load_runs, plain, rule_order,
)
from emostore.analysis.scoring import check_metric, confusion_matrix
from emostore.evaluate import EvaluationError
from emostore.evaluate.bootstrap import DEFAULT_BOOT
from emostore.evaluate.files import LABELS
from emostore.evaluate.protocols import definition, pick_metrics, protocol_for_labels
from emostore.outputs import write_text
from emostore.sweep.results import progress_note

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 1.5rem 3rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
  border-bottom: 1px solid #ddd; padding-bottom: .2rem; } h3 { font-size: 1.05rem; }
p.meta, p.note { color: #555; } p.note { font-style: italic; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .88rem; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .8rem; padding-top: .3rem;
          white-space: normal; max-width: 1100px; }
td .note, th .note { color: #666; font-size: .75rem; }
tbody.below-rule { border-top: 3px double #666; } tr.rule th { text-align: left; font-weight: normal;
  font-style: italic; background: #fff7e6; }
h4 { font-size: .95rem; margin: 1.2rem 0 .2rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: right; white-space: nowrap; }
thead th { background: #f2f4f7; text-align: center; } tbody th { text-align: left; background: #fafbfc; }
td.text, th.text { text-align: left; white-space: normal; }
table.wide td { white-space: normal; text-align: left; }
.scroll { overflow-x: auto; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1rem; }
figure { margin: 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .8rem; color: #555; }
code { font-size: .85em; background: #f4f4f4; padding: 0 .2em; }
"""

SCRIPT = """<script>
/* Lets a headless browser check the page: how many images decoded, written on load. */
window.addEventListener("load", function () {
  var n = 0;
  for (var i = 0; i < document.images.length; i++) {
    if (document.images[i].complete && document.images[i].naturalWidth > 0) { n++; }
  }
  document.body.setAttribute("data-images-loaded", String(n));
});
</script>"""


def _text(v) -> str:
    v = plain(v)
    return "–" if v is None else str(v)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


class _Page:
    """Collects sections, figures and written files for one report folder."""

    def __init__(self, out: Path):
        self.out = out
        self.parts: list[str] = []
        self.files: list[Path] = []
        self.images = 0

    def write(self, name: str, text: str) -> Path:
        path = self.out / name
        write_text(path, text)
        self.files.append(path)
        return path

    def add(self, text: str) -> None:
        self.parts.append(text)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, paths: list[Path], kind: str, caption: str) -> str:
        self.files += paths
        png, svg = (p.relative_to(self.out).as_posix() for p in paths)
        w, h = (round(x * plots.DPI) for x in plots.SIZES[kind])
        self.images += 1
        return (f'<figure><a href="{html.escape(svg)}"><img src="{html.escape(png)}" width="{w}" height="{h}" '
                f'alt="{html.escape(caption)}"></a><figcaption>{html.escape(caption)} '
                f'(<a href="{html.escape(svg)}">SVG</a>)</figcaption></figure>')


def _leaderboard_section(page: _Page, runs: pd.DataFrame, metrics: tuple[str, ...],
                         by) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One leaderboard per metric (the protocol's primary first); the primary's board and cells."""
    cells = leaderboard_cells(runs, metrics[0], by=by)
    board = board_from_cells(cells)
    boards = [board, *[board_from_cells(leaderboard_cells(runs, m, by=by)) for m in metrics[1:]]]
    page.write("leaderboard.md", format_leaderboards(boards, "md"))
    page.write("leaderboard.csv", format_leaderboards(boards, "csv"))
    page.write("leaderboard_cells.csv", cells.to_csv(index=False))
    page.add('<h2 id="leaderboard">Leaderboard</h2>')
    for b in boards:
        if len(boards) > 1:
            page.add(f"<h3>{html.escape(LABELS[b.attrs['metric']])}</h3>")
        page.add('<div class="scroll">' + format_leaderboard(b, "html") + "</div>")
    header = ["encoder", "condition", "head", "selected setting", "mean dev loss", "settings compared", "folds",
              "runs"]
    rows = [[r.encoder, r.condition, r.head_used, r.setting, number(r.mean_dev_loss, 4), str(r.settings_compared),
             str(r.folds), str(r.n)] for r in cells.itertuples()]
    note = ("Settings chosen per cell by the lowest mean dev loss over their runs (never by a test score); "
            "settings of every head compete unless the report is split --by head. Settings compared: how many "
            "settings the selection chose among, the winner included.")
    page.add("<h3>Settings chosen per cell</h3>")
    page.add('<div class="scroll">' + html_table(header, rows, note, cls="wide") + "</div>")
    try:
        radar = page.figure(plots.radar_chart(board, page.out / "plots" / "radar"), "radar",
                            f"Encoders over conditions (radar), {LABELS[board.attrs['metric']]}; "
                            "marker shape = head of the cell")
        page.add(f'<div class="figs">{radar}</div>')
    except NoData as exc:
        page.note(str(exc))
    return board, cells


def _cells_section(page: _Page, runs: pd.DataFrame, cells: pd.DataFrame) -> None:
    page.add('<h2 id="cells">Per model: confusion matrices and learning curves</h2>')
    page.add('<p class="meta">Confusion counts are summed over the cell\'s runs (folds × seeds); '
             "rows are argmax targets, columns argmax predictions. Stars mark the epoch kept (lowest dev loss).</p>")
    figs = []
    for r in cells.itertuples():
        sub = runs[runs["run_id"].isin(r.run_ids.split())]
        name = _slug(f"{r.encoder}-{r.condition}")
        title = f"{r.encoder} · {r.condition} · {r.head_used}"
        cm = plots.confusion_plot(confusion_matrix(sub), page.out / "plots" / f"confusion-{name}", title)
        lc = plots.learning_curves_plot(learning_curves(sub), page.out / "plots" / f"learning-{name}", title)
        figs.append(page.figure(cm, "confusion", f"Confusion matrix, {title}"))
        figs.append(page.figure(lc, "learning_curves", f"Learning curves, {title}"))
    page.add(f'<div class="figs">{"".join(figs)}</div>')


def _crossrule_section(page: _Page, runs: pd.DataFrame, metric: str, n_boot: int, seed: int) -> pd.DataFrame | None:
    page.add('<h2 id="crossrule">Cross-rule matrix</h2>')
    try:
        cross = crossrule(runs, metric, n_boot=n_boot, seed=seed)
    except NoData as exc:
        page.note(str(exc))
        return None
    page.write("crossrule.csv", format_crossrule(cross, "csv"))
    page.add(f'<p class="meta">One matrix per encoder, corpus and head (the head\'s dev-selected setting per '
             f"training rule); bootstrap seed {seed}.</p>")
    page.add('<div class="scroll">' + format_crossrule(cross, "html") + "</div>")
    return cross


def _crosscorpus_section(page: _Page, runs: pd.DataFrame, n_boot: int, seed: int) -> int:
    """EmoBox Table 5: train x test matrices of the cross-corpus runs (emostore.crosscorpus.matrix)."""
    from emostore.crosscorpus.matrix import cross_matrix, format_matrix

    page.add('<h2 id="crosscorpus">Cross-corpus matrix</h2>')
    try:
        long = cross_matrix(runs, n_boot=n_boot, seed=seed)
    except NoData as exc:
        page.note(str(exc))
        return 0
    page.write("crosscorpus.csv", format_matrix(long, "csv"))
    page.add('<p class="meta">Train on the row\'s corpus (all its clips of the shared classes, dev = random 20 %), '
             "test on the column's balanced set over angry / happy / neutral / sad; per encoder and head the "
             f"setting with the lowest dev loss; bootstrap seed {seed}.</p>")
    page.add('<div class="scroll">' + format_matrix(long, "html") + "</div>")
    return int(long.groupby(["encoder", "head"]).ngroups)


def _catalog_section(page: _Page, runs: pd.DataFrame) -> None:
    """What the labs behind the runs' stores hold (emostore.lab.catalog)."""
    from emostore.lab.catalog import catalog, rows_for_table

    from emostore.crosscorpus.matrix import cross_record

    stores = set(runs["store"].dropna())
    for s in list(stores):  # a cross-corpus run's store is derived: its sources are in the lab
        stores |= {v["path"] for v in (cross_record(s) or {}).get("stores", {}).values()}
    labs = sorted({str(Path(s).parent.parent) for s in stores if (Path(s).parent / "manifest.jsonl").is_file()})
    if not labs:
        return
    page.add('<h2 id="catalog">Lab catalog</h2>')
    for lab in labs:
        header, body = rows_for_table(catalog(lab))
        page.add('<div class="scroll">' + html_table(header, body, f"lab {lab}") + "</div>")


def _layers_section(page: _Page, runs: pd.DataFrame, metric: str, n_boot: int, seed: int) -> dict:
    page.add('<h2 id="layers">Layer analysis</h2>')
    found = {}
    try:
        la = write_layer_files(layer_analysis(runs, metric, n_boot=n_boot, seed=seed), page.out, page.out / "plots")
    except NoData as exc:
        page.note(str(exc))
        return found
    page.files += list(la.tables.values())
    for note in la.notes:
        page.note(note)
    weights, curves = la.weights, la.probes
    if weights is not None:
        page.add("<h3>Learned layer weights (weighted-sum heads)</h3>")
    if la.matrix is not None:
        matrix = la.matrix
        header = ["model \\ layer", *[str(c) for c in matrix.columns]]
        rows = [[i, *[number(v, 3) for v in r]] for i, r in zip(matrix.index, matrix.to_numpy())]
        caption = ("Mean softmax weight over folds and seeds of the dev-selected weighted-sum setting; layer 0 = "
                   "embeddings; –: the encoder has no such layer. A flat row near 1/L barely moved from the "
                   "uniform start.")
        page.add('<div class="scroll">' + html_table(header, rows, caption) + "</div>")
        figs = [page.figure(paths, "layer_weights", f"{key[len('layer-weights-'):]}: layer weights per layer "
                            "(EMO-SUPERB Fig. 4 style), error bars = std over runs")
                for key, paths in la.figures.items() if key.startswith("layer-weights-")]
        if "layer-heatmap" in la.figures:
            figs.append(page.figure(la.figures["layer-heatmap"], "layer_heatmap",
                                    "Layer weights heat map (encoders with several layers; colour scale from 0)"))
        page.add(f'<div class="figs">{"".join(figs)}</div>')
    if weights is not None:
        found["layer_weights"] = len(layer_weight_matrix(weights))
    if curves is not None:
        page.add("<h3>Per-layer linear probes</h3>")
        labels = group_labels(curves)
        header = ["model", "layer", f"{LABELS[metric]} [95% CI]", "folds", "runs", "utterances"]
        rows = [[g, str(r.layer), with_ci(r.value, r.ci_low, r.ci_high), str(r.folds), str(r.runs), str(r.n)]
                for g, r in zip(labels, curves.itertuples())]
        caption = (f"{definition(metric)}, of a linear probe on one layer (dev-selected per layer), mean over folds "
                   f"and seeds [95% bootstrap CI, {n_boot} replicates]; utterances: test utterances scored.")
        page.add('<div class="scroll">' + html_table(header, rows, caption) + "</div>")
        fig = page.figure(la.figures["probe-curves"], "probe_curves", "Probe metric per layer, 95% CI band")
        page.add(f'<div class="figs">{fig}</div>')
        found["probe_curves"] = int(labels.nunique())
    return found


def _failed_section(page: _Page, failed: pd.DataFrame) -> None:
    page.add(f'<h2 id="failed">Failed runs ({len(failed)})</h2>')
    if failed.empty:
        page.note("No run failed.")
        return
    header = ["run", "head", "fold", "seed", "error"]
    rows = [[r.run_id, _text(r.head), _text(r.fold), _text(r.seed), _text(r.error)] for r in failed.itertuples()]
    caption = "Runs that stopped with an error (error.json); they count in no table above. –: not set."
    page.add('<div class="scroll">' + html_table(header, rows, caption, cls="wide") + "</div>")


def _partial(results) -> str:
    """`` (partial: 9 of 60 planned runs finished, ...)`` for a sweep in progress, else nothing."""
    note = progress_note(results)
    return f" (<strong>partial</strong>: {html.escape(note)})" if note else ""


def write_report(results, out_dir: str | Path, metric: str | None = None, n_boot: int = DEFAULT_BOOT, seed: int = 0,
                 title: str = "emostore sweep report", protocol: str | None = None, by=None) -> pd.DataFrame:
    """Write ``index.html`` and its tables, figures and ``summary.json`` to ``out_dir`` (module doc).

    ``results``: a sweep directory, its results.sqlite or the table as a DataFrame. ``metric``: one
    metric; without it the ``protocol``'s metrics (default: by the runs' label sets,
    :func:`~emostore.evaluate.protocols.protocol_for_labels`), one
    leaderboard each, the first (primary) also for the cross-rule matrices and probe curves.
    ``by``: extra condition columns of the leaderboard (e.g. ``["head"]``). Returns the files
    written (``path``, ``bytes``), ``index.html`` last.
    """
    all_runs = load_runs(results)
    if metric is None and protocol is None:
        protocol = protocol_for_labels(all_runs["labels"].tolist())
    try:
        metrics = pick_metrics(metric, protocol)
    except EvaluationError as exc:
        raise AnalysisError(str(exc)) from None
    metric = check_metric(metrics[0])
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    runs = done_runs(all_runs)
    failed = failed_runs(all_runs)
    page = _Page(out)
    board, cells = _leaderboard_section(page, runs, metrics, by)
    cross = _crossrule_section(page, runs, metric, n_boot, seed)
    found = _layers_section(page, runs, metric, n_boot, seed)
    crosscorpus = _crosscorpus_section(page, runs, n_boot, seed)
    _catalog_section(page, runs)
    _cells_section(page, runs, cells)
    _failed_section(page, failed)

    summary = {
        "metric": metric, "metrics": list(metrics), "protocol": protocol,
        "by": list(by or []), "n_boot": n_boot, "seed": seed,
        "runs": {"done": len(runs), "failed": len(failed)}, "partial": progress_note(results),
        "encoders": sorted(runs["encoder"].unique()), "corpora": sorted(runs["corpus"].unique()),
        "rules": rule_order(runs["rule"].dropna()),
        "leaderboard": [{"encoder": enc, "average": None if pd.isna(r["Average"]) else float(r["Average"]),
                         "rank": None if pd.isna(r["Rank"]) else int(r["Rank"]), "cells": int(r["Cells"]),
                         "partial_average": None if pd.isna(r["Partial average"]) else float(r["Partial average"])}
                        for enc, r in board.iterrows()],
        "crossrule_matrices": 0 if cross is None else int(cross.groupby(IDENTITY).ngroups),
        "crosscorpus_matrices": crosscorpus,
        **found,
    }
    page.write("summary.json", json.dumps(summary, indent=1) + "\n")

    sections = [("leaderboard", "Leaderboard"), ("crossrule", "Cross-rule"), ("layers", "Layers"), ("crosscorpus", "Cross-corpus"),
                ("cells", "Per model"), ("failed", "Failed runs")]
    nav = " · ".join(f'<a href="#{a}">{t}</a>' for a, t in sections)
    files = " · ".join(f'<a href="{html.escape(p.name)}">{html.escape(p.name)}</a>'
                       for p in page.files if p.parent == out)
    head = (f"<h1>{html.escape(title)}</h1>"
            f'<p class="meta">{len(runs)} finished and {len(failed)} failed runs{_partial(results)}; encoders: '
            f"{html.escape(', '.join(summary['encoders']))}; corpora: {html.escape(', '.join(summary['corpora']))}; "
            f"rules: {html.escape(', '.join(summary['rules']))}. Metrics: "
            f"{html.escape('; '.join(definition(m) for m in metrics))}.</p>"
            f'<p class="meta">{nav}</p><p class="meta">Files: {files}</p>')
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
           f'<body data-images-total="{page.images}">\n{head}\n' + "\n".join(page.parts)
           + f"\n{SCRIPT}\n</body></html>\n")
    page.write("index.html", doc)
    return pd.DataFrame({"path": [str(p) for p in page.files], "bytes": [p.stat().st_size for p in page.files]})
