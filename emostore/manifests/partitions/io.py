"""The partition file: folds only, in order; metadata in the sibling ``NAME.meta.json``.

Format (exactly)::

    {"fold1": {"train": [ids], "dev": [ids], "test": [ids]}, "fold2": {...}, ...}

Nothing else goes into that file, so every top-level key is a fold. A partition file read without
its ``.meta.json`` (see :func:`meta_path`) is still a partition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from emostore.errors import EmostoreError
from emostore.jsonl import meta_path
from emostore.outputs import write_with_meta

FORMAT = "emostore-partition/1"
PARTS = ("train", "dev", "test")

__all__ = ["FORMAT", "PARTS", "Partition", "PartitionError", "meta_path", "read_partition", "validate_shape",
           "write_partition"]


class PartitionError(EmostoreError, ValueError):
    """A partition cannot be made from this manifest, or a partition breaks its own rule."""


@dataclass
class Partition:
    """Ordered folds ``{name: {"train": [...], "dev": [...], "test": [...]}}`` plus metadata."""

    folds: dict[str, dict[str, list[str]]]
    meta: dict = field(default_factory=dict)

    @property
    def speaker_independent(self) -> bool:
        return bool(self.meta.get("speaker_independent", False))

    def to_json(self) -> dict:
        """The partition file's content: folds only, in order, parts in train/dev/test order."""
        return {name: {p: list(fold[p]) for p in PARTS} for name, fold in self.folds.items()}

    def __len__(self) -> int:
        return len(self.folds)


def write_partition(partition: Partition, out: str | Path) -> Path:
    """Write the folds to ``out`` (the exact format) and the metadata to :func:`meta_path`."""
    text = json.dumps(partition.to_json(), indent=1, ensure_ascii=False) + "\n"
    return write_with_meta(out, text, meta_path(out), {"format": FORMAT, **partition.meta})


def read_partition(path: str | Path) -> Partition:
    """Read a partition file (and its ``.meta.json`` sibling if there is one); validate its shape."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PartitionError(f"{path}: no such partition file") from None
    except json.JSONDecodeError as exc:
        raise PartitionError(f"{path}: not valid JSON ({exc.msg})") from None
    folds = validate_shape(obj, str(path))
    meta: dict = {}
    mp = meta_path(path)
    if mp.exists():
        meta = json.loads(mp.read_text(encoding="utf-8"))
    return Partition(folds, meta)


def validate_shape(obj, where: str) -> dict[str, dict[str, list[str]]]:
    """``obj`` as folds, or a PartitionError naming ``where`` and the first fold that is wrong."""
    if not isinstance(obj, dict) or not obj:
        raise PartitionError(f"{where}: a partition is a non-empty JSON object of folds")
    folds = {}
    for name, fold in obj.items():
        if not isinstance(fold, dict) or set(fold) != set(PARTS):
            raise PartitionError(f"{where}: fold {name!r} must have exactly the keys train, dev, test")
        for p in PARTS:
            if not isinstance(fold[p], list) or not all(isinstance(i, str) for i in fold[p]):
                raise PartitionError(f"{where}: fold {name!r} {p} must be a list of id strings")
        folds[name] = {p: list(fold[p]) for p in PARTS}
    return folds
