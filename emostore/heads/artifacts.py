"""What a finished run leaves in its folder: model.pt, predictions.jsonl, layer_weights.json, run.json.

run.json is written last and atomically: a run folder with a run.json holds a whole run.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from emostore.provenance import file_sha256, library_versions
from emostore.heads.loop import RunResult
from emostore.outputs import atomic_path, write_json, write_text

RUN_FORMAT = "emostore-run/1"


def test_metrics(result: RunResult, records) -> dict:
    """Point metrics of the test predictions on the training label set's kept test utterances."""
    from emostore.evaluate.metrics import evaluate_arrays

    probs = dict(zip(result.test_ids, result.test_probs))
    kept = [r for r in records if r.excluded is None and r.id in probs]
    if not kept:
        return {"n": 0}
    m = evaluate_arrays(np.stack([probs[r.id] for r in kept]), np.asarray([r.train for r in kept]),
                        np.asarray([r.test for r in kept]))
    return {**{k: float(v) for k, v in m.items()}, "n": len(kept)}


test_metrics.__test__ = False  # not a pytest test, whatever imports it


def tensorboard(out: Path):
    """An ``on_epoch`` callback writing TensorBoard scalars under ``out/tb`` (and the writer to close)."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))

    def on_epoch(epoch: int, scalars: dict, head=None) -> None:
        for k, v in scalars.items():  # loop.epoch_scalars: losses, lr, layer_weight/K
            writer.add_scalar(k, v, epoch)

    return on_epoch, writer


def write_scalars(out: Path, epochs: list[tuple[int, dict]]) -> None:
    """TensorBoard scalars of a finished run's epochs (``[(epoch, scalars)]``) as one event file in
    ``out/tb``, written synchronously: what :func:`tensorboard` writes, without its writer thread.

    A group member's epochs are buffered and written when it finishes; ``SummaryWriter`` sends each
    scalar through a multiprocessing queue to a thread of its own, which cost a 500-member probe
    sweep about a fifth of its samples. tensorboardX's ``EventsWriter`` is the file writer under it.
    """
    import time

    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import directory_check
    from tensorboardX.summary import scalar

    tb = out / "tb"
    directory_check(str(tb))
    writer = EventsWriter(str(tb / "events"))
    try:
        now = time.time()
        for epoch, scalars in epochs:
            for k, v in scalars.items():
                writer.write_event(Event(wall_time=now, step=epoch, summary=scalar(k, v)))
    finally:
        writer.close()


def write_model(result: RunResult, fs, out: Path) -> None:
    """model.pt: the selected head's state and what rebuilds it (head, classes, store shape, layer)."""
    cfg = result.config
    with atomic_path(out / "model.pt") as tmp:
        torch.save({"format": RUN_FORMAT, "head": cfg.head, "classes": result.classes,
                    "num_layers": fs.num_layers, "dim": fs.dim, "layer_position": result.record["layer_position"],
                    "hidden": cfg.hidden, "state_dict": result.head.state_dict()}, tmp)


def write_predictions(result: RunResult, out: Path) -> None:
    """predictions.jsonl: ``{"id", "probs"}`` per test utterance of the fold."""
    lines = "".join(json.dumps({"id": u, "probs": [float(p) for p in row]}) + "\n"
                    for u, row in zip(result.test_ids, result.test_probs))
    write_text(out / "predictions.jsonl", lines)


def write_layer_weights(result: RunResult, fs, out: Path) -> None:
    """layer_weights.json (weighted-sum heads only): the store's layer numbers and their weights."""
    if result.layer_weights is not None:
        write_json(out / "layer_weights.json", {"layers": fs.layers, "weights": result.layer_weights})


def run_record(result: RunResult, fs, records, store, labels, label_meta: dict, classes, partition) -> dict:
    """run.json's content: config, versions, input hashes, learning curves, selection, test metrics."""
    cfg = result.config
    return {
        "format": RUN_FORMAT,
        "config": asdict(cfg),
        "seed": cfg.seed,
        "versions": library_versions("emostore", "torch", "numpy", "zarr", "python"),
        "store": {"path": str(store), "manifest_sha256": fs.attrs.get("manifest_sha256"),
                  "encoder": (fs.attrs.get("encoder") or {}).get("name"), "corpus": fs.attrs.get("corpus"),
                  "layers": fs.layers, "dim": fs.dim},
        "labels": {"path": str(labels), "sha256": file_sha256(labels), "rule": label_meta.get("rule"),
                   "classes": classes},
        "partition": {"path": str(partition), "sha256": file_sha256(partition), "fold": cfg.fold},
        "features": result.features,
        "class_weights": result.class_weights,
        "selected_epoch": result.selected_epoch,
        "dev_losses": result.dev_losses,
        "train_losses": result.train_losses,
        "test_metrics": test_metrics(result, records),
        "seconds": round(result.seconds, 3),
        **result.record,
    }


def write_run_json(record: dict, out: Path) -> None:
    """run.json, atomically: a run.json that exists is whole."""
    write_json(out / "run.json", record)
