"""Layer-wise analysis: learned weighted-sum layer weights and per-layer probe curves.

* Layer weights (EMO-SUPERB Fig. 4): the softmax weights a ``weighted-sum`` head learned over the
  encoder's layers (``layer_weights.json`` of each run), for the dev-selected weighted-sum setting
  of each (encoder, corpus, rule), as mean and std over folds and seeds. Layer 0 is the
  embedding output. :func:`layer_weight_matrix` lays them out as heat-map data, one row per
  (encoder, corpus, rule), one column per layer.
* Probe curves: the metric of one linear ``probe`` per layer (``layer`` in the run's config; a
  probe without one read the last stored layer), dev-selected per layer, scored from the runs'
  predictions on their own label set with a fold-averaged bootstrap CI
  (:func:`emostore.analysis.scoring.fold_mean`). Which layer carries the emotion information.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from emostore.analysis.runs import AnalysisError, NoData, done_runs, select_best, sort_keys
from emostore.analysis.scoring import check_metric, fold_mean
from emostore.evaluate.bootstrap import DEFAULT_BOOT

KEYS = ["encoder", "corpus", "rule"]


def _read_weights(path) -> tuple[list[int], list[float]]:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        layers, weights = [int(x) for x in obj["layers"]], [float(x) for x in obj["weights"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnalysisError(f"{path}: not a layer_weights.json ({exc})") from None
    if len(layers) != len(weights):
        raise AnalysisError(f"{path}: {len(layers)} layers but {len(weights)} weights")
    return layers, weights


def layer_weights(results) -> pd.DataFrame:
    """One row per (encoder, corpus, rule, layer): ``weight`` (mean over runs), ``std``, ``runs``, ``setting``.

    Raises :class:`AnalysisError` when no finished weighted-sum run has a ``layer_weights.json``.
    """
    runs = done_runs(results, head="weighted-sum")
    runs = runs[runs["layer_weights"].notna()]
    if runs.empty:
        raise NoData("no weighted-sum run with learned layer weights (layer_weights.json) in the results table")
    rows = []
    for key, group in select_best(runs, KEYS).groupby(KEYS, sort=True):
        read = [_read_weights(p) for p in group["layer_weights"]]
        layers = read[0][0]
        if any(lw[0] != layers for lw in read):
            raise AnalysisError(f"{'/'.join(key)}: runs of one setting have different layers "
                                f"({sorted({tuple(lw[0]) for lw in read})})")
        w = np.asarray([lw[1] for lw in read])
        for j, layer in enumerate(layers):
            rows.append({**dict(zip(KEYS, key)), "layer": layer, "weight": float(w[:, j].mean()),
                         "std": float(w[:, j].std(ddof=1)) if len(w) > 1 else np.nan, "runs": len(w),
                         "setting": group["setting"].iloc[0]})
    return sort_keys(pd.DataFrame(rows), [*KEYS, "layer"])


def group_labels(df: pd.DataFrame, keys=KEYS) -> pd.Series:
    """``whisper · emodb · mr`` per row, leaving out the keys that are the same on every row."""
    varying = [k for k in keys if df[k].nunique(dropna=False) > 1] or keys[:1]
    return df[varying].astype(str).agg(" · ".join, axis=1)


def layer_weight_matrix(weights: pd.DataFrame) -> pd.DataFrame:
    """Heat-map data from :func:`layer_weights`: rows = (encoder, corpus, rule) groups (labelled by
    what varies between them), columns = layer numbers, cells = mean weight (NaN where an encoder
    has no such layer)."""
    if weights.empty:
        raise AnalysisError("no layer weights to lay out")
    w = weights.assign(group=group_labels(weights))
    m = w.pivot(index="group", columns="layer", values="weight")
    m = m.reindex(list(dict.fromkeys(w["group"])))
    m.index.name, m.columns.name = "model", "layer"
    return m


def _probe_layer(run) -> int:
    """The layer a probe read: its config's, else the last layer its store recorded."""
    layer = run.get("layer")
    if layer is not None and not (isinstance(layer, float) and np.isnan(layer)):
        return int(layer)
    rec = Path(str(run.get("out_dir"))) / "run.json"
    try:
        layers = json.loads(rec.read_text(encoding="utf-8"))["store"]["layers"]
        return int(layers[-1])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise AnalysisError(f"run {run.get('run_id')}: probe without a layer and no store layers in {rec}") from None


def probe_curves(results, metric: str = "macro_f1", n_boot: int = DEFAULT_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per (encoder, corpus, rule, layer) of the probe runs: ``value``, ``ci_low``, ``ci_high``,
    ``folds``, ``runs``, ``n`` (utterances), ``setting``; sorted by layer within each curve.

    Raises :class:`AnalysisError` when the table has no finished probe run.
    """
    check_metric(metric)
    runs = done_runs(results, head="probe")
    runs = runs.assign(layer=[_probe_layer(r) for r in runs.to_dict("records")])
    rows = []
    for key, group in select_best(runs, [*KEYS, "layer"]).groupby([*KEYS, "layer"], sort=True):
        est = fold_mean(group, metric, n_boot=n_boot, seed=seed)
        rows.append({**dict(zip([*KEYS, "layer"], key)), **est, "setting": group["setting"].iloc[0]})
    out = sort_keys(pd.DataFrame(rows), [*KEYS, "layer"])
    out["layer"] = out["layer"].astype(int)
    out.attrs.update(metric=metric, n_boot=n_boot, seed=seed)
    return out
