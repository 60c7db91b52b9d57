"""Is model A better than model B? The paired bootstrap test on two predictions files.

Both files are scored on the same label set (optionally restricted to one fold's test ids, since a
run predicts only its fold) with :func:`emostore.evaluate.evaluate_files`, then compared with
:func:`emostore.evaluate.paired_bootstrap`: both are resampled with the same draws, ``delta > 0``
means A is better (sign flipped for the lower-is-better metrics), and ``p_value`` is the one-sided
p-value of "A is better than B".
"""

from __future__ import annotations

import pandas as pd

from emostore.analysis.runs import AnalysisError
from emostore.analysis.scoring import check_metric, fold_test_ids
from emostore.evaluate import EvaluationError, evaluate_files, paired_bootstrap
from emostore.evaluate.bootstrap import DEFAULT_BOOT


def compare_predictions(pred_a, pred_b, labels, metric: str = "macro_f1", n_boot: int = DEFAULT_BOOT, seed: int = 0,
                        partition: str | None = None, fold: str | None = None) -> pd.DataFrame:
    """One row: ``metric``, ``a``, ``b``, ``delta``, ``ci_low``, ``ci_high`` (of delta), ``p_value``,
    ``n_boot``, ``n`` (utterances). ``partition`` and ``fold`` together restrict to that fold's test ids."""
    check_metric(metric)
    if (partition is None) != (fold is None):
        raise AnalysisError("give both the partition and the fold, or neither")
    ids = fold_test_ids(str(partition), fold) if partition is not None else None
    try:
        a = evaluate_files(pred_a, labels, n_boot=0, ids=ids)
        b = evaluate_files(pred_b, labels, n_boot=0, ids=ids)
        res = paired_bootstrap(a.scores, b.scores, metric, n_boot=n_boot, seed=seed)
    except EvaluationError as exc:
        hint = ("; a run predicts only its fold's test part: add the partition and fold"
                if ids is None and "have no prediction" in str(exc) else "")
        raise AnalysisError(f"{exc}{hint}") from None
    return pd.DataFrame([{**res.to_json(), "n": a.n, "seed": seed}])
