"""What ``emostore train`` prints when a run ends: test metrics with bootstrap CIs, the
last-epoch warning, and the mean over folds for ``--fold all``.

The point values are the ``test_metrics`` of run.json (the same utterances: the fold's test
predictions on the label set's kept rows); the CIs come from :mod:`emostore.evaluate.bootstrap`.
"""

from __future__ import annotations

import numpy as np

from emostore.evaluate.bootstrap import DEFAULT_BOOT, Estimate, bootstrap_ci
from emostore.evaluate.files import LABELS
from emostore.evaluate.metrics import METRICS, score_utterances
from emostore.heads.loop import RunResult

F1_NOTE = ("macro_f1 is EMO-SUPERB's multi-label macro-F1 (a class counts as predicted when its share "
           "> 1/C); macro_f1_single takes the argmax class")


def test_estimates(result: RunResult, records, n_boot: int = DEFAULT_BOOT,
                   seed: int = 0) -> tuple[dict[str, Estimate], int]:
    """(metric -> Estimate with a 95% percentile CI, n) on the run's kept test utterances; ({}, 0) if none."""
    probs = dict(zip(result.test_ids, result.test_probs))
    kept = [r for r in records if r.excluded is None and r.id in probs]
    if not kept:
        return {}, 0
    scores = score_utterances(np.stack([probs[r.id] for r in kept]), np.asarray([r.train for r in kept]),
                              np.asarray([r.test for r in kept]))
    return bootstrap_ci(scores, n_boot=n_boot, seed=seed), len(kept)


test_estimates.__test__ = False  # not a pytest test


def format_estimates(est: dict[str, Estimate], n: int, n_boot: int = DEFAULT_BOOT) -> str:
    """One line per metric: key, value, 95% CI, what it is; then which macro-F1 is which."""
    if not est:
        return "test metrics: no labelled test utterances in this fold"
    width = max(len(k) for k in METRICS)
    lines = [f"test metrics on {n} utterances (as in run.json; 95% CI: percentile bootstrap, {n_boot} resamples):"]
    for k in METRICS:
        e = est[k]
        ci = f"[{e.ci_low:.4f}, {e.ci_high:.4f}]" if e.ci_low is not None and np.isfinite(e.ci_low) else ""
        lines.append(f"  {k:<{width}}  {e.value:.4f}  {ci:<16}  {LABELS[k]}")
    lines.append(f"  ({F1_NOTE})")
    return "\n".join(lines)


def last_epoch_warning(result: RunResult) -> str | None:
    """A warning when the kept epoch is the last one trained: the dev loss was still falling."""
    n = len(result.dev_losses)
    if n > 1 and result.selected_epoch == n:
        return (f"warning: the kept epoch is the last one ({n} of {n}): the dev loss was still falling; "
                f"train longer (--epochs) or with a higher --lr")
    return None


def fold_mean(per_fold: dict[str, dict[str, Estimate]]) -> str:
    """Mean (and min..max) of each metric's point value over the folds that have test utterances."""
    folds = {f: est for f, est in per_fold.items() if est}
    if not folds:
        return "mean over folds: no fold has labelled test utterances"
    width = max(len(k) for k in METRICS)
    lines = [f"mean over {len(folds)} fold{'s' if len(folds) > 1 else ''} ({', '.join(folds)}):"]
    for k in METRICS:
        v = np.array([est[k].value for est in folds.values()], dtype=np.float64)
        lines.append(f"  {k:<{width}}  {np.nanmean(v):.4f}  (min {np.nanmin(v):.4f}, max {np.nanmax(v):.4f})"
                     f"  {LABELS[k]}")
    return "\n".join(lines)
