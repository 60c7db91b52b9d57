"""Train one head on one fold from a feature store: no encoder runs, only the store is read.

The pieces, one job each: :mod:`~emostore.heads.config` (settings, presets),
:mod:`~emostore.heads.losses` (class-balanced soft cross-entropy), :mod:`~emostore.heads.data`
(fold loading, dev hold-out, overlap refusal, feature source), :mod:`~emostore.heads.loop` (one
run in memory: :func:`train`) and :mod:`~emostore.heads.artifacts` (the run folder's files).
This module joins them into :func:`run` (files in, run folder out); import each name from the
module that defines it.
"""

from __future__ import annotations

from pathlib import Path

from emostore.heads.artifacts import run_record, write_layer_weights, write_model, write_predictions, write_run_json
from emostore.heads.config import TrainConfig, TrainError
from emostore.heads.loop import RunResult, train
from emostore.outputs import ensure_folder


def label_classes(records, meta: dict, where) -> list[str]:
    """The label set's class names (``meta["classes"]``), else ``class0..`` for its target width."""
    classes = meta.get("classes")
    if classes:
        return list(classes)
    kept = next((r for r in records if r.train is not None), None)
    if kept is None:
        raise TrainError(f"{where}: every row is excluded")
    return [f"class{j}" for j in range(len(kept.train))]


def run(store: str, labels: str, partition: str, cfg: TrainConfig, out: str | Path, log=None,
        progress=None, tensorboard: bool = True, threads: int | None = None,
        allow_overlap: bool = False) -> RunResult:
    """Train from files and write ``out/``: run.json (last), model.pt, predictions.jsonl,
    layer_weights.json (weighted-sum) and TensorBoard scalars in ``out/tb``.

    ``threads``, ``allow_overlap`` and ``progress`` (a Progress factory): see :func:`train`.
    """
    from emostore.heads import artifacts
    from emostore.labels.aggregate import read_label_set
    from emostore.manifests.partitions.leakage import read_for_training
    from emostore.store.reader import open as open_store

    fs = open_store(store)
    records, meta = read_label_set(labels)
    classes = label_classes(records, meta, labels)
    part = read_for_training(partition)
    out = Path(out)
    ensure_folder(out)
    (out / "run.json").unlink(missing_ok=True)  # run.json marks a finished run; written last
    on_epoch, writer = artifacts.tensorboard(out) if tensorboard else (None, None)
    try:
        result = train(fs, records, classes, part, cfg, log=log, on_epoch=on_epoch, progress=progress,
                       threads=threads, allow_overlap=allow_overlap)
    finally:
        if writer is not None:
            writer.close()
    write_model(result, fs, out)
    write_predictions(result, out)
    write_layer_weights(result, fs, out)
    record = run_record(result, fs, records, store, labels, meta, classes, partition)
    write_run_json(record, out)
    result.record = record
    return result
