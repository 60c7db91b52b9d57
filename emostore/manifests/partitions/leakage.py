"""The leakage check every partition passes: shape, ids in the manifest, no id twice in a fold, and
(speaker-independent partitions) no train/dev speaker in the test part.

A partition read for training passes it again (:func:`read_for_training`): a file edited after
``emostore partition`` wrote it still claims ``speaker_independent`` in its meta, and a claim that no
longer holds would be scored as if it did."""

from __future__ import annotations

from pathlib import Path

from emostore.manifests.partitions.io import (
    PARTS, Partition, PartitionError, check_parts, read_partition, validate_shape,
)

UNKNOWN_SPEAKERS = {"", "unknown", "none", "null", "nan", "n/a", "na", "?"}


def rows_of(rows) -> list[dict]:
    """The rows of a Manifest, or the list itself."""
    return list(rows.rows) if hasattr(rows, "rows") else list(rows)


def speaker(row: dict) -> str | None:
    """The row's speaker, or None when it has none (or ``"unknown"`` and the like)."""
    s = row.get("speaker")
    if s is None:
        return None
    s = str(s).strip()
    return None if s.lower() in UNKNOWN_SPEAKERS else s


def check_leakage(partition: Partition | dict, rows, speaker_independent: bool = True) -> None:
    """Raise :class:`PartitionError` if ``partition`` is not valid for ``rows``.

    Always: every fold has exactly train/dev/test, every id is in the manifest, and no id appears
    twice within a fold. With ``speaker_independent``: no speaker of a fold's train or dev part is
    also in its test part (the error names the fold and the speakers). Rows without a speaker (or
    ``"unknown"``) cannot leak by speaker and are not compared.
    """
    folds = partition.folds if isinstance(partition, Partition) else validate_shape(partition, "partition")
    by_id = {str(r["id"]): r for r in rows_of(rows)}
    for name, fold in folds.items():
        if set(fold) != set(PARTS):
            raise PartitionError(f"fold {name!r} must have exactly the keys train, dev, test")
        seen: dict[str, str] = {}
        for p in PARTS:
            for i in fold[p]:
                if i in seen:
                    where = p if seen[i] == p else f"{seen[i]} and {p}"
                    raise PartitionError(f"fold {name!r}: id {i!r} appears more than once ({where})")
                seen[i] = p
        missing = [i for i in seen if i not in by_id]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise PartitionError(
                f"fold {name!r}: {len(missing)} ids are not in the manifest: {', '.join(map(repr, missing[:5]))}{more}"
            )
        if not speaker_independent:
            continue
        test_spk = {s for i in fold["test"] if (s := speaker(by_id[i])) is not None}
        for p in ("train", "dev"):
            leak = sorted(test_spk & {s for i in fold[p] if (s := speaker(by_id[i])) is not None})
            if leak:
                raise PartitionError(
                    f"fold {name!r} leaks speakers between {p} and test: {', '.join(leak)}"
                )


def leaks(folds, rows) -> bool:
    """Whether ``folds`` fail the speaker-independent check on ``rows``."""
    try:
        check_leakage(Partition(folds), rows, speaker_independent=True)
    except PartitionError:
        return True
    return False


def _manifest_of(path: Path, partition: Partition) -> Path:
    """The manifest the partition's meta names: as written (relative to the working folder), else
    relative to the partition's folder."""
    named = partition.meta.get("manifest")
    fix = (f"set \"speaker_independent\": false in {path.name}'s meta file, or re-make the partition with "
           "`emostore partition`")
    if not named:
        raise PartitionError(f"{path}: its meta claims speaker_independent but names no manifest to check the "
                             f"speakers against; {fix}")
    for candidate in (Path(named), path.parent / named):
        if candidate.exists():
            return candidate
    raise PartitionError(f"{path}: its meta claims speaker_independent and names the manifest {named}, which is "
                         f"not there to check the speakers against; put it back, or {fix}")


def read_for_training(path: str | Path) -> Partition:
    """:func:`read_partition` with a non-empty train part in every fold (dev may be empty: training
    then holds out ``--valid-fraction`` of train), and when its meta claims speaker independence,
    :func:`check_leakage` against the speakers of the manifest the meta names (ids and duplicates too)."""
    from emostore.manifests.manifest import load_manifest

    path = Path(path)
    partition = read_partition(path)
    check_parts(partition.folds, str(path), ("train", "test"))
    if partition.speaker_independent:
        rows = load_manifest(_manifest_of(path, partition), require_audio=False)
        try:
            check_leakage(partition, rows, speaker_independent=True)
        except PartitionError as exc:
            raise PartitionError(f"{path}: its meta claims speaker_independent, but {exc}; fix the folds, or set "
                                 "\"speaker_independent\": false in its meta file to train on them as they "
                                 "are") from None
    return partition
