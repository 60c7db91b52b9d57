"""Score runs' predictions on a label set: per run, per fold, and averaged over folds with a bootstrap CI.

A run predicts only its fold's test part while a label set covers the whole corpus, so each run is
scored with :func:`emostore.evaluate.evaluate_files` restricted to its fold's test ids (read from
the run's partition). Any label set can be given, not only the one the run trained on: that is
what the cross-rule matrix needs.

Averaging: the mean over a fold's runs (seeds), then the mean over folds (every fold weighs the
same, as in the papers' cross-validation tables). CI: the percentile bootstrap of that same mean.
Each fold resamples its own test utterances (seed ``seed + k`` for the k-th fold in name order), and
the runs of one fold share the draws (same utterances, same seed); the replicate values are
averaged exactly like the point values. With a single run this is :func:`evaluate_files`' own CI.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from emostore.analysis.runs import AnalysisError
from emostore.evaluate import EvaluationError, Evaluation, evaluate_files, percentile_ci, replicate_metrics
from emostore.evaluate.bootstrap import DEFAULT_BOOT
from emostore.evaluate.metrics import METRICS


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise AnalysisError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return metric


@functools.lru_cache(maxsize=32)
def _partition(path: str):
    from emostore.manifests.partitions import read_partition

    return read_partition(path)


def fold_test_ids(partition: str, fold: str) -> list[str]:
    """The test ids of ``fold`` in the partition file ``partition``."""
    if not isinstance(partition, str) or not isinstance(fold, str):
        raise AnalysisError(f"a run needs its partition and fold to be scored (got {partition!r}, {fold!r})")
    part = _partition(partition)
    if fold not in part.folds:
        raise AnalysisError(f"{partition}: no fold {fold!r} (folds: {', '.join(part.folds)})")
    return list(part.folds[fold]["test"])


def evaluate_run(run, labels: str | None = None, n_boot: int = 0, seed: int = 0) -> Evaluation:
    """:func:`evaluate_files` of one run (a results-table row) on ``labels`` (default: its own label set)."""
    run_id = run.get("run_id")
    pred = run.get("predictions")
    if not isinstance(pred, str) or not Path(pred).exists():
        raise AnalysisError(f"run {run_id}: no predictions file ({pred})")
    labels = labels if labels is not None else run.get("labels")
    if not isinstance(labels, str) or not Path(labels).exists():
        raise AnalysisError(f"run {run_id}: label set {labels} does not exist")
    ids = fold_test_ids(run.get("partition"), run.get("fold"))
    try:
        return evaluate_files(pred, labels, n_boot=n_boot, seed=seed, ids=ids)
    except EvaluationError as exc:
        raise AnalysisError(f"run {run_id} scored on {labels}: {exc}") from None


def metric_values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's test ``metric`` on its own label set: the table's column, else scored from predictions."""
    check_metric(metric)
    values = runs[metric].astype(float) if metric in runs else pd.Series(np.nan, index=runs.index)
    for i in values.index[values.isna()]:
        values[i] = evaluate_run(runs.loc[i].to_dict()).metrics[metric].value
    return values


def fold_mean(runs: pd.DataFrame, metric: str, labels: str | None = None, n_boot: int = DEFAULT_BOOT,
              seed: int = 0) -> dict:
    """Metric of ``runs`` on ``labels`` averaged over seeds then folds, with its bootstrap CI (module doc).

    Returns ``value``, ``ci_low``, ``ci_high`` (NaN without a bootstrap), ``folds``, ``runs`` and
    ``n`` (test utterances scored, summed over folds).
    """
    check_metric(metric)
    if runs.empty:
        raise AnalysisError("no run to score")
    fold_values, fold_reps, n = [], [], 0
    for k, (_, group) in enumerate(runs.groupby("fold", sort=True, dropna=False)):
        values, reps = [], []
        for run in group.to_dict("records"):
            ev = evaluate_run(run, labels)
            values.append(ev.metrics[metric].value)
            if n_boot:
                reps.append(replicate_metrics(ev.scores, n_boot, seed + k)[metric])
        n += ev.n
        fold_values.append(float(np.mean(values)))
        if n_boot:
            fold_reps.append(np.mean(reps, axis=0))
    lo = hi = math.nan
    if n_boot:
        lo, hi = percentile_ci(np.mean(fold_reps, axis=0))
    return {"value": float(np.mean(fold_values)), "ci_low": lo, "ci_high": hi,
            "folds": len(fold_values), "runs": len(runs), "n": n}


def confusion_matrix(runs: pd.DataFrame) -> pd.DataFrame:
    """Counts of (true class = argmax target, predicted class = argmax prediction), summed over ``runs``.

    Each run is scored on its own label set's kept test utterances of its fold; rows are true
    classes, columns predicted classes, in the label set's class order (ties: first class, as in
    the single-label metrics). Summed over folds and seeds: a count is (run, utterance) pairs.
    """
    total, classes = None, None
    for run in runs.to_dict("records"):
        ev = evaluate_run(run)
        if classes is not None and ev.classes != classes:
            raise AnalysisError(f"run {run['run_id']}: classes {ev.classes} differ from {classes}")
        classes = ev.classes
        c = len(classes)
        counts = np.bincount(ev.scores.y_true * c + ev.scores.y_pred, minlength=c * c).reshape(c, c)
        total = counts if total is None else total + counts
    if total is None:
        raise AnalysisError("no run to draw a confusion matrix from")
    return pd.DataFrame(total, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))
