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

from pydantic import BaseModel, ConfigDict, Field

from emostore.errors import EmostoreError
from emostore.jsonl import meta_path
from emostore.outputs import write_with_meta
from emostore.schema import Id, Row, parse, read_json_file

FORMAT = "emostore-partition/1"
PARTS = ("train", "dev", "test")

__all__ = ["FORMAT", "PARTS", "Partition", "PartitionError", "check_parts", "read_partition", "validate_shape",
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
    """Read a partition file (and its ``.meta.json`` sibling if there is one); every fold is checked
    (:class:`Fold`) and has a non-empty test part (a scoring-only partition may have no train part;
    training asks for one, :func:`~emostore.manifests.partitions.leakage.read_for_training`)."""
    path = Path(path)
    folds = validate_shape(read_json_file(path, PartitionError, "partition file"), str(path))
    check_parts(folds, str(path), ("test",))
    mp = meta_path(path)
    meta = read_json_file(mp, PartitionError, "partition meta file") if mp.exists() else {}
    parse(PartitionMeta, meta, str(mp), PartitionError)
    return Partition(folds, meta)


class Fold(Row):
    """One fold of a partition file: exactly these three lists of ids."""

    train: list[Id] = Field(description="a list of id strings")
    dev: list[Id] = Field(description="a list of id strings (may be empty: --valid-fraction holds out dev)")
    test: list[Id] = Field(description="a list of id strings")


class PartitionMeta(BaseModel):
    """What the readers rely on in a partition's ``.meta.json``; other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")
    speaker_independent: bool = Field(default=False, description="true or false")
    manifest: str | None = Field(default=None, description="the path of the manifest the folds were made from")


def validate_shape(obj, where: str) -> dict[str, dict[str, list[str]]]:
    """``obj`` as folds, or a PartitionError naming ``where`` and the first fold that is wrong."""
    if not isinstance(obj, dict) or not obj:
        raise PartitionError(f"{where}: a partition is a non-empty JSON object of folds "
                             '({"fold1": {"train": [...], "dev": [...], "test": [...]}, ...})')
    return {str(name): parse(Fold, fold, f"{where}: fold {name!r}", PartitionError).model_dump()
            for name, fold in obj.items()}


def check_parts(folds: dict[str, dict[str, list[str]]], where: str, parts: tuple[str, ...] = PARTS) -> None:
    """Refuse folds with an empty part among ``parts``, naming every such fold and part."""
    empty = [f"{name} ({', '.join(p for p in parts if not fold[p])})"
             for name, fold in folds.items() if any(not fold[p] for p in parts)]
    if empty:
        raise PartitionError(f"{where}: {len(empty)} of {len(folds)} folds have an empty part: {'; '.join(empty)}; "
                             f"every fold needs {', '.join(parts)} utterances")
