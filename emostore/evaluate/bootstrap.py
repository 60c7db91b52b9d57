"""Bootstrap confidence intervals and the paired bootstrap test, by utterance resampling.

A replicate draws n utterances with replacement from the n test utterances (``numpy.random.default_rng(seed)``,
so a (seed, n_boot, n) triple always gives the same replicates) and recomputes every metric on the
drawn multiset. Because each metric is a function of per-utterance sums
(:meth:`~emostore.evaluate.metrics.UtteranceScores.per_utterance`), a replicate is a vector of counts
``w`` (how often each utterance was drawn) and its sums are ``w @ columns``: the corpus is never copied.

* CI: the percentile method (Efron & Tibshirani 1993, ch. 13): the ``alpha/2`` and ``1 - alpha/2``
  quantiles of the replicate values (``numpy.quantile``, linear interpolation), 95% by default.
  Replicates where a metric is undefined (e.g. UA when no class occurs, impossible for n >= 1)
  are dropped for that metric.
* Paired test (Koehn 2004; Berg-Kirkpatrick et al. 2012): runs A and B scored on the *same*
  utterances share each replicate's draw; ``delta = m(A) - m(B)`` (sign flipped for lower-is-better
  metrics, so ``delta > 0`` always means A is better). The one-sided p-value for "A is better than
  B" counts the replicates where A is *not* better, ties half, with the observed sample as one more
  (Davison & Hinkley 1997, eq. 4.11): ``p = (1 + #(delta < 0) + #(delta == 0) / 2) / (n_boot + 1)``.
  Identical runs give (1 + B/2) / (B + 1), about 0.5; a run better in every replicate gets the smallest value
  ``n_boot`` replicates can give, ``1 / (n_boot + 1)`` (never 0: :func:`format_p` prints it as a bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostore.evaluate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    EvaluationError,
    UtteranceScores,
    compute_metrics,
    metrics_from_sums,
)

DEFAULT_BOOT = 1000
_CHUNK_CELLS = 4_000_000  # replicate-weight cells per chunk (~32 MB of float64)


def _replicates(runs: list[dict[str, np.ndarray]], n: int, n_boot: int, seed: int,
                zero_division: float) -> list[dict[str, np.ndarray]]:
    """Metric values of ``n_boot`` resamples for each run (name -> [n_boot]); every run sees the same draws."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out: list[dict[str, list[np.ndarray]]] = [{} for _ in runs]
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        w = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)  # w[r, i]: draws of i
        for run, acc in zip(runs, out):
            sums = {k: w @ v for k, v in run.items()}
            for k, v in metrics_from_sums(sums, zero_division).items():
                acc.setdefault(k, []).append(np.asarray(v))
        done += b
    return [{k: np.concatenate(v) for k, v in acc.items()} for acc in out]


def replicate_metrics(scores: UtteranceScores, n_boot: int = DEFAULT_BOOT, seed: int = 0,
                      zero_division: float = 0.0) -> dict[str, np.ndarray]:
    """Every metric on ``n_boot`` utterance resamples (name -> array [n_boot])."""
    if n_boot < 1:
        raise EvaluationError(f"the bootstrap needs at least 1 replicate, got {n_boot}")
    return _replicates([scores.per_utterance()], scores.n, n_boot, seed, zero_division)[0]


@dataclass(frozen=True)
class Estimate:
    """A metric's point estimate and its bootstrap CI (None without a bootstrap)."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None

    def to_json(self) -> dict:
        def f(x):
            return None if x is None or not np.isfinite(x) else float(x)

        return {"value": f(self.value), "ci_low": f(self.ci_low), "ci_high": f(self.ci_high)}


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of bootstrap replicate values, NaN replicates dropped."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_ci(scores: UtteranceScores, n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95,
                 zero_division: float = 0.0) -> dict[str, Estimate]:
    """Point estimate and percentile CI of every metric (name -> :class:`Estimate`).

    ``n_boot=0`` skips the bootstrap (CIs are None).
    """
    if not 0.0 < level < 1.0:
        raise EvaluationError(f"CI level must be in (0, 1), got {level}")
    point = compute_metrics(scores, zero_division)
    if n_boot == 0:
        return {k: Estimate(point[k]) for k in METRICS}
    reps = replicate_metrics(scores, n_boot, seed, zero_division)
    return {k: Estimate(point[k], *percentile_ci(reps[k], level)) for k in METRICS}


@dataclass(frozen=True)
class PairedResult:
    """Paired bootstrap comparison of runs A and B on one metric (``delta > 0``: A better)."""

    metric: str
    a: float
    b: float
    delta: float  # observed m(A) - m(B), sign-flipped for lower-is-better metrics
    p_value: float  # one-sided, H1: A better than B
    ci_low: float  # percentile CI of delta
    ci_high: float
    n_boot: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


def paired_bootstrap(a: UtteranceScores, b: UtteranceScores, metric: str = "macro_f1",
                     n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95,
                     zero_division: float = 0.0) -> PairedResult:
    """Paired bootstrap test: is run A better than run B on ``metric``? (see the module doc).

    ``a`` and ``b`` must be scored on the same utterances in the same order (the same label set).
    """
    if metric not in HIGHER_IS_BETTER:
        raise EvaluationError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if a.n != b.n or not np.array_equal(a.y_true, b.y_true) or a.n_classes != b.n_classes:
        raise EvaluationError("paired bootstrap: runs A and B were not scored on the same test set")
    if n_boot < 1:
        raise EvaluationError(f"the bootstrap needs at least 1 replicate, got {n_boot}")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    reps_a, reps_b = _replicates([a.per_utterance(), b.per_utterance()], a.n, n_boot, seed, zero_division)
    delta = sign * (reps_a[metric] - reps_b[metric])
    delta = delta[~np.isnan(delta)]
    pa, pb = compute_metrics(a, zero_division)[metric], compute_metrics(b, zero_division)[metric]
    p = (1.0 + np.sum(delta < 0) + 0.5 * np.sum(delta == 0)) / (delta.size + 1)
    lo, hi = percentile_ci(delta, level)
    return PairedResult(metric, pa, pb, sign * (pa - pb), float(p), lo, hi, n_boot)



def format_p(p: float, n_boot: int) -> str:
    """``p = 0.0123``, or ``p <= 1/(B+1) = 0.000999`` where no replicate went against A (the smallest
    p-value ``n_boot`` replicates can give, so the true one may be smaller): never ``p = 0.0000``."""
    floor = 1.0 / (n_boot + 1)
    if p <= floor * (1 + 1e-9):
        return f"p <= 1/(B+1) = {floor:.3g} (B = {n_boot}: A better in every replicate)"
    return f"p = {p:.4g}"
