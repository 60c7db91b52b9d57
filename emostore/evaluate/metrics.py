"""SER metrics as sums over utterances, so that point estimates and bootstrap replicates share one code path.

Inputs (per utterance i, C classes in the label set's order):

* ``probs[i]``: the model's scores; normalised to shares ``p = probs / sum(probs)`` (so softmax
  outputs are unchanged and any non-negative scores are read as a distribution).
* ``target[i]``: the label set's ``train`` vector (a distribution over C; one-hot for MR / PR, the
  vote distribution for AR; label smoothing, if the label set used it, is part of it).
* ``test[i]``: the label set's ``test`` 0/1 vector.

Metrics (all are means or ratios of per-utterance quantities, see :class:`UtteranceScores`):

* ``macro_f1`` -- multi-label macro-F1 (EMO-SUPERB; Chou et al., "Minority Views Matter", TAC 2024):
  the prediction is binarised with the test-target threshold, class c positive when its share
  *strictly* exceeds 1/C (:func:`emostore.labels.aggregate.share_positive`; a share of exactly 1/C
  is negative), against the ``test`` vectors. Per class ``F1_c = 2 TP / (2 TP + FP + FN)``, averaged
  unweighted over **all C classes**: scikit-learn's ``f1_score(Y, P, average="macro")`` on indicator
  matrices. A class with ``TP + FP + FN = 0`` (absent from truth and prediction) has an undefined F1;
  ``zero_division`` decides it: default ``0.0`` (scikit-learn's default value), ``1.0`` counts it as
  perfect, ``nan`` leaves it out of the average (scikit-learn >= 1.3's ``zero_division=np.nan``).
* Single-label (EmoBox, Ma et al. 2024): the true class is ``argmax(target)`` (the kept class for
  MR / PR, the plurality class for AR), the predicted class ``argmax(p)``; ties go to the first
  class in class order (``numpy.argmax``), and tied targets are counted (``argmax_ties``).

  - ``ua``: unweighted average recall, the mean over the classes that occur in the ground truth of
    ``recall_c`` (= ``recall_score(y, yhat, labels=range(C), average="macro", zero_division=np.nan)``;
    equal to the plain ``average="macro"`` whenever no class is predicted that is absent from truth).
  - ``wa``: accuracy (``accuracy_score``), the weighted average recall.
  - ``macro_f1_single``: macro-F1 over the classes that occur in truth or prediction
    (``f1_score(y, yhat, average="macro")``, scikit-learn's default label set).
* Distribution agreement, against ``target``:

  - ``kld``: ``KL(target || p') = sum_c t_c ln(t_c / p'_c)`` in nats (``scipy.stats.entropy(t, p')``),
    with ``p' = (p + EPS) / (1 + C EPS)``, ``EPS = 1e-7`` so that a class the model gives zero
    probability costs a finite ``ln(t / 1e-7)`` rather than infinity; ``0 ln 0 = 0``.
  - ``jsd``: Jensen-Shannon divergence in bits (base 2, in [0, 1]) between ``p`` and ``target``, no
    epsilon needed (``scipy.spatial.distance.jensenshannon(p, t, base=2) ** 2``; scipy returns the
    JS *distance*, its square root).

  Both are averaged over utterances; lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostore.labels.aggregate import share_positive
from emostore.labels.compare import js_divergence
from emostore.errors import EmostoreError

EPS = 1e-7

#: Metric names, in report order, and whether a higher value is better.
HIGHER_IS_BETTER = {
    "macro_f1": True,
    "ua": True,
    "wa": True,
    "macro_f1_single": True,
    "kld": False,
    "jsd": False,
}
METRICS = tuple(HIGHER_IS_BETTER)


class EvaluationError(EmostoreError, ValueError):
    """Predictions and labels cannot be scored together."""


def normalise(probs) -> np.ndarray:
    """Rows of ``probs`` as shares (sum 1); refuses negative, non-finite and all-zero rows."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise EvaluationError(f"predictions must be a 2-D array [utterances, classes], got shape {p.shape}")
    if not np.isfinite(p).all():
        raise EvaluationError("predictions contain NaN or infinite values")
    if (p < 0).any():
        raise EvaluationError("predictions contain negative values (give probabilities, not logits)")
    s = p.sum(axis=1, keepdims=True)
    if (s <= 0).any():
        raise EvaluationError("a prediction row sums to 0")
    return p / s


def kl_divergence(target, pred, eps: float = EPS) -> np.ndarray:
    """``KL(target || pred')`` in nats per row, ``pred' = (pred + eps) / (1 + C eps)`` (pred normalised)."""
    t = np.asarray(target, dtype=np.float64)
    p = normalise(np.atleast_2d(pred)).reshape(t.shape)
    c = t.shape[-1]
    q = (p + eps) / (1.0 + c * eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * np.log(t / q), 0.0)
    return terms.sum(-1)


