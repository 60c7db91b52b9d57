"""One training run in memory: a head trained on a fold, selected by dev loss, predicting the test part.

Dev loss (model selection): the same class-weighted cross-entropy on the dev rows' ``train``
targets, without smoothing, averaged over rows. The model kept is the one of the epoch with the
lowest dev loss (EMO-SUPERB); ties keep the earliest. Epochs are numbered from 1.

Schedule: AdamW; with ``warmup_epochs`` the learning rate rises linearly, step by step, from
lr/steps to lr over that many epochs, then stays at lr. Early stopping (``patience``): training stops
once the dev loss has not improved for that many epochs; the selection rule is unchanged.

Determinism: ``torch.manual_seed(seed)`` before the head is built (initialisation, dropout) and a
separate ``torch.Generator`` seeded with ``seed`` for the shuffling, so the same seed gives the
same run, and a pooled and a frames run with the same ``shuffle`` see the same batches.

Threads: a run trains with ``DEFAULT_THREADS`` (1) torch intra-op threads unless ``threads`` says
otherwise (restored after). torch splits a matrix product's or a reduction's sums by thread
count, so the same run on 1 and on 2 threads differs in the last bits (measured: test
probabilities 3e-7 apart after 10 epochs of weighted-sum on Whisper's pooled EmoDB features, 9e-8
after 3 of ar-mlp on FBANK), and over 100 early-stopped epochs that can move the kept epoch and a
table's numbers. One thread gives the same numbers on every machine whatever its core count
(same CPU kernels assumed), and these heads are small: on the 2-core test machine one thread was
also faster. A sweep runs in parallel across runs instead (``--jobs``).
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from emostore.heads.config import TrainConfig, TrainError, check
from emostore.heads.data import choose_features, load_fold, make_source, orderer
from emostore.heads.heads import Head, WeightedSumHead, build_head
from emostore.heads.names import layer_position
from emostore.heads.heap import tune_malloc
from emostore.heads.losses import class_balanced_weights, soft_cross_entropy
from emostore.heads.sources import FramesSource
from emostore.progress import as_factory


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


DEFAULT_THREADS = 1


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` inside the block (None: unchanged)."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise TrainError(f"threads must be a whole number >= 1, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate(head, source, rows, targets, weight, batch_size) -> tuple[float, np.ndarray]:
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


def _warmup(opt, steps: int):
    """Linear warm-up over ``steps`` optimiser steps (factor (k+1)/steps), then the base lr."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / steps) if steps else 1.0)


def train(fs, records, classes: list[str], partition, cfg: TrainConfig, log=None, source=None,
          on_epoch=None, progress=None, threads: int | None = None,
          allow_overlap: bool = False) -> RunResult:
    """Train ``cfg.head`` on ``cfg.fold``; keep the epoch with the lowest dev loss; predict the test part.

    ``source``: anything with ``logits(head, rows)`` (default: the store's, see :func:`make_source`).
    ``on_epoch(epoch, scalars, head)`` is called after every epoch (TensorBoard logging).
    ``threads``: torch threads for this run (None: ``DEFAULT_THREADS``, 1: the numbers do not
    depend on the machine's core count; more threads may change their last bits). ``allow_overlap``: train on a
    fold whose test ids are also in its train or dev part (refused otherwise). ``progress``: a
    :class:`~emostore.progress.Progress` factory, one unit per epoch (default: quiet).
    """
    tune_malloc()
    with torch_threads(DEFAULT_THREADS if threads is None else threads):
        result = _train(fs, records, classes, partition, cfg, log, source, on_epoch, progress, allow_overlap)
        result.record["torch_threads"] = torch.get_num_threads()
    return result


@dataclass
class Setup:
    """What a run reads before its first step: the features it uses, its fold, class weights, layer."""

    features: str
    data: object  # FoldData
    weights: np.ndarray
    layer_position: int | None


def setup(fs, records, classes, partition, cfg: TrainConfig, store_frames: bool = True,
          allow_overlap: bool = False) -> Setup:
    """Check ``cfg``, load its fold and class weights (shared by a single run and a group member)."""
    check(cfg)
    features = choose_features(cfg.head, cfg.features, fs, store_frames=store_frames)
    data = load_fold(fs, records, partition, cfg.fold, cfg.valid_fraction, cfg.seed, allow_overlap)
    c = len(classes)
    if data.targets["train"].shape[1] != c:
        raise TrainError(f"targets have {data.targets['train'].shape[1]} classes, the label set names {c}")
    weights = class_balanced_weights(data.targets["train"], cfg.beta)
    pos = None if cfg.head == "weighted-sum" else layer_position(fs.layers, cfg.layer)
    return Setup(features, data, weights, pos)


def new_head(fs, cfg: TrainConfig, num_classes: int, pos: int | None) -> Head:
    """The head a run starts from: ``torch.manual_seed(cfg.seed)``, then built (its initialisation)."""
    torch.manual_seed(cfg.seed)
    return build_head(cfg.head, fs.num_layers, fs.dim, num_classes, layer=pos, hidden=cfg.hidden).to(cfg.device)


