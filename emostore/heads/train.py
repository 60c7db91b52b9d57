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

Data: heads that are exact on pooled features (``Head.pooled_exact``) read ``pooled/mean`` once,
whole ([N, L, D] float32 is small), and index it in memory. Other heads (or ``features="frames"``)
read each batch's utterances with :meth:`FeatureStore.frames`, pad them and build a mask; only one
batch of frames is in memory at a time.

Determinism: ``torch.manual_seed(seed)`` before the head is built (initialisation, dropout) and a
separate ``torch.Generator`` seeded with ``seed`` for the shuffling, so the same seed gives the
same run, and the pooled and the frames path see the same batches in the same order.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from emostore.heads.heads import HEADS, Head, HeadError, WeightedSumHead, build_head, layer_position

RUN_FORMAT = "emostore-run/1"
FEATURES = ("auto", "pooled", "frames")


class TrainError(ValueError):
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
    features: str = "auto"  # auto | pooled | frames


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


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FoldData:
    ids: dict[str, list[str]]  # part -> kept ids (excluded label rows dropped)
    rows: dict[str, np.ndarray]  # part -> store row numbers
    targets: dict[str, np.ndarray]  # part -> [n, C] float32 train targets
    skipped: dict[str, int]  # part -> excluded label rows dropped


