"""Evaluation: SER metrics with bootstrap confidence intervals (``emostore evaluate``).

Python API::

    from emostore.evaluate import evaluate_files, score_utterances, bootstrap_ci, paired_bootstrap

    ev = evaluate_files("pred.jsonl", "labels/ar.jsonl", seed=0)  # n_boot: DEFAULT_BOOT replicates
    ev.metrics["macro_f1"].value, ev.metrics["macro_f1"].ci_low, ev.to_json()

    a = score_utterances(probs_a, train, test)     # arrays [n, C]
    b = score_utterances(probs_b, train, test)
    paired_bootstrap(a, b, "macro_f1").p_value     # one-sided: A better than B

Definitions: :mod:`emostore.evaluate.metrics` (metrics), :mod:`emostore.evaluate.bootstrap` (CIs,
paired test), :mod:`emostore.evaluate.files` (file formats and alignment).

The analysis of a whole sweep (leaderboard, cross-rule matrix, layer weights, probe curves,
report; pandas tables) lives in :mod:`emostore.analysis`, which builds on this package (never the
other way round).
"""

from emostore.evaluate.bootstrap import (
    Estimate,
    PairedResult,
    bootstrap_ci,
    paired_bootstrap,
    percentile_ci,
    replicate_metrics,
)
from emostore.evaluate.files import Evaluation, evaluate_files, format_evaluation, read_predictions
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
    "UtteranceScores", "bootstrap_ci", "compute_metrics", "evaluate_arrays", "evaluate_files", "format_evaluation",
    "kl_divergence", "paired_bootstrap", "percentile_ci", "read_predictions", "replicate_metrics",
    "score_utterances",
]