@dataclass(frozen=True)
class UtteranceScores:
    """Per-utterance 0/1 indicators and divergences; every metric is a function of their (weighted) sums.

    ``ml_tp``/``ml_fp``/``ml_fn``: [n, C] multi-label outcomes; ``y_true``/``y_pred``: [n] single-label
    classes; ``kld``/``jsd``: [n] divergences; ``ties``: [n] whether the target's argmax was tied.
    """

    ml_tp: np.ndarray
    ml_fp: np.ndarray
    ml_fn: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    kld: np.ndarray
    jsd: np.ndarray
    ties: np.ndarray

    @property
    def n(self) -> int:
        return len(self.y_true)

    @property
    def n_classes(self) -> int:
        return self.ml_tp.shape[1]

    def per_utterance(self) -> dict[str, np.ndarray]:
        """The columns whose weighted sums determine every metric (name -> [n, k] array)."""
        c = self.n_classes
        t1 = np.eye(c)[self.y_true]
        p1 = np.eye(c)[self.y_pred]
        hit = t1 * p1
        return {
            "ml_tp": self.ml_tp.astype(np.float64),
            "ml_fp": self.ml_fp.astype(np.float64),
            "ml_fn": self.ml_fn.astype(np.float64),
            "sl_true": t1,  # per class: utterances whose true class is c
            "sl_pred": p1,
            "sl_hit": hit,
            "one": np.ones((self.n, 1)),
            "kld": self.kld[:, None],
            "jsd": self.jsd[:, None],
        }


def score_utterances(probs, target, test) -> UtteranceScores:
    """Per-utterance outcomes of predictions ``probs`` [n, C] against label-set targets (see module doc)."""
    p = normalise(probs)
    t = np.asarray(target, dtype=np.float64)
    y = np.asarray(test, dtype=np.int64)
    if t.shape != p.shape or y.shape != p.shape:
        raise EvaluationError(f"shapes differ: predictions {p.shape}, train targets {t.shape}, test targets {y.shape}")
    if p.shape[0] == 0:
        raise EvaluationError("nothing to evaluate: no utterances")
    yhat = share_positive(p)
    y_true = t.argmax(axis=1)
    ties = (t == t.max(axis=1, keepdims=True)).sum(axis=1) > 1
    return UtteranceScores(
        ml_tp=(yhat & y).astype(np.int8),
        ml_fp=(yhat & (1 - y)).astype(np.int8),
        ml_fn=((1 - yhat) & y).astype(np.int8),
        y_true=y_true,
        y_pred=p.argmax(axis=1),
        kld=kl_divergence(t, p),
        jsd=js_divergence(p, t),
        ties=ties,
    )


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) when all are NaN."""
    ok = ~np.isnan(x)
    cnt = ok.sum(-1)
    tot = np.where(ok, x, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def metrics_from_sums(s: dict[str, np.ndarray], zero_division: float = 0.0) -> dict[str, np.ndarray]:
    """Every metric from summed columns (``s[k]`` of shape [..., k]); leading axes are replicates."""
    tp, fp, fn = s["ml_tp"], s["ml_fp"], s["ml_fn"]
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), zero_division)
        n = s["one"][..., 0]
        recall = np.where(s["sl_true"] > 0, s["sl_hit"] / np.where(s["sl_true"] > 0, s["sl_true"], 1), np.nan)
        sl_den = s["sl_true"] + s["sl_pred"]  # = 2 TP + FP + FN per class
        sl_f1 = np.where(sl_den > 0, 2 * s["sl_hit"] / np.where(sl_den > 0, sl_den, 1), np.nan)
        return {
            "macro_f1": _nanmean(f1) if np.isnan(zero_division) else f1.mean(-1),
            "ua": _nanmean(recall),
            "wa": s["sl_hit"].sum(-1) / n,
            "macro_f1_single": _nanmean(sl_f1),
            "kld": s["kld"][..., 0] / n,
            "jsd": s["jsd"][..., 0] / n,
        }


def compute_metrics(scores: UtteranceScores, zero_division: float = 0.0) -> dict[str, float]:
    """Point estimates of every metric (name -> float), in :data:`METRICS` order."""
    sums = {k: v.sum(axis=0) for k, v in scores.per_utterance().items()}
    return {k: float(v) for k, v in metrics_from_sums(sums, zero_division).items()}


def evaluate_arrays(probs, target, test, zero_division: float = 0.0) -> dict[str, float]:
    """Convenience: :func:`compute_metrics` of :func:`score_utterances`."""
    return compute_metrics(score_utterances(probs, target, test), zero_division)
