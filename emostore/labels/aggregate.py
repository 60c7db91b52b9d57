"""Aggregation rules (MR / PR / AR): votes over a class set C -> train and test targets.

Every rule starts from :func:`emostore.labels.votes.count_votes`: per utterance, the in-class vote
counts ``n_c`` over C and the number of ratings outside C ("other": other-labels, unknown labels,
mapped classes not in C). ``N = sum(n_c) + other`` is the utterance's number of ratings.

Rules (Chou et al., "Minority Views Matter", IEEE TAC 2024, Sec. 3; EMO-SUPERB, Wu et al. 2024):

* **MR** (majority): the class c with ``n_c > N / 2``. The denominator is *all* of the utterance's
  ratings, "other" included: the majority rule asks for a class chosen by more than half of the
  annotators, and an annotator who answered "other" is still an annotator (this follows the
  all-inclusive-rule paper's wording "more than half of the annotators"; we could not check its code,
  so the choice is recorded here and in every label set's metadata as ``mr_denominator``). A class
  with exactly half of the ratings is not a majority -> excluded ("no majority").
* **PR** (plurality): the class of C with the most votes; "other" ratings do not compete (they name
  no class of C). A tie for the most -> excluded ("tie for the most votes").
* **AR** (all-inclusive): every rating counts; the train target is the vote distribution over C
  (``n_c / sum(n_c)``). Edge: an utterance with no in-class vote at all (only "other" ratings, or no
  rating) has no distribution over C and is excluded by every rule, AR included ("no rating in the
  class set" / "no ratings"). Otherwise AR never excludes.

Train targets: one-hot of the kept class (MR / PR), the vote distribution (AR); ``soft=True`` gives
MR / PR the vote distribution of the utterances that rule keeps (the soft-label variant). Label
smoothing ``x`` applies to train targets only, in one of two conventions (:data:`emostore.labels.presets.SMOOTHING_CONVENTIONS`):

* ``uniform`` (the default; Szegedy et al.'s label smoothing): ``t * (1 - x) + x / C`` — x of the
  mass spread evenly over all C classes.
* ``emo-superb`` (EMO-SUPERB's published ``labels_consensus`` targets): ``t * (1 - x C / (C - 1)) +
  x / (C - 1)`` — every class gets at least x / (C - 1); a one-hot target becomes ``1 - x`` /
  ``x / (C - 1)``. With x = 0.05: CREMA-D (C = 6) ``0.94 * share + 0.01``; IEMOCAP's 9 classes
  one-hot -> 0.95 / 0.00625. The ``emo-superb`` preset (:data:`emostore.labels.presets.PRESETS`) is AR with this at 0.05.

Test targets are 0/1 vectors over C. AR: class c is positive when its share ``n_c / sum(n_c)``
strictly exceeds ``1 / C`` (the all-inclusive paper's multi-label ground truth and EMO-SUPERB's
threshold; a share of exactly 1/C is negative). MR / PR: the one-hot of the kept class by default
(``test="onehot"``, the papers' single-label formulation: a rule that keeps one consensus class
evaluates on that class); ``test="share"`` applies the AR threshold to the votes of the kept
utterances instead (the multi-label formulation on the MR / PR-selected test set). For MR the
kept class always passes the threshold too (its share of in-class votes is > 1/2 >= 1/C).

A label set is one :class:`LabelRecord` per manifest utterance, excluded ones included, written as
JSONL (``id``, ``train``, ``test``, ``excluded``; ``train``/``test`` are null for an excluded row) with
the class order, rule and options in a sibling ``PATH.meta.json`` (see :func:`meta_path`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from emostore.labels.presets import SMOOTHING_CONVENTIONS
from emostore.labels.votes import ClassSet, LabelSetError, Votes, class_set, count_votes, unknown_labels
from emostore.jsonl import meta_path, read_jsonl
from emostore.schema import SUM_TOLERANCE, Id, Row, Share, parse, parse_rows, read_json_file
from emostore.outputs import write_with_meta

RULES = ("mr", "pr", "ar")

TEST_MODES = ("onehot", "share")
FORMAT = "emostore-labelset/1"

NO_RATINGS = "no ratings"
NO_IN_CLASS = "no rating in the class set"
NO_MAJORITY = "no majority"
TIE = "tie for the most votes"


@dataclass(frozen=True)
class LabelRecord:
    """One utterance's targets under one rule; ``train``/``test`` are None when excluded."""

    id: str
    train: list[float] | None
    test: list[int] | None
    excluded: str | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "train": self.train, "test": self.test, "excluded": self.excluded}



