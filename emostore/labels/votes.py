"""Votes per class: the one place where raw ratings meet a corpus's class set.

Every rule, statistic and relabeler starts here. A manifest row's ``ratings`` are raw labels; the
class map turns each into a benchmark class, "other", or unknown. With an explicit class list,
mapped labels outside it count as "other" too. Corpora without per-rater labels (EmoDB, RAVDESS)
have only the intended ``emotion``: it counts as one vote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostore.errors import EmostoreError
from emostore.manifests.adapters.base import ClassMap, get_adapter


# EMO-SUPERB's eight classes: the default class order of both relabelers.
EMO_SUPERB_CLASSES = ("angry", "sad", "disgust", "contempt", "fear", "neutral", "surprise", "happy")


class LabelSetError(EmostoreError, ValueError):
    """A label-set file is malformed, or aggregation was asked for something impossible."""


@dataclass(frozen=True)
class ClassSet:
    """The ordered classes C and how raw labels reach them."""

    classes: tuple[str, ...]
    class_map: ClassMap | None = None

    def map(self, raw: str) -> str:
        """A class of C, or "other" (other-labels, unknown labels, classes outside C)."""
        label = str(raw).strip().lower()
        if self.class_map is not None:
            mapped = self.class_map.map_label(label)
            label = mapped if mapped is not None else self.class_map.mapping.get(label, label)
        return label if label in self.classes else "other"

    def is_unknown(self, raw: str) -> bool:
        """A rating that is no class of C, of the class map, nor a known other-label: a typo or a
        label the map lacks. It counts as "other" like the rest, but is reported."""
        label = str(raw).strip().lower()
        if self.class_map is None:
            return label not in self.classes and label != "other"
        if self.class_map.map_label(label) is not None:
            return False
        return self.class_map.mapping.get(label, label) not in self.classes

    def __len__(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Votes:
    """One utterance's votes over C, plus the votes that fell outside C."""

    id: str
    counts: np.ndarray  # [C] int
    other: int  # votes mapped to "other" (including labels outside C)

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.other

    def shares(self) -> np.ndarray | None:
        """Vote shares over C (the reference distribution); None without any in-class vote."""
        n = self.counts.sum()
        return self.counts / n if n else None


def row_labels(row: dict) -> list[str]:
    ratings = row.get("ratings") or []
    if isinstance(ratings, str):  # CSV manifests: ';'-separated
        ratings = [r for r in ratings.split(";") if r.strip()]
    if not ratings and row.get("emotion"):
        return [str(row["emotion"])]
    return [str(r) for r in ratings]


def class_set(rows: list[dict], classes: list[str] | None = None, corpus: str | None = None) -> ClassSet:
    """``classes`` if given; else the class map of the rows' corpus; else sorted raw labels."""
    corpus = corpus or next((str(r["corpus"]) for r in rows if r.get("corpus")), None)
    cmap = None
    if corpus:
        try:
            cmap = get_adapter(corpus).class_map
        except ValueError:
            cmap = None
    if classes:
        return ClassSet(tuple(c.strip().lower() for c in classes), cmap)
    if cmap is not None and cmap.classes:
        return ClassSet(tuple(cmap.classes), cmap)
    raw = sorted({lab.strip().lower() for r in rows for lab in row_labels(r)} - {"other"})
    if not raw:
        raise LabelSetError("no ratings in the manifest, and no --classes given")
    return ClassSet(tuple(raw), None)


def relabel_class_set(rows: list[dict], classes: list[str] | None = None) -> ClassSet:
    """Classes for relabeling: ``classes`` if given, else the rows' corpus class map, else EMO-SUPERB's 8.

    A corpus's own classes come first: relabeling EmoDB over MSP-Podcast's 8 classes leaves its
    anger and happiness votes outside the class set (EMO-SUPERB's names are angry / happy).
    """
    if classes:
        return class_set(rows, classes)
    try:
        cs = class_set(rows)
    except ValueError:  # no corpus column and no ratings
        cs = None
    return cs if cs is not None and cs.class_map is not None else class_set(rows, list(EMO_SUPERB_CLASSES))


def no_vote_warning(no_votes: int, rows: int, classes) -> str | None:
    """One line for rows whose votes all fall outside the class set (their distribution is null)."""
    if not no_votes:
        return None
    return (f"{no_votes} of {rows} rows have no vote in the classes {', '.join(classes)}: their distribution "
            "is null (pass --classes to match the corpus's labels)")


def count_votes(row: dict, cs: ClassSet) -> Votes:
    counts = np.zeros(len(cs), dtype=np.int64)
    other = 0
    index = {c: i for i, c in enumerate(cs.classes)}
    for raw in row_labels(row):
        cls = cs.map(raw)
        if cls == "other":
            other += 1
        else:
            counts[index[cls]] += 1
    return Votes(str(row["id"]), counts, other)


def unknown_labels(rows: list[dict], cs: ClassSet) -> dict[str, int]:
    """Ratings :meth:`ClassSet.is_unknown` flags, counted per value as written, most frequent first."""
    counts: dict[str, int] = {}
    for row in rows:
        for raw in row_labels(row):
            if cs.is_unknown(raw):
                key = str(raw).strip()
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
