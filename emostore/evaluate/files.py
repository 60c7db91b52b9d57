"""Score a predictions file against a label set (what ``emostore evaluate`` runs).

Predictions: JSONL, one ``{"id": ..., "probs": [...]}`` per utterance, ``probs`` in the label set's
class order (its ``.meta.json`` ``classes``); other keys are ignored, so any model's output can be
scored. Label set: the ``emostore labels aggregate`` output (:func:`emostore.labels.aggregate.read_label_set`).

Alignment: excluded label rows are skipped (counted in ``excluded``; a prediction for them is
ignored); every kept label id must have a prediction (otherwise one error names the first missing
ids and their count); predictions for ids the label set does not have are ignored and counted
(``unlabelled``); an id predicted twice is an error.
``ids`` restricts the label set to some utterances first (a run's fold: its predictions cover only
that fold's test part, a label set the whole corpus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from emostore.evaluate.bootstrap import DEFAULT_BOOT, Estimate, bootstrap_ci
from emostore.evaluate.metrics import METRICS, EvaluationError, UtteranceScores, score_utterances
from emostore.jsonl import read_jsonl
from emostore.labels.aggregate import read_label_set

SHOW_MISSING = 5
# A prediction row whose probs sum further than this from 1 is counted as renormalised (scores are
# always scored as shares; the count tells a user that the file held no probabilities).
SUM_TOLERANCE = 1e-3


def read_predictions(path: str | Path, n_classes: int | None = None) -> dict[str, np.ndarray]:
    """id -> probability vector from a predictions JSONL (validated: one row per id, C numbers each)."""
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{path}: no such predictions file")
    out: dict[str, np.ndarray] = {}
    for where, obj in read_jsonl(path, EvaluationError):
        if "id" not in obj or "probs" not in obj:
            raise EvaluationError(f"{where}: a prediction row needs the keys id and probs")
        pid, probs = str(obj["id"]), obj["probs"]
        if not isinstance(probs, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in probs):
            raise EvaluationError(f"{where}: probs must be a list of numbers")
        if n_classes is not None and len(probs) != n_classes:
            raise EvaluationError(f"{where}: {len(probs)} probabilities for {n_classes} classes")
        if pid in out:
            raise EvaluationError(f"{where}: id {pid!r} predicted twice")
        v = np.asarray(probs, dtype=np.float64)
        if not np.isfinite(v).all() or (v < 0).any() or v.sum() <= 0:
            raise EvaluationError(f"{where}: probs must be non-negative, finite and not all zero")
        out[pid] = v
    return out


@dataclass
class Evaluation:
    """Scores of one predictions file on one label set."""

    metrics: dict[str, Estimate]
    n: int
    excluded: int
    classes: list[str]
    unlabelled: int = 0
    argmax_ties: int = 0
    renormalised: int = 0
    n_boot: int = 0
    seed: int = 0
    scores: UtteranceScores | None = field(default=None, repr=False)
    ids: list[str] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        out = {k: self.metrics[k].to_json() for k in METRICS}
        out.update(n=self.n, excluded=self.excluded, classes=self.classes, unlabelled=self.unlabelled,
                   argmax_ties=self.argmax_ties, renormalised=self.renormalised,
                   bootstrap={"replicates": self.n_boot, "seed": self.seed, "method": "percentile", "level": 0.95})
        return out


def align(pred: dict[str, np.ndarray], records) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(ids, probs, train, test, excluded, unlabelled) over the label set's kept rows, in its order."""
    kept = [r for r in records if r.excluded is None]
    excluded = len(records) - len(kept)
    missing = [r.id for r in kept if r.id not in pred]
    if missing:
        shown = ", ".join(missing[:SHOW_MISSING])
        more = f" and {len(missing) - SHOW_MISSING} more" if len(missing) > SHOW_MISSING else ""
        raise EvaluationError(f"{len(missing)} of {len(kept)} labelled ids have no prediction: {shown}{more}")
    if not kept:
        raise EvaluationError("nothing to evaluate: every utterance of the label set is excluded")
    labelled = {r.id for r in records}
    unlabelled = sum(1 for pid in pred if pid not in labelled)
    ids = [r.id for r in kept]
    probs = np.stack([pred[i] for i in ids])
    train = np.asarray([r.train for r in kept], dtype=np.float64)
    test = np.asarray([r.test for r in kept], dtype=np.int64)
    return ids, probs, train, test, excluded, unlabelled