def epoch_scalars(train_loss: float, dev_loss: float, lr: float, layer_weights: list[float] | None) -> dict:
    """The TensorBoard scalars of one epoch (``layer_weight/K`` for weighted-sum heads)."""
    out = {"loss/train": train_loss, "loss/dev": dev_loss, "lr": lr}
    for k, w in enumerate(layer_weights or []):
        out[f"layer_weight/{k}"] = w
    return out


def finish(cfg: TrainConfig, classes, s: Setup, head: Head, best_state, best_epoch: int, train_losses,
           dev_losses, source, seconds: float) -> RunResult:
    """Load the selected epoch's state, predict the test part, and gather the run's result."""
    if best_state is None:  # every dev loss was NaN
        raise TrainError("the dev loss was never finite; lower the learning rate")
    head.load_state_dict(best_state)
    weight_t = torch.tensor(s.weights, dtype=torch.float32, device=cfg.device)
    _, test_probs = evaluate(head, source, s.data.predict_rows, None, weight_t, cfg.batch_size)
    lw = head.layer_weights().cpu().tolist() if isinstance(head, WeightedSumHead) else None
    data = s.data
    record = {"skipped_excluded": data.skipped, "utterances": {p: len(v) for p, v in data.ids.items()},
              "predicted_test": len(data.predict_ids), "dev_source": data.dev_source,
              "layer_position": s.layer_position}
    if data.overlap:
        record["overlap_allowed"] = data.overlap
    if isinstance(source, FramesSource):
        record["frames_cache"] = {"budget_bytes": source.budget, "peak_bytes": source.peak_cached_bytes,
                                  "reads": source.reads}
    return RunResult(cfg, list(classes), s.features, s.weights.tolist(), train_losses, dev_losses, best_epoch,
                     data.predict_ids, test_probs, head.cpu(), lw, seconds, record)


def _train(fs, records, classes, partition, cfg, log, source, on_epoch, progress, allow_overlap) -> RunResult:
    t0 = time.perf_counter()
    s = setup(fs, records, classes, partition, cfg, store_frames=source is None, allow_overlap=allow_overlap)
    data, pos = s.data, s.layer_position
    weight_t = torch.tensor(s.weights, dtype=torch.float32, device=cfg.device)
    head = new_head(fs, cfg, len(classes), pos)
    gen = torch.Generator().manual_seed(cfg.seed)
    source = source if source is not None else make_source(fs, cfg.head, s.features, cfg, pos)
    # fused: one kernel per parameter, and the update a group member gets (heads.stacked.StackedAdamW)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    tr_rows, tr_t = data.rows["train"], data.targets["train"]
    steps_per_epoch = -(-len(tr_rows) // cfg.batch_size)
    sched = _warmup(opt, cfg.warmup_epochs * steps_per_epoch)
    order_of = orderer(fs, cfg.head, s.features, cfg, tr_rows)

    train_losses, dev_losses = [], []
    best_state, best_epoch, best_loss = None, 0, float("inf")
    bar = as_factory(progress)(cfg.epochs, f"train {cfg.head} {cfg.fold}", "epoch")
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = order_of(gen)
        total = 0.0
        for s0 in range(0, len(order), cfg.batch_size):
            idx = order[s0:s0 + cfg.batch_size]
            logits = source.logits(head, tr_rows[idx])
            loss = soft_cross_entropy(logits, torch.from_numpy(tr_t[idx]).to(logits.device), weight_t,
                                      cfg.smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        train_losses.append(total / len(order))
        dev_loss, _ = evaluate(head, source, data.rows["dev"], data.targets["dev"], weight_t, cfg.batch_size)
        dev_losses.append(dev_loss)
        if dev_loss < best_loss:
            best_loss, best_epoch, best_state = dev_loss, epoch, copy.deepcopy(head.state_dict())
        bar.update(1, postfix=f"train loss {train_losses[-1]:.4f}, dev loss {dev_loss:.4f} (best epoch {best_epoch})")
        if on_epoch:
            lw = head.layer_weights().cpu().tolist() if isinstance(head, WeightedSumHead) else None
            on_epoch(epoch, epoch_scalars(train_losses[-1], dev_loss, opt.param_groups[0]["lr"], lw), head)
        if log:
            log(f"epoch {epoch}/{cfg.epochs}: train loss {train_losses[-1]:.4f}, dev loss {dev_loss:.4f}")
        if cfg.patience and epoch - best_epoch >= cfg.patience and best_state is not None:
            stop = f"early stop: no better dev loss for {cfg.patience} epochs (best: epoch {best_epoch})"
            bar.write(stop)
            if log:
                log(stop)
            break
    bar.close()
    return finish(cfg, classes, s, head, best_state, best_epoch, train_losses, dev_losses, source,
                  time.perf_counter() - t0)