def load_fold(fs, records, partition, fold: str) -> FoldData:
    """Kept ids, store rows and targets of each part of ``fold``; clear errors for missing ids."""
    if fold not in partition.folds:
        raise TrainError(f"no fold {fold!r} in the partition (folds: {', '.join(partition.folds)})")
    by_id = {r.id: r for r in records}
    index = {u: i for i, u in enumerate(fs.ids.tolist())}
    out = FoldData({}, {}, {}, {})
    for part in ("train", "dev", "test"):
        ids = partition.folds[fold][part]
        no_label = [u for u in ids if u not in by_id]
        if no_label:
            raise TrainError(f"fold {fold!r} {part}: {len(no_label)} id(s) not in the label set: "
                             f"{', '.join(no_label[:10])}{' ...' if len(no_label) > 10 else ''}")
        kept = [u for u in ids if by_id[u].excluded is None]
        missing = [u for u in kept if u not in index]
        if missing:
            raise TrainError(f"fold {fold!r} {part}: {len(missing)} id(s) not in the store {fs.path}: "
                             f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        rows = np.asarray([index[u] for u in kept], dtype=np.int64)
        undone = [u for u, i in zip(kept, rows) if not fs.done[i]]
        if undone:
            raise TrainError(f"fold {fold!r} {part}: {len(undone)} id(s) have no features in {fs.path} "
                             f"(extraction errors, see `emostore store info`): {', '.join(undone[:10])}")
        if not kept:
            raise TrainError(f"fold {fold!r} {part}: no utterance left (all excluded by the label set)")
        out.ids[part] = kept
        out.rows[part] = rows
        out.targets[part] = np.asarray([by_id[u].train for u in kept], dtype=np.float32)
        out.skipped[part] = len(ids) - len(kept)
    return out


class PooledSource:
    """All pooled features [N, L, D] in memory; batches are row-indexed."""

    def __init__(self, fs):
        self.pooled = torch.from_numpy(np.ascontiguousarray(fs.pooled(), dtype=np.float32))

    def logits(self, head: Head, rows: np.ndarray) -> torch.Tensor:
        return head.forward_pooled(self.pooled[torch.from_numpy(rows)])


class FramesSource:
    """Each batch's utterances read from the store's frames, padded to the longest, with a mask."""

    def __init__(self, fs):
        self.fs = fs

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        arrays = [self.fs.frames(int(i)) for i in rows]
        t = max(a.shape[0] for a in arrays)
        x = np.zeros((len(arrays), t) + arrays[0].shape[1:], dtype=np.float32)
        mask = np.zeros((len(arrays), t), dtype=bool)
        for k, a in enumerate(arrays):
            x[k, : a.shape[0]] = a
            mask[k, : a.shape[0]] = True
        return torch.from_numpy(x), torch.from_numpy(mask)

    def logits(self, head: Head, rows: np.ndarray) -> torch.Tensor:
        x, mask = self.batch(rows)
        return head.forward_frames(x, mask)


def _choose_features(head_name: str, requested: str, fs) -> str:
    if requested not in FEATURES:
        raise TrainError(f"unknown features {requested!r}; known: {', '.join(FEATURES)}")
    exact = HEADS[head_name].pooled_exact
    if requested == "pooled" and not exact:
        raise TrainError(f"the {head_name} head is not exact on pooled features (non-linear before "
                         "pooling); it needs frames")
    use = requested if requested != "auto" else ("pooled" if exact else "frames")
    if use == "frames" and not fs.has_frames:
        why = "the" if requested == "auto" else "--features frames asks for the"
        raise TrainError(f"{why} {head_name} head needs frame-level features, but {fs.path} was extracted "
                         f"with --no-frames; re-extract it with `emostore extract MANIFEST --frames --out NEW.zarr`")
    return use


# -- training ----------------------------------------------------------------------------------


def _evaluate(head, source, rows, targets, weight, batch_size) -> tuple[float, np.ndarray]:
    """(mean weighted CE over rows, probabilities [n, C]) in eval mode, no gradients."""
    head.eval()
    total, probs = 0.0, []
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            logits = source.logits(head, rows[s:s + batch_size])
            t = torch.from_numpy(targets[s:s + batch_size])
            total += float(soft_cross_entropy(logits, t, weight)) * len(t)
            probs.append(torch.softmax(logits, dim=-1).numpy())
    return total / len(rows), np.concatenate(probs).astype(np.float64)


def train(fs, records, classes: list[str], partition, cfg: TrainConfig, log=None) -> RunResult:
    """Train ``cfg.head`` on ``cfg.fold``; keep the epoch with the lowest dev loss; predict the test part."""
    t0 = time.perf_counter()
    if cfg.head not in HEADS:
        raise HeadError(f"unknown head {cfg.head!r}; known: {', '.join(HEADS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise TrainError("epochs and batch size must be >= 1 and lr > 0")
    if not 0.0 <= cfg.smoothing < 1.0:
        raise TrainError(f"smoothing must be in [0, 1), got {cfg.smoothing}")
    features = _choose_features(cfg.head, cfg.features, fs)
    data = load_fold(fs, records, partition, cfg.fold)
    c = len(classes)
    if data.targets["train"].shape[1] != c:
        raise TrainError(f"targets have {data.targets['train'].shape[1]} classes, the label set names {c}")
    weights = class_balanced_weights(data.targets["train"], cfg.beta)
    weight_t = torch.tensor(weights, dtype=torch.float32)
    pos = None if cfg.head == "weighted-sum" else layer_position(fs.layers, cfg.layer)
    if cfg.head == "weighted-sum" and cfg.layer is not None:
        raise TrainError("the weighted-sum head uses every layer; --layer does not apply")

    torch.manual_seed(cfg.seed)
    head = build_head(cfg.head, fs.num_layers, fs.dim, c, layer=pos, hidden=cfg.hidden)
    gen = torch.Generator().manual_seed(cfg.seed)
    source = PooledSource(fs) if features == "pooled" else FramesSource(fs)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    tr_rows, tr_t = data.rows["train"], data.targets["train"]
    train_losses, dev_losses = [], []
    best_state, best_epoch, best_loss = None, 0, float("inf")
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(len(tr_rows), generator=gen).numpy()
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            logits = source.logits(head, tr_rows[idx])
            loss = soft_cross_entropy(logits, torch.from_numpy(tr_t[idx]), weight_t, cfg.smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_losses.append(total / len(order))
        dev_loss, _ = _evaluate(head, source, data.rows["dev"], data.targets["dev"], weight_t, cfg.batch_size)
        dev_losses.append(dev_loss)
        if dev_loss < best_loss:
            best_loss, best_epoch, best_state = dev_loss, epoch, copy.deepcopy(head.state_dict())
        if log:
            log(f"epoch {epoch}/{cfg.epochs}: train loss {train_losses[-1]:.4f}, dev loss {dev_loss:.4f}")
    if best_state is None:  # every dev loss was NaN
        raise TrainError("the dev loss was never finite; lower the learning rate")
    head.load_state_dict(best_state)
    _, test_probs = _evaluate(head, source, data.rows["test"], data.targets["test"], weight_t, cfg.batch_size)
    lw = head.layer_weights().tolist() if isinstance(head, WeightedSumHead) else None
    return RunResult(cfg, list(classes), features, weights.tolist(), train_losses, dev_losses, best_epoch,
                     data.ids["test"], test_probs, head, lw, time.perf_counter() - t0,
                     {"skipped_excluded": data.skipped,
                      "utterances": {p: len(v) for p, v in data.ids.items()},
                      "layer_position": pos})


# -- one run, end to end ------------------------------------------------------------------------


def _versions() -> dict:
    import zarr

    from emostore import __version__

    return {"emostore": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "zarr": zarr.__version__, "python": platform.python_version()}


def run(store: str, labels: str, partition: str, cfg: TrainConfig, out: str | Path, log=None) -> RunResult:
    """Train from files and write ``out/``: run.json, model.pt, predictions.jsonl, layer_weights.json."""
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
    result = train(fs, records, classes, part, cfg, log=log)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
        "versions": _versions(),
        "store": {"path": str(store), "manifest_sha256": fs.attrs.get("manifest_sha256"),
                  "encoder": (fs.attrs.get("encoder") or {}).get("name"), "layers": fs.layers, "dim": fs.dim},
        "labels": {"path": str(labels), "sha256": _sha256(labels), "rule": meta.get("rule"), "classes": classes},
        "partition": {"path": str(partition), "sha256": _sha256(partition), "fold": cfg.fold},
        "features": result.features,
        "class_weights": result.class_weights,
        "selected_epoch": result.selected_epoch,
        "dev_losses": result.dev_losses,
        "train_losses": result.train_losses,
        "seconds": round(result.seconds, 3),
        **result.record,
    }
    (out / "run.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    result.record = record
    return result