class LabelRow(Row):
    """One label-set row as the file holds it (see docs/file-formats.md)."""

    id: Id
    train: list[Share] | None = Field(description="C numbers >= 0 summing to 1 in the meta's class order, "
                                      "or null when excluded")
    test: list[Annotated[int, Field(ge=0, le=1)]] | None = Field(
        description="C values 0 or 1 in the meta's class order, or null when excluded")
    excluded: str | None = Field(description="null, or the reason the row is excluded")

    @model_validator(mode="after")
    def _targets(self, info: ValidationInfo):
        if self.excluded is not None:
            return self
        if self.train is None or self.test is None:
            raise ValueError("the row is not excluded but has no train/test target (give both, or a reason "
                             "in excluded)")
        width = (info.context or {}).get("classes")
        for name, vec in (("train", self.train), ("test", self.test)):
            if width is not None and len(vec) != len(width):
                raise ValueError(f"{name} has {len(vec)} values for the {len(width)} classes "
                                 f"{', '.join(width)}")
        if len(self.train) != len(self.test):
            raise ValueError(f"train has {len(self.train)} values, test {len(self.test)}")
        total = sum(self.train)
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ValueError(f"train sums to {total:.6g}, not 1 (a target is a distribution over the classes)")
        return self

    def record(self) -> LabelRecord:
        return LabelRecord(self.id, self.train, self.test, self.excluded)


def smooth(target: np.ndarray, x: float, convention: str = "uniform") -> np.ndarray:
    """Label smoothing of ``target`` (C classes) by ``x`` in ``convention`` (see the module docstring):
    ``uniform`` ``t (1 - x) + x / C``; ``emo-superb`` ``t (1 - x C / (C - 1)) + x / (C - 1)``."""
    if convention not in SMOOTHING_CONVENTIONS:
        raise LabelSetError(f"unknown smoothing convention {convention!r}; known: {', '.join(SMOOTHING_CONVENTIONS)}")
    if not 0.0 <= x < 1.0:
        raise LabelSetError(f"smoothing must be in [0, 1), got {x}")
    c = len(target)
    if convention == "uniform" or c < 2:
        return target * (1.0 - x) + x / c
    if x * c / (c - 1) > 1.0:
        raise LabelSetError(f"emo-superb smoothing {x} is too large for {c} classes (at most {(c - 1) / c:g})")
    return target * (1.0 - x * c / (c - 1)) + x / (c - 1)


def share_positive(shares: np.ndarray) -> np.ndarray:
    """0/1 vector: classes whose share strictly exceeds 1/C (also turns predictions into labels)."""
    shares = np.asarray(shares, dtype=np.float64)
    # share * C > 1 (with a rounding margin) rather than share > 1/C: 1/C is inexact in floats
    return (shares * shares.shape[-1] > 1.0 + 1e-9).astype(np.int64)


def _test_from_counts(counts: np.ndarray) -> np.ndarray:
    """The > 1/C rule evaluated exactly on integer counts: ``n_c * C > sum(n)``."""
    return (counts * len(counts) > counts.sum()).astype(np.int64)


