"""Train one head on one fold from a feature store: no encoder runs, only the store is read.

The pieces, one job each: :mod:`~emostore.heads.config` (settings, presets),
:mod:`~emostore.heads.losses` (class-balanced soft cross-entropy), :mod:`~emostore.heads.data`
(fold loading, dev hold-out, overlap refusal, feature source), :mod:`~emostore.heads.loop` (one
run in memory: :func:`train`) and :mod:`~emostore.heads.artifacts` (the run folder's files).
This module joins them into :func:`run` (files in, run folder out); the group path
(:mod:`emostore.sweep.group`) uses the same :func:`read_inputs`, :func:`start_folder` and
:func:`write_folder`, so a member writes what a single run writes. Import each name from the module
that defines it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


def read_inputs(labels: str, partition: str) -> tuple:
    """(label records, label meta, class names, partition) of a run's label set and partition files."""
    from emostore.labels.aggregate import read_label_set
    from emostore.manifests.partitions.leakage import read_for_training

    records, meta = read_label_set(labels)
    return records, meta, label_classes(records, meta, labels), read_for_training(partition)


def start_folder(out: str | Path) -> Path:
    """The run folder, made, without a run.json (run.json marks a finished run; it is written last)."""
    out = ensure_folder(out)
    (out / "run.json").unlink(missing_ok=True)
    return out


def write_folder(result: RunResult, fs, out: Path, store, labels, inputs: tuple, partition) -> None:
    """model.pt, predictions.jsonl, layer_weights.json, then run.json (last) of a finished run."""
    records, meta, classes, _ = inputs
    write_model(result, fs, out)
    write_predictions(result, out)
    write_layer_weights(result, fs, out)
    record = run_record(result, fs, records, store, labels, meta, classes, partition)
    write_run_json(record, out)
    result.record = record


def run(store: str, labels: str, partition: str, cfg: TrainConfig, out: str | Path, log=None,
        progress=None, tensorboard: bool = True, threads: int | None = None,
        allow_overlap: bool = False) -> RunResult:
    """Train from files and write ``out/``: run.json (last), model.pt, predictions.jsonl,
    layer_weights.json (weighted-sum) and TensorBoard scalars in ``out/tb``.

    ``threads``, ``allow_overlap`` and ``progress`` (a Progress factory): see :func:`train`.
    """
    from emostore.heads import artifacts
    from emostore.store.reader import open as open_store

    fs = open_store(store)
    inputs = read_inputs(labels, partition)
    records, _, classes, part = inputs
    out = start_folder(out)
    on_epoch, writer = artifacts.tensorboard(out) if tensorboard else (None, None)
    try:
        result = train(fs, records, classes, part, cfg, log=log, on_epoch=on_epoch, progress=progress,
                       threads=threads, allow_overlap=allow_overlap)
    finally:
        if writer is not None:
            writer.close()
    write_folder(result, fs, out, store, labels, inputs, partition)
    return result


@dataclass
class GroupRun:
    """One member of :func:`run_group`: its label set and partition files, config and run folder."""

    labels: str
    partition: str
    cfg: TrainConfig
    out: str | Path


def run_group(store: str, runs: list[GroupRun], threads: int | None = None, tensorboard: bool = True,
              allow_overlap: bool = False, on_done=None) -> list:
    """Train ``runs`` on one store together (:func:`emostore.heads.group.train_group`) and write each
    member's folder as :func:`run` writes it, as soon as that member is finished.

    The store is opened once, each label set and partition read once. Returns per member a
    :class:`RunResult` or the exception that stopped it; ``on_done(i, result_or_exception)`` is
    called after member ``i``'s folder is written (or it failed).
    """
    from emostore.heads import artifacts
    from emostore.heads.group import Member, train_group
    from emostore.store.reader import open as open_store

    fs = open_store(store)
    read: dict = {}
    members, inputs, scalars, unreadable = [], [], [], {}
    for i, r in enumerate(runs):
        key = (r.labels, r.partition)
        if key not in read:
            try:
                read[key] = read_inputs(r.labels, r.partition)
            except Exception as exc:  # this label set or partition: its members fail, the others train
                read[key] = exc
        start_folder(r.out)
        scalars.append([])
        if isinstance(read[key], Exception):
            unreadable[i] = read[key]
            continue
        inputs.append(read[key])
        records, _, classes, part = read[key]
        members.append(Member(r.cfg, records, classes, part,
                              on_epoch=(lambda e, s, h, box=scalars[-1]: box.append((e, s))) if tensorboard else None))
    index = [i for i in range(len(runs)) if i not in unreadable]  # member position -> position in runs

    results: list = [None] * len(runs)

    def write(j: int, value) -> None:
        i = index[j]
        r = runs[i]
        if isinstance(value, RunResult):
            try:
                out = Path(r.out)
                if tensorboard:  # from the member's buffered epochs
                    artifacts.write_scalars(out, scalars[i])
                write_folder(value, fs, out, store, r.labels, inputs[j], r.partition)
            except Exception as exc:  # writing this member's folder failed: it fails alone
                value = exc
        scalars[i] = None
        results[i] = value
        if on_done:
            on_done(i, value)

    for i, exc in unreadable.items():
        results[i] = exc
        if on_done:
            on_done(i, exc)
    # folders are written by one thread beside the training (TensorBoard's close fsyncs each file)
    with ThreadPoolExecutor(max_workers=1) as writer_pool:
        pending = []
        train_group(fs, members, threads=threads, allow_overlap=allow_overlap,
                    on_done=lambda j, value: pending.append(writer_pool.submit(write, j, value)))
        for f in pending:
            f.result()
    return results
