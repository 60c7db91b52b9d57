"""Evaluation: SER metrics with bootstrap confidence intervals (``emostore evaluate``).

Python API::

    from emostore.evaluate import evaluate_files, score_utterances, bootstrap_ci, paired_bootstrap

    ev = evaluate_files("pred.jsonl", "labels/ar.jsonl", n_boot=1000, seed=0)
    ev.metrics["macro_f1"].value, ev.metrics["macro_f1"].ci_low, ev.to_json()

    a = score_utterances(probs_a, train, test)     # arrays [n, C]
    b = score_utterances(probs_b, train, test)
    paired_bootstrap(a, b, "macro_f1").p_value     # one-sided: A better than B

Definitions: :mod:`emostore.evaluate.metrics` (metrics), :mod:`emostore.evaluate.bootstrap` (CIs,
paired test), :mod:`emostore.evaluate.files` (file formats and alignment).

The analysis of a whole sweep (leaderboard, cross-rule matrix, layer weights, probe curves,
report; pandas tables) lives in :mod:`emostore.analysis` and is reachable from here too::

    from emostore.evaluate import layer_weights, probe_curves, leaderboard, crossrule
"""

from emostore.evaluate.bootstrap import (
    Estimate,
    PairedResult,
    bootstrap_ci,
    paired_bootstrap,
    percentile_ci,
    replicate_metrics,
)
from emostore.evaluate.files import Evaluation, evaluate_files, format_table, read_predictions
from emostore.evaluate.metrics import (
    EPS,
    HIGHER_IS_BETTER,
    METRICS,
    EvaluationError,
    UtteranceScores,
    compute_metrics,
    evaluate_arrays,
    kl_divergence,
    score_utterances,
)

__all__ = [
    "EPS", "HIGHER_IS_BETTER", "METRICS", "Estimate", "Evaluation", "EvaluationError", "PairedResult",
    "UtteranceScores", "bootstrap_ci", "compute_metrics", "evaluate_arrays", "evaluate_files", "format_table",
    "kl_divergence", "paired_bootstrap", "percentile_ci", "read_predictions", "replicate_metrics",
    "score_utterances",
]


def __getattr__(name: str):
    """The sweep-level analysis functions of :mod:`emostore.analysis`, imported on first use
    (emostore.analysis imports this package, so not at import time)."""
    import emostore.analysis as analysis

    if name in analysis.__all__:
        return getattr(analysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
