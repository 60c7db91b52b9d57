"""EMO-SUPERB's published ``labels_consensus_<k>.csv`` files -> one label set + one partition.

A user with the audio trains on EMO-SUPERB's exact targets and splits: the train target of every
clip is the published soft label as written (already smoothed, see
:func:`emostore.labels.aggregate.smooth`'s ``emo-superb`` convention); the test target is the
classes whose target exceeds 1/C — the same classes as ``share > 1/C`` on the unsmoothed shares,
since both smoothing conventions fix 1/C. The files of one corpus repeat the same labels with a
different ``Split_Set`` each; a clip whose targets differ between the files is refused. The
partition's folds are the files' ``Split_Set`` columns (fold k from ``labels_consensus_<k>``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emostore.labels.aggregate import LabelRecord, share_positive
from emostore.labels.votes import LabelSetError
from emostore.manifests.emo_superb_lists import ConsensusFile, fold_number, folds_of, read_consensus
from emostore.manifests.partitions.io import Partition
from emostore.manifests.partitions.leakage import check_leakage, leaks
from emostore.provenance import file_sha256

TOLERANCE = 1e-6  # the published files write 6 decimals


def import_consensus(paths: list[str | Path], corpus: str | None = None, manifest=None
                     ) -> tuple[list[LabelRecord], dict, Partition]:
    """(label records, label-set metadata, partition) of the published files of one corpus.

    ``manifest`` (a Manifest or rows), when given, must hold every published id (extra rows are
    allowed: they get no label and are in no fold); its sha256 is recorded.
    """
    if not paths:
        raise LabelSetError("give at least one labels_consensus_<k>.csv file")
    files = [read_consensus(p) for p in paths]
    numbers = [fold_number(f.path) for f in files]
    if len(set(numbers)) != len(numbers):
        raise LabelSetError(f"two files for the same fold among {', '.join(map(str, paths))}")
    first = files[0]
    for f in files[1:]:
        if f.classes != first.classes:
            raise LabelSetError(f"{f.path}: classes {list(f.classes)} differ from {first.path}'s {list(first.classes)}")
    targets = _targets(files)
    records = [LabelRecord(i, [float(v) for v in t], [int(v) for v in share_positive(np.asarray(t))], None)
               for i, t in targets.items()]
    folds = folds_of(files)
    rows = [{"id": r.id, "speaker": r.speaker} for r in first.rows]
    if manifest is not None:
        mrows = list(manifest.rows if hasattr(manifest, "rows") else manifest)
        check_leakage(Partition(folds), mrows, speaker_independent=False)  # every published id is a row
        rows = mrows
    source = [{"path": str(p), "sha256": file_sha256(p)} for p in paths]
    meta = {
        "rule": "published", "protocol": "EMO-SUPERB labels_consensus", "corpus": corpus,
        "classes": list(first.classes), "soft": True, "smoothing": None,
        "smoothing_convention": "emo-superb (as published; targets are taken as written)",
        "test_targets": "share>1/C", "sources": source, "utterances": len(records), "excluded": 0,
    }
    if manifest is not None and hasattr(manifest, "sha256"):
        meta["manifest"], meta["manifest_sha256"] = manifest.source, manifest.sha256
    pmeta = {"rule": "emo-superb", "corpus": corpus, "protocol": "EMO-SUPERB's published splits",
             "seed": None, "speaker_independent": not leaks(folds, rows), "sources": source,
             "sizes": {name: {p: len(ids) for p, ids in fold.items()} for name, fold in folds.items()}}
    return records, meta, Partition(folds, pmeta)


def _targets(files: list[ConsensusFile]) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    where: dict[str, str] = {}
    for f in sorted(files, key=lambda f: fold_number(f.path)):
        for r in f.rows:
            if r.id in out:
                if max(abs(a - b) for a, b in zip(out[r.id], r.target)) > TOLERANCE:
                    raise LabelSetError(f"{f.path}: the target of {r.id!r} differs from {where[r.id]}'s")
            else:
                if not all(v >= 0 for v in r.target) or abs(sum(r.target) - 1) > 1e-3:
                    raise LabelSetError(f"{f.path}: the target of {r.id!r} is not a distribution (sum {sum(r.target):.6g})")
                out[r.id], where[r.id] = r.target, f.path
    return out
