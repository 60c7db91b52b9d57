"""Evaluation protocols: which metrics a benchmark reports, and what each metric name means.

One table for every command that reports metrics (``leaderboard``, ``report``, ``crossrule`` now;
``train`` / ``evaluate`` can read it too): a protocol names its metrics, the first being the
*primary* one (what a leaderboard ranks by). The two benchmarks define "macro-F1" differently,
which is why a metric's label always says which one it is:

* ``emo-superb`` (EMO-SUPERB): ``macro_f1``, the multi-label macro-F1 where a class counts as
  predicted (and as true) when its share exceeds 1/C.
* ``emobox`` (EmoBox): ``ua`` (unweighted average recall), ``wa`` (accuracy) and
  ``macro_f1_single`` (single-label macro-F1 over the argmax), all single-label; UA is primary.

On the same run the two F1s differ a lot (e.g. 0.409 multi-label vs 0.298 single-label), so a
number without its definition is not comparable with a paper's.

Without a named protocol the label sets decide (:func:`protocol_for_labels`): where every label
set is single-label (one class per kept clip, in both the train and the test target: an acted
corpus such as EmoDB) EmoBox's UA leads; EMO-SUPERB's multi-label macro-F1 only means what it
says where a clip can carry several classes.
"""

from __future__ import annotations

from emostore.evaluate.metrics import HIGHER_IS_BETTER, METRICS, EvaluationError

#: protocol -> its metrics, primary first.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "emo-superb": ("macro_f1",),
    "emobox": ("ua", "wa", "macro_f1_single"),
}
DEFAULT_PROTOCOL = "emo-superb"

#: metric -> one-line definition (captions, docs); the short axis labels are in ``evaluate.files.LABELS``.
DEFINITIONS: dict[str, str] = {
    "macro_f1": "macro-F1, multi-label (EMO-SUPERB): a class is on where its share > 1/C, F1 averaged over classes",
    "ua": "UA, unweighted average recall of the argmax class (EmoBox)",
    "wa": "WA, accuracy of the argmax class (EmoBox)",
    "macro_f1_single": "macro-F1, single-label (EmoBox): argmax prediction vs argmax target, F1 averaged over classes",
    "kld": "KLD, KL(target || prediction) in nats, mean over utterances",
    "jsd": "JSD, Jensen-Shannon divergence in bits, mean over utterances",
}


def protocol_metrics(protocol: str = DEFAULT_PROTOCOL) -> tuple[str, ...]:
    """The metrics ``protocol`` reports, primary first."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise EvaluationError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}") from None


def is_single_label(records) -> bool:
    """True when every kept record's train target is one-hot and its test target has one class."""
    kept = [r for r in records if r.excluded is None]
    return bool(kept) and all(sum(r.test) == 1 and sorted(r.train)[-1] == 1.0 and sum(r.train) == 1.0
                              for r in kept)


def protocol_for_labels(label_sets) -> str:
    """``emobox`` (UA first) when every label set in ``label_sets`` (paths) is single-label, else
    EMO-SUPERB; a label set that cannot be read counts as multi-label (the default protocol)."""
    from emostore.labels.aggregate import read_label_set

    paths = sorted({str(p) for p in label_sets if p is not None and str(p) != "nan"})
    if not paths:
        return DEFAULT_PROTOCOL
    for p in paths:
        try:
            records, _ = read_label_set(p)
        except (OSError, ValueError):
            return DEFAULT_PROTOCOL
        if not is_single_label(records):
            return DEFAULT_PROTOCOL
    return "emobox"


def pick_metrics(metric: str | None = None, protocol: str | None = None, label_sets=()) -> tuple[str, ...]:
    """``(metric,)`` when one is named, else the protocol's metrics; without a protocol the one
    :func:`protocol_for_labels` picks for ``label_sets`` (EMO-SUPERB when none are given)."""
    if metric is not None:
        if metric not in METRICS:
            raise EvaluationError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        return (metric,)
    return protocol_metrics(protocol or protocol_for_labels(label_sets))


def definition(metric: str) -> str:
    """The metric's definition with its direction: ``... (higher is better)``."""
    arrow = "higher is better" if HIGHER_IS_BETTER[metric] else "lower is better"
    return f"{DEFINITIONS[metric]} ({arrow})"
