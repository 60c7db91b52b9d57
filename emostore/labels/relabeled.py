"""The relabeling file format shared by ``emostore relabel llm`` and ``emostore relabel embed``.

A relabeling is JSONL, one object per manifest utterance::

    {"id": "u1", "distribution": [0.7, 0.1, ...], "reason": "..." | null, "source": "llm" | "embed" | "reference"}

``distribution`` is a list in class order (it sums to 1), or null for a row with no in-class vote
(no reference distribution; such rows are skipped when read); ``source`` says where it came from
("reference" = the row had no typed descriptions and keeps its vote shares; "cache" = an LLM answer
from the on-disk cache); ``reason`` is the LLM's
short reason, null for the offline relabeler. The class order, and how the file was made, are in the
sibling meta file under ``classes``: ``x.jsonl`` -> ``x.meta.json`` (:func:`emostore.jsonl.meta_path`,
the convention of partitions, label sets and relabelings alike).

:func:`read_relabeling` also reads a label set written by ``emostore labels aggregate`` (rows
``id``, ``train``, ``test``, ``excluded``): its ``train`` target is the distribution and excluded
rows (no target) are left out, so a relabeling can be compared with the label set it started from.
A ``distribution`` given as a ``{class: share}`` object is accepted too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emostore.jsonl import meta_path, read_jsonl
from emostore.errors import EmostoreError
from emostore.outputs import write_with_meta
from emostore.schema import SUM_TOLERANCE, read_json_file


class RelabelingError(EmostoreError, ValueError):
    """A relabeling (or label set) file that cannot be read."""


@dataclass
class Relabeling:
    ids: list[str]
    distributions: np.ndarray  # [N, C] float64
    classes: tuple[str, ...] | None  # None when neither the meta file nor the rows name them
    sources: list[str | None] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    path: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def by_id(self) -> dict[str, np.ndarray]:
        return dict(zip(self.ids, self.distributions))


def relabel_row(id: str, distribution, source: str, reason: str | None = None) -> dict:
    """One output row in the shared format (floats, class order)."""
    dist = None if distribution is None else [float(x) for x in distribution]
    return {"id": str(id), "distribution": dist, "reason": reason, "source": source}


def write_relabeling(path: str | Path, rows: list[dict], meta: dict) -> Path:
    """Rows (see :func:`relabel_row`) to ``path`` and ``meta`` to its ``.meta.json`` sibling, atomically."""
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return write_with_meta(path, body, meta_path(path), meta)


def read_relabeling(path: str | Path) -> Relabeling:
    """A relabeling (or a label set's ``train`` targets) as ids + an [N, C] array, checked."""
    path = Path(path)
    if not path.is_file():
        raise RelabelingError(f"{path}: no such relabeling")
    mp = meta_path(path)
    meta = read_json_file(mp, RelabelingError, "relabeling meta file") if mp.exists() and mp != path else {}
    if not isinstance(meta, dict):
        raise RelabelingError(f"{mp}: the meta file must be a JSON object")
    classes = meta.get("classes")
    if classes is not None and (not isinstance(classes, list) or not classes
                                or not all(isinstance(c, str) and c for c in classes)
                                or len(set(classes)) != len(classes)):
        raise RelabelingError(f"{mp}: classes must be a list of distinct class names, got {json.dumps(classes)[:80]}")
    classes = tuple(classes) if classes else None
    ids, dists, sources, reasons = [], [], [], []
    seen: set[str] = set()
    for where, obj in read_jsonl(path, RelabelingError):
        if "id" not in obj:
            raise RelabelingError(f"{where}: a row must be an object with an id")
        if "distribution" in obj:
            dist = obj["distribution"]
            if dist is None:  # no reference distribution: nothing to compare
                continue
        elif "train" in obj:  # a label set: excluded rows have no target
            if obj.get("excluded") is not None or obj["train"] is None:
                continue
            dist = obj["train"]
        else:
            raise RelabelingError(f"{where}: no distribution (nor a label set's train target)")
        if isinstance(dist, dict):
            keys = tuple(str(k).lower() for k in dist)
            if classes is None:
                classes = keys
            if set(keys) != set(classes):
                raise RelabelingError(f"{where}: classes {sorted(keys)} differ from {sorted(classes)}")
            lowered = {str(k).lower(): v for k, v in dist.items()}
            dist = [lowered[c] for c in classes]
        try:
            vec = np.asarray(dist, dtype=np.float64)
        except (TypeError, ValueError):
            raise RelabelingError(f"{where}: distribution is not a list of numbers") from None
        if vec.ndim != 1 or not len(vec):
            raise RelabelingError(f"{where}: distribution is not a non-empty list of numbers")
        if classes is not None and len(vec) != len(classes):
            raise RelabelingError(f"{where}: distribution has {len(vec)} values for {len(classes)} classes")
        if dists and len(vec) != len(dists[0]):
            raise RelabelingError(f"{where}: distribution has {len(vec)} values, earlier rows {len(dists[0])}")
        if not np.all(np.isfinite(vec)) or vec.min() < 0 or abs(vec.sum() - 1) > SUM_TOLERANCE:
            raise RelabelingError(f"{where}: distribution must be non-negative and sum to 1 (sum {vec.sum():.6g})")
        rid = str(obj["id"])
        if rid in seen:
            raise RelabelingError(f"{where}: id {rid!r} appears twice")
        seen.add(rid)
        ids.append(rid)
        dists.append(vec)
        sources.append(obj.get("source"))
        reasons.append(obj.get("reason"))
    arr = np.stack(dists) if dists else np.zeros((0, len(classes or ())))
    return Relabeling(ids, arr, classes, sources, reasons, meta, str(path))