def decide(votes: Votes, rule: str) -> tuple[int | None, str | None]:
    """(kept class index or None, exclusion reason or None) of one utterance under ``rule``.

    For AR the index is None when kept (there is no single class).
    """
    if rule not in RULES:
        raise LabelSetError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
    if votes.total == 0:
        return None, NO_RATINGS
    in_class = int(votes.counts.sum())
    if in_class == 0:
        return None, NO_IN_CLASS
    if rule == "ar":
        return None, None
    top = int(votes.counts.max())
    winners = np.flatnonzero(votes.counts == top)
    if rule == "mr":
        # more than half of ALL ratings ("other" included); exactly half is no majority
        return (int(winners[0]), None) if 2 * top > votes.total else (None, NO_MAJORITY)
    return (int(winners[0]), None) if len(winners) == 1 else (None, TIE)


def aggregate_votes(
    votes: Votes, rule: str, *, soft: bool = False, smoothing: float = 0.0, test: str = "onehot",
    smoothing_convention: str = "uniform",
) -> LabelRecord:
    """One utterance's :class:`LabelRecord` under ``rule`` (see the module docstring)."""
    if test not in TEST_MODES:
        raise LabelSetError(f"unknown test-target mode {test!r}; known: {', '.join(TEST_MODES)}")
    kept, reason = decide(votes, rule)
    if reason is not None:
        return LabelRecord(votes.id, None, None, reason)
    c = len(votes.counts)
    shares = votes.counts / votes.counts.sum()
    if rule == "ar" or soft:
        train = shares.astype(np.float64)
    else:
        train = np.zeros(c)
        train[kept] = 1.0
    if smoothing:
        train = smooth(train, smoothing, smoothing_convention)
    if rule == "ar" or test == "share":
        target = _test_from_counts(votes.counts)
    else:
        target = np.zeros(c, dtype=np.int64)
        target[kept] = 1
    return LabelRecord(votes.id, [float(v) for v in train], [int(v) for v in target], None)


def aggregate_rows(
    rows: Iterable[dict], cs: ClassSet, rule: str, *, soft: bool = False, smoothing: float = 0.0,
    test: str = "onehot", smoothing_convention: str = "uniform",
) -> list[LabelRecord]:
    """One record per row, in row order (rows need only ``id`` and ``ratings``/``emotion``)."""
    if smoothing:
        smooth(np.zeros(len(cs)), smoothing, smoothing_convention)  # validate once, even when all are excluded
    return [aggregate_votes(count_votes(r, cs), rule, soft=soft, smoothing=smoothing, test=test,
                            smoothing_convention=smoothing_convention) for r in rows]


def aggregate_manifest(
    path: str | Path, rule: str, classes: list[str] | None = None, *, soft: bool = False,
    smoothing: float = 0.0, test: str = "onehot", strict: bool = False, smoothing_convention: str = "uniform",
    allow_all_excluded: bool = False,
) -> tuple[list[LabelRecord], dict]:
    """Aggregate a manifest (or a rating table without audio): (records, metadata for the file).

    A label set in which every row is excluded trains and scores nothing: it is refused (naming the
    reasons) unless ``allow_all_excluded``.

    Ratings that name no known label (:meth:`ClassSet.is_unknown`) count as "other"; they are
    counted per value in the metadata's ``unknown_labels`` (see :func:`unknown_note`), and with
    ``strict`` they are an error instead.
    """
    from emostore.manifests import load_manifest

    if rule not in RULES:
        raise LabelSetError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
    if smoothing:
        smooth(np.zeros(2), smoothing, smoothing_convention)  # fail before reading the manifest
    m = load_manifest(path, require_audio=False)
    cs = class_set(m.rows, classes)
    unknown = unknown_labels(m.rows, cs)
    if strict and unknown:
        raise LabelSetError(f"{path}: {_unknown_list(unknown)}; fix them, or drop --strict to count them "
                            "as 'other'")
    records = aggregate_rows(m.rows, cs, rule, soft=soft, smoothing=smoothing, test=test,
                             smoothing_convention=smoothing_convention)
    if not allow_all_excluded and all(r.excluded is not None for r in records):
        reasons = Counter(r.excluded for r in records)
        raise LabelSetError(
            f"{path}: all {len(records)} rows are excluded under {rule.upper()} with the classes "
            f"{', '.join(cs.classes)} ({', '.join(f'{why}: {n}' for why, n in reasons.most_common())}); check the "
            "class list against the manifest's labels, or pass --allow-all-excluded (allow_all_excluded=True) to "
            "write it anyway")
    meta = label_set_meta(cs, rule, soft=soft, smoothing=smoothing, test=test, smoothing_convention=smoothing_convention,
                          manifest=str(path), manifest_sha256=m.sha256, records=records)
    meta["unknown_labels"] = unknown
    return records, meta


