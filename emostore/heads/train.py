"""Train one head on one fold from a feature store: no encoder runs, only the store is read.

Loss: cross-entropy on soft targets (the label set's ``train`` distributions), optionally
class-balanced after Cui et al. (CVPR 2019): ``w_j = (1 - β) / (1 - β^n_j)`` with ``n_j`` the sum of
the training targets' mass on class j, normalised so the weights sum to C (``β = 0`` disables the
weighting: every weight is 1). A class with no training mass gets weight 0 (its target is 0 on
every training row, so only label smoothing could see it). Label smoothing is PyTorch's
(``F.cross_entropy(..., label_smoothing=x)``), train loss only.

Dev loss (model selection): the same class-weighted cross-entropy on the dev rows' ``train``
targets, without smoothing, averaged over rows. The model kept is the one of the epoch with the
lowest dev loss (EMO-SUPERB); ties keep the earliest. Epochs are numbered from 1.

Schedule: AdamW; with ``warmup_epochs`` the learning rate rises linearly, step by step, from
lr/steps to lr over that many epochs, then stays at lr. Early stopping (``patience``): training stops
once the dev loss has not improved for that many epochs; the selection rule is unchanged.

Dev part: the partition's; a fold with an empty dev part needs ``valid_fraction`` (EmoBox: 20% of
train, drawn by the seed, stratified by the targets' argmax).

Test predictions cover every test utterance of the fold that has features, including those the
training label set excludes (a model trained on MR labels is scored on the AR test set too).

Data: see :mod:`emostore.heads.sources`: pooled features whole in memory where the head is exact
on them, else frames streamed by blocks through a cache bounded by ``memory_mb``.

Determinism: ``torch.manual_seed(seed)`` before the head is built (initialisation, dropout) and a
separate ``torch.Generator`` seeded with ``seed`` for the shuffling, so the same seed gives the
same run, and a pooled and a frames run with the same ``shuffle`` see the same batches.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emostore.heads.heads import HEADS, LAYERED, Head, HeadError, WeightedSumHead, build_head, layer_position
from emostore.heads.sources import (
    SHUFFLES, FramesSource, PooledSource, block_frames, block_rows, epoch_order, frame_bytes,
)
from emostore.errors import EmostoreError
from emostore.provenance import file_sha256, library_versions

RUN_FORMAT = "emostore-run/1"
FEATURES = ("auto", "pooled", "frames")


class TrainError(EmostoreError, ValueError):
    """Training cannot run with these inputs (missing ids, no frames, empty parts...)."""


@dataclass
class TrainConfig:
    head: str
    fold: str
    layer: int | None = None  # encoder layer number (store's `layers`), None = last stored
    hidden: int | None = None
    seed: int = 0
    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 0.01  # AdamW's default
    batch_size: int = 32
    beta: float = 0.99  # class-balanced weighting; 0 disables
    smoothing: float = 0.0
    warmup_epochs: int = 0  # linear warm-up of the lr over this many epochs
    patience: int | None = None  # early stopping: epochs without a better dev loss; None = run all epochs
    valid_fraction: float = 0.0  # share of train held out as dev when the fold has no dev part
    features: str = "auto"  # auto | pooled | frames
    shuffle: str = "auto"  # auto (pooled: full, frames: blocks) | full | blocks
    memory_mb: int = 1024  # frames cache bound
    device: str = "cpu"
    preset: str | None = None  # recorded; apply it with config_from(preset=...)


# Published recipes as TrainConfig defaults; explicit settings override them.
PRESETS: dict[str, dict] = {
    # EmoBox (Ma et al. 2024): 20% of train as validation, 100 epochs with 10 warm-up epochs, its head.
    "emobox": {"head": "emobox", "epochs": 100, "warmup_epochs": 10, "valid_fraction": 0.2},
}


def config_from(preset: str | None = None, **settings) -> TrainConfig:
    """A TrainConfig from a preset's values overridden by ``settings`` (None values are not settings)."""
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise TrainError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    values.update({k: v for k, v in settings.items() if v is not None})
    unknown = sorted(set(values) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise TrainError(f"unknown training setting(s): {', '.join(unknown)}")
    missing = [k for k in ("head", "fold") if k not in values]
    if missing:
        raise TrainError(f"a training config needs {' and '.join(missing)}")
    cfg = TrainConfig(preset=preset, **{k: _coerce(k, v) for k, v in values.items()})
    _check_settings(cfg)
    return cfg


def _coerce(name: str, value):
    """``value`` as the type of TrainConfig field ``name`` (YAML reads 1e-3 as a string, TOML 20.0 as
    a float); anything else is an error naming the setting."""
    kind = str(TrainConfig.__dataclass_fields__[name].type)
    if value is None and "None" in kind:
        return None
    try:
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        raise TrainError(f"setting {name}: expected {kind.split(' ')[0]}, got {value!r}") from None
    if not isinstance(value, str):
        raise TrainError(f"setting {name}: expected a string, got {value!r}")
    return value


@dataclass
class RunResult:
    config: TrainConfig
    classes: list[str]
    features: str  # what was actually read: "pooled" or "frames"
    class_weights: list[float]
    train_losses: list[float]
    dev_losses: list[float]
    selected_epoch: int  # 1-based
    test_ids: list[str]
    test_probs: np.ndarray
    head: Head
    layer_weights: list[float] | None = None
    seconds: float = 0.0
    record: dict = field(default_factory=dict)


def class_balanced_weights(targets: np.ndarray, beta: float = 0.99) -> np.ndarray:
    """Cui et al. weights ``(1-β)/(1-β^n_j)`` from soft targets [N, C], normalised to sum to C.

    ``n_j`` = column sums of ``targets``; a class with ``n_j == 0`` gets 0; ``beta == 0`` -> all ones.
    """
    targets = np.asarray(targets, dtype=np.float64)
    c = targets.shape[1]
    if not 0.0 <= beta < 1.0:
        raise TrainError(f"beta must be in [0, 1), got {beta}")
    if beta == 0.0:
        return np.ones(c)
    n = targets.sum(axis=0)
    w = np.zeros(c)
    seen = n > 0
    w[seen] = (1.0 - beta) / (1.0 - np.power(beta, n[seen]))
    if not seen.any():
        raise TrainError("the training targets are empty")
    return w / w.sum() * c


def soft_cross_entropy(logits, targets, weight=None, smoothing: float = 0.0):
    """Mean over rows of ``-Σ_j w_j t_j log softmax(logits)_j`` (PyTorch's probability-target CE)."""
    return F.cross_entropy(logits, targets, weight=weight, label_smoothing=smoothing)


# -- inputs ------------------------------------------------------------------------------------


@dataclass
class FoldData:
    ids: dict[str, list[str]]  # part -> kept ids (excluded label rows dropped)
    rows: dict[str, np.ndarray]  # part -> store row numbers
    targets: dict[str, np.ndarray]  # part -> [n, C] float32 train targets
    skipped: dict[str, int]  # part -> excluded label rows dropped
    predict_ids: list[str] = field(default_factory=list)  # test ids with features, excluded ones included
    predict_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dev_source: str = "partition"  # or "valid_fraction"


def _first(ids: list[str], n: int = 10) -> str:
    return ", ".join(ids[:n]) + (" ..." if len(ids) > n else "")


def load_fold(fs, records, partition, fold: str, valid_fraction: float = 0.0, seed: int = 0) -> FoldData:
    """Kept ids, store rows and targets of each part of ``fold``; clear errors for missing ids."""
    if fold not in partition.folds:
        raise TrainError(f"no fold {fold!r} in the partition (folds: {', '.join(partition.folds)})")
    if not 0.0 <= valid_fraction < 1.0:
        raise TrainError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    by_id = {r.id: r for r in records}
    index = {u: i for i, u in enumerate(fs.ids.tolist())}
    out = FoldData({}, {}, {}, {})
    for part in ("train", "dev", "test"):
        ids = partition.folds[fold][part]
        if part == "dev" and not ids:
            continue
        no_label = [u for u in ids if u not in by_id]
        if no_label:
            raise TrainError(f"fold {fold!r} {part}: {len(no_label)} id(s) not in the label set: {_first(no_label)}")
        kept = [u for u in ids if by_id[u].excluded is None]
        missing = [u for u in kept if u not in index]
        if missing:
            raise TrainError(f"fold {fold!r} {part}: {len(missing)} id(s) not in the store {fs.path}: "
                             f"{_first(missing)}")
        rows = np.asarray([index[u] for u in kept], dtype=np.int64)
        undone = [u for u, i in zip(kept, rows) if not fs.done[i]]
        if undone:
            raise TrainError(f"fold {fold!r} {part}: {len(undone)} id(s) have no features in {fs.path} "
                             f"(extraction errors, see `emostore store info`): {_first(undone)}")
        if not kept:
            raise TrainError(f"fold {fold!r} {part}: no utterance left (all excluded by the label set)")
        out.ids[part] = kept
        out.rows[part] = rows
        out.targets[part] = np.asarray([by_id[u].train for u in kept], dtype=np.float32)
        out.skipped[part] = len(ids) - len(kept)
        if part == "test":
            out.predict_ids = [u for u in ids if u in index and fs.done[index[u]]]
            out.predict_rows = np.asarray([index[u] for u in out.predict_ids], dtype=np.int64)
    if "dev" not in out.ids:
        if valid_fraction <= 0:
            raise TrainError(f"fold {fold!r} has no dev part; hold out a share of train with "
                             "--valid-fraction (EmoBox: 0.2)")
        _hold_out(out, valid_fraction, seed)
    return out


def _hold_out(data: FoldData, share: float, seed: int) -> None:
    """Move ``share`` of the train rows to dev, per class of the targets' argmax, drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    cls = data.targets["train"].argmax(axis=1)
    dev = np.zeros(len(cls), dtype=bool)
    for c in np.unique(cls):
        members = np.flatnonzero(cls == c)
        take = int(round(share * len(members)))
        dev[rng.permutation(members)[:take]] = True
    if not dev.any() or dev.all():
        raise TrainError(f"--valid-fraction {share} leaves no train or no dev utterance "
                         f"({len(cls)} training utterances)")
    ids = np.asarray(data.ids["train"], dtype=object)
    for part, sel in (("dev", dev), ("train", ~dev)):
        data.ids[part] = ids[sel].tolist()
        data.rows[part] = data.rows["train"][sel]
        data.targets[part] = data.targets["train"][sel]
    data.skipped["dev"] = 0
    data.dev_source = "valid_fraction"


def _choose_features(head_name: str, requested: str, fs, store_frames: bool = True) -> str:
    """pooled or frames for this head; ``store_frames``: the frames must come from the store."""
    exact = HEADS[head_name].pooled_exact
    if requested == "pooled" and not exact:
        raise TrainError(f"the {head_name} head is not exact on pooled features (non-linear before "
                         "pooling); it needs frames")
    use = requested if requested != "auto" else ("pooled" if exact else "frames")
    if use == "frames" and store_frames and not fs.has_frames:
        why = "the" if requested == "auto" else "--features frames asks for the"
        raise TrainError(f"{why} {head_name} head needs frame-level features, but {fs.path} was extracted "
                         f"with --no-frames; re-extract it with `emostore extract MANIFEST --frames --out NEW.zarr`")
    return use


# -- training ----------------------------------------------------------------------------------


def _evaluate(head, source, rows, targets, weight, batch_size) -> tuple[float, np.ndarray]:
    """(mean weighted CE over rows, probabilities [n, C]) in eval mode, no gradients.

    Rows are visited in store order (sequential block reads for frames), results put back in order.
    """
    head.eval()
    order = np.argsort(rows, kind="stable")
    total, probs = 0.0, []
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            idx = order[s:s + batch_size]
            logits = source.logits(head, rows[idx])
            if targets is not None:
                t = torch.from_numpy(targets[idx]).to(logits.device)
                total += float(soft_cross_entropy(logits, t, weight)) * len(idx)
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
    out = np.empty((len(rows), probs[0].shape[1]) if probs else (0, 0), dtype=np.float64)
    if probs:
        out[order] = np.concatenate(probs)
    return total / max(len(rows), 1), out


def make_source(fs, head_name: str, features: str, cfg: TrainConfig, layer_pos: int | None):
    """The store's source for this head: pooled in memory, or frames of the layers it reads."""
    if features == "pooled":
        return PooledSource(fs, cfg.device)
    layers = [layer_pos] if head_name in LAYERED else None
    return FramesSource(fs, layers, cfg.memory_mb << 20, cfg.device)


def _orderer(fs, head_name: str, features: str, cfg: TrainConfig, rows: np.ndarray):
    """A function gen -> positions into ``rows`` for one epoch (see sources.epoch_order)."""
    shuffle = cfg.shuffle if cfg.shuffle != "auto" else ("blocks" if features == "frames" else "full")
    n_layers = 1 if head_name in LAYERED else fs.num_layers
    window = max(1, (cfg.memory_mb << 20) // 2 // frame_bytes(fs, n_layers))
    block = block_rows(fs)
    cost = block_frames(fs, block)
    return lambda gen: epoch_order(rows, gen, shuffle, block, cost, window)


def _check(cfg: TrainConfig) -> None:
    """Every setting, and that the device exists here."""
    _check_settings(cfg)
    try:
        if torch.device(cfg.device).type == "meta":
            raise ValueError("meta tensors hold no data")
        torch.empty(0, device=torch.device(cfg.device))
    except (RuntimeError, AssertionError, ValueError, NotImplementedError) as exc:
        raise TrainError(f"device {cfg.device!r} is not usable here ({str(exc).splitlines()[0]})") from None


def _check_settings(cfg: TrainConfig) -> None:
    """The settings on their own (where they will run does not matter)."""
    if cfg.head not in HEADS:
        raise HeadError(f"unknown head {cfg.head!r}; known: {', '.join(HEADS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise TrainError("epochs and batch size must be >= 1 and lr > 0")
    if not 0.0 <= cfg.smoothing < 1.0:
        raise TrainError(f"smoothing must be in [0, 1), got {cfg.smoothing}")
    if cfg.warmup_epochs < 0 or (cfg.patience is not None and cfg.patience < 1):
        raise TrainError("warmup_epochs must be >= 0 and patience >= 1")
    if cfg.memory_mb < 1:
        raise TrainError("memory_mb must be >= 1")
    if cfg.head == "weighted-sum" and cfg.layer is not None:
        raise TrainError("the weighted-sum head uses every layer; --layer does not apply")
    if cfg.hidden is not None and cfg.hidden < 1:
        raise TrainError(f"hidden size must be >= 1, got {cfg.hidden}")
    if cfg.features not in FEATURES:
        raise TrainError(f"unknown features {cfg.features!r}; known: {', '.join(FEATURES)}")
    if cfg.shuffle not in SHUFFLES:
        raise TrainError(f"unknown shuffle {cfg.shuffle!r}; known: {', '.join(SHUFFLES)}")
    if not 0.0 <= cfg.beta < 1.0:
        raise TrainError(f"beta must be in [0, 1), got {cfg.beta}")


def _warmup(opt, steps: int):
    """Linear warm-up over ``steps`` optimiser steps (factor (k+1)/steps), then the base lr."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / steps) if steps else 1.0)


def train(fs, records, classes: list[str], partition, cfg: TrainConfig, log=None, source=None,
          on_epoch=None, progress: bool = False) -> RunResult:
    """Train ``cfg.head`` on ``cfg.fold``; keep the epoch with the lowest dev loss; predict the test part.

    ``source``: anything with ``logits(head, rows)`` (default: the store's, see :func:`make_source`).
    ``on_epoch(epoch, scalars, head)`` is called after every epoch (TensorBoard logging).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    _check(cfg)
    features = _choose_features(cfg.head, cfg.features, fs, store_frames=source is None)
    data = load_fold(fs, records, partition, cfg.fold, cfg.valid_fraction, cfg.seed)
    c = len(classes)
    if data.targets["train"].shape[1] != c:
        raise TrainError(f"targets have {data.targets['train'].shape[1]} classes, the label set names {c}")
    weights = class_balanced_weights(data.targets["train"], cfg.beta)
    weight_t = torch.tensor(weights, dtype=torch.float32, device=cfg.device)
    pos = None if cfg.head == "weighted-sum" else layer_position(fs.layers, cfg.layer)

    torch.manual_seed(cfg.seed)
    head = build_head(cfg.head, fs.num_layers, fs.dim, c, layer=pos, hidden=cfg.hidden).to(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    source = source if source is not None else make_source(fs, cfg.head, features, cfg, pos)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    tr_rows, tr_t = data.rows["train"], data.targets["train"]
    steps_per_epoch = -(-len(tr_rows) // cfg.batch_size)
    sched = _warmup(opt, cfg.warmup_epochs * steps_per_epoch)
    order_of = _orderer(fs, cfg.head, features, cfg, tr_rows)

    train_losses, dev_losses = [], []
    best_state, best_epoch, best_loss = None, 0, float("inf")
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"{cfg.head} {cfg.fold}", unit="epoch", disable=not progress,
               leave=False)
    for epoch in bar:
        head.train()
        order = order_of(gen)
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            logits = source.logits(head, tr_rows[idx])
            loss = soft_cross_entropy(logits, torch.from_numpy(tr_t[idx]).to(logits.device), weight_t,
                                      cfg.smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        train_losses.append(total / len(order))
        dev_loss, _ = _evaluate(head, source, data.rows["dev"], data.targets["dev"], weight_t, cfg.batch_size)
        dev_losses.append(dev_loss)
        if dev_loss < best_loss:
            best_loss, best_epoch, best_state = dev_loss, epoch, copy.deepcopy(head.state_dict())
        bar.set_postfix(train=f"{train_losses[-1]:.4f}", dev=f"{dev_loss:.4f}", best=best_epoch)
        if on_epoch:
            on_epoch(epoch, {"loss/train": train_losses[-1], "loss/dev": dev_loss,
                             "lr": opt.param_groups[0]["lr"]}, head)
        if log:
            log(f"epoch {epoch}/{cfg.epochs}: train loss {train_losses[-1]:.4f}, dev loss {dev_loss:.4f}")
        if cfg.patience is not None and epoch - best_epoch >= cfg.patience and best_state is not None:
            if log:
                log(f"early stop: no better dev loss for {cfg.patience} epochs (best: epoch {best_epoch})")
            break
    bar.close()
    if best_state is None:  # every dev loss was NaN
        raise TrainError("the dev loss was never finite; lower the learning rate")
    head.load_state_dict(best_state)
    _, test_probs = _evaluate(head, source, data.predict_rows, None, weight_t, cfg.batch_size)
    lw = head.layer_weights().cpu().tolist() if isinstance(head, WeightedSumHead) else None
    record = {"skipped_excluded": data.skipped, "utterances": {p: len(v) for p, v in data.ids.items()},
              "predicted_test": len(data.predict_ids), "dev_source": data.dev_source, "layer_position": pos}
    if isinstance(source, FramesSource):
        record["frames_cache"] = {"budget_bytes": source.budget, "peak_bytes": source.peak_cached_bytes,
                                  "reads": source.reads}
    return RunResult(cfg, list(classes), features, weights.tolist(), train_losses, dev_losses, best_epoch,
                     data.predict_ids, test_probs, head.cpu(), lw, time.perf_counter() - t0, record)


# -- one run, end to end ------------------------------------------------------------------------


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


def _tensorboard(out: Path):
    """An ``on_epoch`` callback writing TensorBoard scalars under ``out/tb`` (and the writer to close)."""
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))

    def on_epoch(epoch: int, scalars: dict, head) -> None:
        for k, v in scalars.items():
            writer.add_scalar(k, v, epoch)
        if isinstance(head, WeightedSumHead):
            for k, w in enumerate(head.layer_weights().cpu().tolist()):
                writer.add_scalar(f"layer_weight/{k}", w, epoch)

    return on_epoch, writer


def run(store: str, labels: str, partition: str, cfg: TrainConfig, out: str | Path, log=None,
        progress: bool = False, tensorboard: bool = True) -> RunResult:
    """Train from files and write ``out/``: run.json (last), model.pt, predictions.jsonl,
    layer_weights.json (weighted-sum) and TensorBoard scalars in ``out/tb``."""
    from emostore.labels.aggregate import read_label_set
    from emostore.manifests.partitions import read_partition
    from emostore.store.reader import open as open_store

    fs = open_store(store)
    records, meta = read_label_set(labels)
    classes = meta.get("classes")
    if not classes:
        kept = next((r for r in records if r.train is not None), None)
        if kept is None:
            raise TrainError(f"{labels}: every row is excluded")
        classes = [f"class{j}" for j in range(len(kept.train))]
    part = read_partition(partition)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").unlink(missing_ok=True)  # run.json marks a finished run; written last
    on_epoch, writer = _tensorboard(out) if tensorboard else (None, None)
    try:
        result = train(fs, records, classes, part, cfg, log=log, on_epoch=on_epoch, progress=progress)
    finally:
        if writer is not None:
            writer.close()

    torch.save({"format": RUN_FORMAT, "head": cfg.head, "classes": result.classes,
                "num_layers": fs.num_layers, "dim": fs.dim, "layer_position": result.record["layer_position"],
                "hidden": cfg.hidden, "state_dict": result.head.state_dict()}, out / "model.pt")
    lines = "".join(json.dumps({"id": u, "probs": [float(p) for p in row]}) + "\n"
                    for u, row in zip(result.test_ids, result.test_probs))
    (out / "predictions.jsonl").write_text(lines, encoding="utf-8")
    if result.layer_weights is not None:
        (out / "layer_weights.json").write_text(json.dumps(
            {"layers": fs.layers, "weights": result.layer_weights}, indent=1) + "\n", encoding="utf-8")
    record = {
        "format": RUN_FORMAT,
        "config": asdict(cfg),
        "seed": cfg.seed,
        "versions": library_versions("emostore", "torch", "numpy", "zarr", "python"),
        "store": {"path": str(store), "manifest_sha256": fs.attrs.get("manifest_sha256"),
                  "encoder": (fs.attrs.get("encoder") or {}).get("name"), "corpus": fs.attrs.get("corpus"),
                  "layers": fs.layers, "dim": fs.dim},
        "labels": {"path": str(labels), "sha256": file_sha256(labels), "rule": meta.get("rule"), "classes": classes},
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
    tmp = out / "run.json.tmp"  # atomic: a run.json that exists is whole
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out / "run.json")
    result.record = record
    return result