def restrict(records, ids: Iterable[str], where: str | Path = "label set") -> list:
    """The records of ``ids``, in the label set's order; an id the label set lacks is an error."""
    wanted = set(ids)
    have = {r.id for r in records}
    unknown = sorted(wanted - have)
    if unknown:
        shown = ", ".join(unknown[:SHOW_MISSING])
        more = f" and {len(unknown) - SHOW_MISSING} more" if len(unknown) > SHOW_MISSING else ""
        raise EvaluationError(f"{where}: {len(unknown)} requested id(s) are not in the label set: {shown}{more}")
    return [r for r in records if r.id in wanted]


def evaluate_files(pred_path: str | Path, labels_path: str | Path, n_boot: int = DEFAULT_BOOT, seed: int = 0,
                   zero_division: float = 0.0, ids: Iterable[str] | None = None) -> Evaluation:
    """Score predictions JSONL ``pred_path`` on label set ``labels_path`` with bootstrap CIs.

    ``ids`` restricts the label set to those utterances (e.g. one fold's test part: a run predicts
    only its fold, while a label set covers the whole corpus); each must be in the label set.
    """
    records, meta = read_label_set(labels_path)
    if ids is not None:
        records = restrict(records, ids, labels_path)
    classes = meta.get("classes")
    if classes is None:
        width = next((len(r.train) for r in records if r.train is not None), None)
        classes = [f"class{k}" for k in range(width or 0)]
    if len(classes) < 2:
        raise EvaluationError(f"{labels_path}: a label set needs at least 2 classes to evaluate")
    pred = read_predictions(pred_path, len(classes))
    ids, probs, train, test, excluded, unlabelled = align(pred, records)
    scores = score_utterances(probs, train, test)
    est = bootstrap_ci(scores, n_boot=n_boot, seed=seed, zero_division=zero_division)
    renormalised = int((np.abs(probs.sum(axis=1) - 1.0) > SUM_TOLERANCE).sum())
    return Evaluation(est, scores.n, excluded, list(classes), unlabelled, int(scores.ties.sum()), renormalised,
                      n_boot, seed, scores, ids)


LABELS = {
    "macro_f1": "macro-F1 (multi-label, share > 1/C)",
    "ua": "UA (unweighted avg recall, argmax)",
    "wa": "WA (accuracy, argmax)",
    "macro_f1_single": "macro-F1 (single-label, argmax)",
    "kld": "KL(target || pred), nats",
    "jsd": "JS divergence, bits",
}


def format_evaluation(ev: Evaluation) -> str:
    """The human-readable table of ``emostore evaluate``."""
    ci = ev.n_boot > 0
    width = max(len(v) for v in LABELS.values())
    lines = [f"{'metric':<{width}}  {'value':>7}" + ("  95% CI" if ci else "")]
    for k in METRICS:
        e = ev.metrics[k]
        row = f"{LABELS[k]:<{width}}  {e.value:7.4f}"
        if ci and e.ci_low is not None:
            row += f"  [{e.ci_low:.4f}, {e.ci_high:.4f}]"
        lines.append(row)
    foot = (f"{ev.n} utterances scored, {ev.excluded} excluded by the label set; classes {','.join(ev.classes)}")
    if ci:
        foot += f"; CI: {ev.n_boot} bootstrap replicates (seed {ev.seed}, percentile)"
    lines.append(foot)
    if ev.unlabelled:
        lines.append(f"{ev.unlabelled} predictions for ids not in the label set were ignored")
    if ev.renormalised:
        lines.append(f"{ev.renormalised} prediction rows did not sum to 1 (by more than {SUM_TOLERANCE:g}) "
                     "and were renormalised")
    if ev.argmax_ties:
        lines.append(f"{ev.argmax_ties} targets with a tied argmax (single-label truth: first class in order)")
    return "\n".join(lines)