def unknown_note(meta: dict) -> str | None:
    """One line on the ratings that matched no known label, or None if there were none."""
    unknown = meta.get("unknown_labels") or {}
    return f"{_unknown_list(unknown)}; they count as 'other'" if unknown else None


def _unknown_list(unknown: dict[str, int], show: int = 5) -> str:
    shown = ", ".join(f"{v!r} x{n}" for v, n in list(unknown.items())[:show])
    more = f" and {len(unknown) - show} more values" if len(unknown) > show else ""
    return f"{sum(unknown.values())} ratings match no class or known label ({shown}{more})"


def label_set_meta(cs: ClassSet, rule: str, *, soft: bool, smoothing: float, test: str,
                   smoothing_convention: str = "uniform", manifest: str | None = None, manifest_sha256: str | None = None,
                   records: list[LabelRecord] | None = None) -> dict:
    meta = {
        "rule": rule,
        "classes": list(cs.classes),
        "soft": bool(soft),
        "smoothing": float(smoothing),
        "smoothing_convention": smoothing_convention,
        "test_targets": "share>1/C" if rule == "ar" or test == "share" else "onehot",
        "mr_denominator": "all ratings (other included)",
        "class_map": None if cs.class_map is None else {"corpus": cs.class_map.corpus,
                                                         "version": cs.class_map.version},
    }
    if manifest is not None:
        meta["manifest"] = manifest
    if manifest_sha256 is not None:
        meta["manifest_sha256"] = manifest_sha256
    if records is not None:
        meta["utterances"] = len(records)
        meta["excluded"] = sum(1 for r in records if r.excluded is not None)
    return meta


def write_label_set(path: str | Path, records: Iterable[LabelRecord], meta: dict) -> Path:
    """JSONL rows (``id``, ``train``, ``test``, ``excluded``) to ``path``; ``meta`` to ``PATH.meta.json``."""
    body = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)
    return write_with_meta(path, body, meta_path(path), {"format": FORMAT, **meta})


def read_label_set(path: str | Path) -> tuple[list[LabelRecord], dict]:
    """(records, metadata) of a label set, every row checked (:class:`LabelRow`); metadata is {}
    without the ``.meta.json`` sibling, and then the first kept row's width stands for C."""
    path = Path(path)
    if not path.is_file():
        raise LabelSetError(f"{path}: no such label set")
    mp = meta_path(path)
    meta = read_json_file(mp, LabelSetError, "label-set meta file") if mp.exists() else {}
    parse(LabelSetMeta, meta, str(mp), LabelSetError)
    raw = read_jsonl(path, LabelSetError)
    classes = meta.get("classes")
    if classes is None:
        first = next((o.get("train") for _, o in raw if o.get("excluded") is None
                      and isinstance(o.get("train"), list)), None)
        classes = None if first is None else [f"class{j}" for j in range(len(first))]
    rows = parse_rows(LabelRow, raw, path, LabelSetError, context={"classes": classes})
    seen: dict[str, str] = {}
    for (where, _), row in zip(raw, rows):
        if row.id in seen:
            raise LabelSetError(f"{where}: id {row.id!r} appears twice (also at {seen[row.id]})")
        seen[row.id] = where
    return [r.record() for r in rows], meta


class LabelSetMeta(BaseModel):
    """The label set's ``.meta.json``: what the readers rely on; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")
    classes: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1, description="the class names in target order, each once")

    @model_validator(mode="after")
    def _distinct(self):
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes names a class twice: {', '.join(self.classes)}")
        return self
