"""Grouped training: K runs that read the same features trained together, one pass over the data per step.

Each member is a single run (:mod:`emostore.heads.loop`) in everything that decides its result:
its head is built by the single run's code under its own seed (:func:`~emostore.heads.loop.new_head`)
and then stacked (:class:`~emostore.heads.stacked.StackedHead`); it has its own fold, label set,
class weights, smoothing, lr, weight decay, warm-up (:class:`~emostore.heads.stacked.StackedAdamW`),
batch size, batch order (its own shuffling generator and the single run's ``orderer``), dropout
draws (a generator holding the global RNG state its single run would have after building the head),
dev loss per epoch, early stopping and selected epoch. A member that stops leaves the stack; the
others go on. So a member equals the same config trained alone, up to float rounding (stacked
matrix products sum in another order): tests/test_grouped_training.py holds it to 1e-5.

What the members share: the store (opened once), the pooled features in memory or one frames
cache, and every step: one stacked forward and backward for all members with a batch at that step.
Pooled members gather their own rows from the one ``pooled/mean`` tensor. Frame members gather
their own rows' frames from the shared block cache (each member's batch order depends on its seed,
so a batch's frames cannot be shared across seeds; what is shared is one block cache and the
stack's clip cache, half of the largest member's ``memory_mb`` each: :class:`_Feed`) and the step
packs them frame by frame (no padding to the longest
clip), pooling each clip with a segment mean.

A member's ``seconds`` (run.json, the results table) is its share of the group's time: each epoch's
wall time split evenly among the members that trained in it, plus its own test pass, so a sweep's
seconds sum to its training wall time (``group.seconds`` in run.json is the whole group's).

On CUDA (``device``) it runs the same code; dropout masks are then drawn on the device from
per-member generators, which is deterministic but not the same draws as a single CUDA run's fused
dropout (untested on a GPU here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from emostore.heads.batches import Rows, Window, ce_loss_and_grad, padded, windows
from emostore.heads.config import TrainConfig
from emostore.heads.data import orderer
from emostore.heads.fused import normalise
from emostore.heads.heap import tune_malloc
from emostore.heads.loop import RunResult, Setup, epoch_scalars, finish, new_head, setup, torch_threads
from emostore.heads.shared import Sharing
from emostore.heads.sources import FramesSource, PooledSource
from emostore.heads.stacked import StackedAdamW, StackedHead, reads_one_layer, schedule_order


@dataclass
class Member:
    """One run of a group: its config, label set records and classes, partition, epoch callback."""

    cfg: TrainConfig
    records: list
    classes: list[str]
    partition: object
    on_epoch: object = None  # on_epoch(epoch, scalars, None): scalars as a single run reports them


@dataclass
class _Run:
    """A member's training state."""

    index: int  # position in the group's member list
    member: Member
    s: Setup
    head: object  # the member's own nn head (initial state; the selected state is loaded into it at the end)
    gen: torch.Generator  # batch order
    drop_gen: torch.Generator  # dropout draws
    order_of: object
    weight: torch.Tensor
    train_losses: list = field(default_factory=list)
    dev_losses: list = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = float("inf")
    epoch: int = 0
    seconds: float = 0.0  # its share of the group's time: each epoch's wall time split among the members in it

    @property
    def cfg(self) -> TrainConfig:
        return self.member.cfg


def source_key(cfg: TrainConfig, features: str, layer_position: int | None) -> tuple:
    """Members with equal keys read the same features: one source (one frames cache) serves them."""
    frames_layer = layer_position if features == "frames" and reads_one_layer(cfg.head) else None
    return (features, frames_layer, str(cfg.device))


def stack_key(cfg: TrainConfig, features: str, layer_position: int | None, num_classes: int) -> tuple:
    """Members with equal keys train in one stack: same head kind, same feature reads, same classes.

    Frame members also share a hidden size: on frames the per-frame product is the whole cost, and
    a member padded to a wider one would pay for the wider one's units (on pooled features the
    padding costs less than the extra stack would).
    """
    hidden = cfg.hidden if features == "frames" else None
    return (cfg.head, num_classes, hidden) + source_key(cfg, features, layer_position)


def train_group(fs, members: list[Member], threads: int | None = None, allow_overlap: bool = False,
                on_done=None) -> list:
    """Train every member; the result list holds a :class:`RunResult` or the exception of each member.

    ``on_done(i, result_or_exception)`` is called as soon as member ``i`` is finished (its test
    predictions made), so a caller can write its run folder while the others train on.
    """
    out: list = [None] * len(members)

    def done(i, value):
        out[i] = value
        if on_done:
            on_done(i, value)

    tune_malloc()
    with torch_threads(threads):
        stacks: dict[tuple, list[_Run]] = {}
        for i, m in enumerate(members):
            try:
                s = setup(fs, m.records, m.classes, m.partition, m.cfg, allow_overlap=allow_overlap)
                run = _new_run(fs, i, m, s)
            except Exception as exc:  # this member cannot start; the others can
                done(i, exc)
                continue
            stacks.setdefault(stack_key(m.cfg, s.features, s.layer_position, len(m.classes)), []).append(run)
        sources = _Sources(fs, [r for runs in stacks.values() for r in runs])
        for runs in stacks.values():
            try:
                _train_stack(sources.get(runs[0]), runs, done)
            except Exception as exc:  # the stack failed as a whole: every unfinished member records it
                for r in runs:
                    if out[r.index] is None:
                        done(r.index, exc)
        for r in out:
            if isinstance(r, RunResult):
                r.record["torch_threads"] = torch.get_num_threads()
    return out


def _new_run(fs, i: int, m: Member, s: Setup) -> _Run:
    cfg = m.cfg
    head = new_head(fs, cfg, len(m.classes), s.layer_position)
    drop_gen = torch.Generator(device=cfg.device)
    if torch.device(cfg.device).type == "cpu":
        drop_gen.set_state(torch.get_rng_state())  # the global RNG as the single run goes on with it
    else:
        drop_gen.manual_seed(cfg.seed)
    return _Run(i, m, s, head, torch.Generator().manual_seed(cfg.seed), drop_gen,
                orderer(fs, cfg.head, s.features, cfg, s.data.rows["train"]),
                torch.tensor(s.weights, dtype=torch.float32, device=cfg.device))


class _Sources:
    """One source per :func:`source_key`, made when its first stack starts; a frames source and the
    clip cache of the stack reading it share the largest ``memory_mb`` among its members (half each)."""

    def __init__(self, fs, runs: list[_Run]):
        self.fs, self.made = fs, {}
        self.budget: dict[tuple, int] = {}
        for r in runs:
            key = self.key(r)
            self.budget[key] = max(self.budget.get(key, 0), r.cfg.memory_mb << 20)

    @staticmethod
    def key(r: _Run) -> tuple:
        return source_key(r.cfg, r.s.features, r.s.layer_position)

    def get(self, r: _Run):
        key = self.key(r)
        if key not in self.made:
            device = r.cfg.device
            if r.s.features == "pooled":
                self.made[key] = PooledSource(self.fs, device)
            else:
                layers = [r.s.layer_position] if reads_one_layer(r.cfg.head) else None
                # half the budget for the blocks, half for the clip cache of the stack training (_Feed)
                self.made[key] = FramesSource(self.fs, layers, self.budget[key] // 2, device)
        return self.made[key]


class _Feed:
    """The stacked forward of one step: pooled rows gathered from memory, or frames packed from the cache.

    Frames: each clip's frames as a float32 tensor, kept in a clip cache of at most the frames
    source's budget (clips past it are converted at each use; the source has the other half of the
    members' ``memory_mb``, so the two stay within it). For a stack whose per-frame part
    starts with a parameter-free LayerNorm (emobox), the cache holds the normalised frames: a clip is
    normalised once for every member and epoch instead of once per member per epoch (LayerNorm was a
    third of the forward), the same values row by row (:func:`emostore.heads.fused.normalise`).
    """

    def __init__(self, source, frames: bool, device, normalise: bool = False):
        self.source, self.frames, self.device, self.normalise = source, frames, device, normalise
        if not frames:  # [L * N, D], layer-major: one member's (layer, row) is one contiguous row to copy
            n, layers, dim = source.pooled.shape
            self.by_layer = source.pooled.transpose(0, 1).reshape(layers * n, dim).contiguous()
            return
        self.clips: dict[int, torch.Tensor] = {}
        self.clip_bytes, self.budget = 0, source.budget

    def _clip(self, row: int, one_layer: bool) -> torch.Tensor:
        """Store row ``row``'s frames, float32 ``[T, D]`` (``one_layer``) or ``[T, L', D]``, cached."""
        hit = self.clips.get(row)
        if hit is not None:
            return hit
        a = self.source._rows([row])[0]
        t = torch.from_numpy(np.asarray(a[:, 0] if one_layer else a, dtype=np.float32)).to(self.device)
        if self.normalise:
            t = normalise(t)
        if self.clip_bytes + t.nbytes <= self.budget:
            self.clips[row] = t
            self.clip_bytes += t.nbytes
        return t

    def _keys(self, stack: StackedHead, rows: np.ndarray) -> np.ndarray:
        """Pooled: what rows ``[..., K, B]`` read, as rows of :meth:`_table` (one-layer heads: ``layer · N + row``)."""
        if not reads_one_layer(stack.name):
            return rows
        layers = np.asarray(stack.layers, dtype=np.int64)
        return layers[:, None] * self.source.pooled.shape[0] + rows

    def _table(self, stack: StackedHead) -> tuple[torch.Tensor, tuple]:
        """Pooled: the tensor a gather reads rows of, and one row's shape (``[D]`` one layer, else ``[L, D]``)."""
        pooled = self.source.pooled
        if reads_one_layer(stack.name):
            return self.by_layer, tuple(pooled.shape[-1:])
        return pooled, tuple(pooled.shape[1:])

    def share(self, stack: StackedHead, win: Window) -> Sharing | None:
        """Pooled: which members read equal inputs at every step of ``win`` (one gather each); frames: None."""
        if self.frames:
            return None
        return Sharing(Window.per_member(self._keys(stack, win.rows)), self.device)

    def row_bytes(self, stack: StackedHead) -> int:
        """Bytes of one gathered pooled input row."""
        table, row = self._table(stack)
        return int(np.prod(row)) * table.element_size()

    def gather(self, stack: StackedHead, rows: np.ndarray, share: Sharing) -> torch.Tensor:
        """Pooled inputs ``[U, B, ...]`` of one step's ``rows [K, B]``, each distinct input once."""
        table, row = self._table(stack)
        keys = self._keys(stack, rows)[share.reps].reshape(-1)
        return table.index_select(0, torch.from_numpy(keys).to(self.device)).reshape(
            (share.distinct, rows.shape[1]) + row)

    def logits(self, stack: StackedHead, rows: np.ndarray, valid: np.ndarray, dropout=None,
               share: Sharing | None = None) -> torch.Tensor:
        """Logits ``[K, B, C]`` of one step's ``rows [K, B]``; pooled: ``share`` from :meth:`share`."""
        if not self.frames:  # each distinct input gathered once (emostore.heads.shared)
            return stack.pooled(self.gather(stack, rows, share), share, dropout)
        k, width = rows.shape
        one_layer = reads_one_layer(stack.name)  # the source read only this group's layer
        clips = [[self._clip(int(r), one_layer) for r in rows[j][valid[j]]] for j in range(k)]
        lengths = [[c.shape[0] for c in cs] for cs in clips]
        fmax = max([sum(n) for n in lengths] + [1])
        tail = next(cs[0].shape[1:] for cs in clips if cs)
        # empty, then only the padding zeroed (a member's frames are written over the rest): zeroing all
        # of it was 2.5 s of 8 emobox members' 29 s; the padding must be finite (0 x NaN in the backward)
        x = torch.empty((k, fmax) + tail, dtype=torch.float32, device=self.device)
        seg = np.full((k, fmax), k * width, dtype=np.int64)  # padding frames go to a dropped segment
        for j, cs in enumerate(clips):
            n = sum(lengths[j])
            if cs:
                torch.cat(cs, out=x[j, :n])
                seg[j, :n] = np.repeat(j * width + np.arange(len(cs)), lengths[j])
            x[j, n:].zero_()
        h = stack.pre(x, normalised=self.normalise)
        sums = torch.zeros((k * width + 1, h.shape[-1]), dtype=h.dtype, device=self.device)
        sums = sums.index_add(0, torch.from_numpy(seg.reshape(-1)).to(self.device), h.reshape(-1, h.shape[-1]))
        counts = np.zeros((k, width), dtype=np.float32)
        for j, n in enumerate(lengths):
            counts[j, :len(n)] = n
        counts_t = torch.from_numpy(counts).to(self.device).clamp_min(1.0).unsqueeze(-1)
        return stack.post(sums[:-1].reshape(k, width, -1) / counts_t, dropout)


def _train_stack(source, runs: list[_Run], done) -> None:
    t0 = time.perf_counter()
    device = runs[0].cfg.device
    steps_per_epoch = [-(-len(r.s.data.rows["train"]) // r.cfg.batch_size) for r in runs]
    order = schedule_order([r.cfg.lr for r in runs], [r.cfg.weight_decay for r in runs],
                           [r.cfg.warmup_epochs for r in runs], steps_per_epoch)
    runs, steps_per_epoch = [runs[i] for i in order], [steps_per_epoch[i] for i in order]
    stack = StackedHead([r.head for r in runs], device)
    feed = _Feed(source, runs[0].s.features == "frames", device, normalise=stack.normalises)
    opt = StackedAdamW(stack.params, [r.cfg.lr for r in runs], [r.cfg.weight_decay for r in runs],
                       [r.cfg.warmup_epochs * n for r, n in zip(runs, steps_per_epoch)])
    best = {k: p.detach().clone() for k, p in stack.params.items()}
    best_seen = [False] * len(runs)
    train = Rows([(r.s.data.rows["train"], r.s.data.targets["train"]) for r in runs], device)
    dev = Rows([(r.s.data.rows["dev"], r.s.data.targets["dev"]) for r in runs], device)
    alive = list(range(len(runs)))  # positions in runs of the stack's members, in stack order

    def cut(keep: list[int]) -> None:
        nonlocal train, dev, best, best_seen, alive
        stack.keep(keep)
        opt.keep(keep, stack.params)
        sel = torch.as_tensor(keep, dtype=torch.long, device=next(iter(best.values())).device)
        best = {k: b.index_select(0, sel) for k, b in best.items()}
        best_seen = [best_seen[i] for i in keep]
        alive = [alive[i] for i in keep]
        train = Rows([(runs[i].s.data.rows["train"], runs[i].s.data.targets["train"]) for i in alive], device)
        dev = Rows([(runs[i].s.data.rows["dev"], runs[i].s.data.targets["dev"]) for i in alive], device)

    setup_share = (time.perf_counter() - t0) / len(runs)
    for r in runs:
        r.seconds = setup_share
    while alive:
        members = [runs[i] for i in alive]
        t_epoch = time.perf_counter()
        for r in members:
            r.epoch += 1
        _train_epoch(stack, opt, feed, train, members, device)
        dev_losses = _dev_losses(stack, feed, dev, members, device)
        for r in members:
            r.seconds += (time.perf_counter() - t_epoch) / len(members)
        improved = []
        lrs = opt.current_lr()  # once per epoch (each call computes all K members' lrs)
        for j, (r, loss) in enumerate(zip(members, dev_losses)):
            r.dev_losses.append(loss)
            if loss < r.best_loss:
                r.best_loss, r.best_epoch = loss, r.epoch
                improved.append(j)
                best_seen[j] = True
            if r.member.on_epoch:
                r.member.on_epoch(r.epoch, epoch_scalars(r.train_losses[-1], loss, float(lrs[j]),
                                                         stack.layer_weights(j)), None)
        if improved:
            sel = torch.as_tensor(improved, dtype=torch.long, device=next(iter(best.values())).device)
            for k, p in stack.params.items():
                best[k].index_copy_(0, sel, p.detach().index_select(0, sel))
        keep = []
        for j, r in enumerate(members):
            c = r.cfg
            stop = r.epoch >= c.epochs or bool(c.patience and r.epoch - r.best_epoch >= c.patience and best_seen[j])
            if not stop:
                keep.append(j)
                continue
            try:
                state = stack.state_dict(j, best) if best_seen[j] else None
                t_test = time.perf_counter()
                res = finish(c, r.member.classes, r.s, r.head, state, r.best_epoch, r.train_losses, r.dev_losses,
                             source, 0.0)
                res.seconds = r.seconds + time.perf_counter() - t_test
                res.record["group"] = {"members": len(runs), "seconds": round(time.perf_counter() - t0, 3)}
                done(r.index, res)
            except Exception as exc:  # e.g. a dev loss never finite: this member fails alone
                done(r.index, exc)
        if len(keep) < len(members):
            if keep:
                cut(keep)
            else:
                alive = []


def _train_epoch(stack: StackedHead, opt: StackedAdamW, feed: _Feed, rows: Rows, members: list[_Run],
                 device) -> None:
    """One epoch of every member in the stack: each its own order, one stacked step per batch index."""
    order = padded([r.order_of(r.gen) for r in members])
    size = np.asarray([r.cfg.batch_size for r in members], dtype=np.int64)
    steps = -(-rows.lengths // size)
    bmax = int(size.max())
    weights = torch.stack([r.weight for r in members])
    smoothing = torch.tensor([r.cfg.smoothing for r in members], dtype=torch.float32, device=device)
    totals = torch.zeros(len(members), dtype=torch.float64, device=device)
    dropout_gens = [r.drop_gen for r in members]
    for span in windows(int(steps.max()), len(members), bmax, weights.shape[1]):
        win = Window(rows, order, span, size, bmax, weights, smoothing)
        share = feed.share(stack, win)
        counts_t = torch.from_numpy(win.counts).to(device=device, dtype=torch.float64)
        for i in range(len(win)):
            counts = win.counts[i]

            def dropout(h, counts=counts):
                return h * stack.dropout_masks(dropout_gens, counts.tolist(), tuple(h.shape), device)

            logits = feed.logits(stack, win.rows[i], win.valid[i], dropout, share)
            loss, grad = ce_loss_and_grad(logits, win.tw[i], win.a[i])
            logits.backward(grad)
            opt.step(stack.params, counts > 0)
            totals += loss.double() * counts_t[i]
    for r, t, n in zip(members, totals.tolist(), rows.lengths):
        r.train_losses.append(float(t / n))


# a stack's dev windows (pooled inputs gathered) are kept across epochs up to this many bytes
DEV_CACHE_BYTES = 256 << 20


def _dev_losses(stack: StackedHead, feed: _Feed, rows: Rows, members: list[_Run], device) -> list[float]:
    """Each member's mean weighted CE (no smoothing) over its dev rows, visited in store order.

    The dev windows and their pooled inputs stay the same while the stack's members do: they are
    made once and kept on ``rows`` (a new :class:`Rows` comes with every change of members)."""
    if rows.cache is None:
        rows.cache = _dev_windows(stack, feed, rows, members, device)
    totals = torch.zeros(len(members), dtype=torch.float64, device=device)
    with torch.no_grad():
        for win, share, xs in rows.cache:
            for i in range(len(win)):
                if xs is not None:
                    logits = stack.pooled(xs[i], share)
                else:
                    logits = feed.logits(stack, win.rows[i], win.valid[i], None, share)
                totals += ce_loss_and_grad(logits, win.tw[i], win.a[i], grad=False)[0].double()
    return (totals.cpu().numpy() / np.maximum(rows.lengths, 1)).tolist()


def _dev_windows(stack: StackedHead, feed: _Feed, rows: Rows, members: list[_Run], device) -> list:
    """``(window, sharing, pooled inputs or None)`` of the dev chunks; inputs kept up to DEV_CACHE_BYTES."""
    order = padded([np.argsort(rows.rows[o:o + n], kind="stable") for o, n in zip(rows.offsets, rows.lengths)])
    # pooled: chunks of up to 256 rows per member, no wider than the longest dev part (a wider chunk
    # gathers padding: K x width x D floats, 500 members x 256 x 384 = 197 MB for ~90 dev rows each)
    width = max(r.cfg.batch_size for r in members) if feed.frames else min(256, int(rows.lengths.max()))
    weights = torch.stack([r.weight for r in members])
    size = np.full(len(members), width, dtype=np.int64)
    out, kept = [], 0
    for span in windows(-(-int(rows.lengths.max()) // width), len(members), width, weights.shape[1]):
        win = Window(rows, order, span, size, width, weights, mean=False)
        share = feed.share(stack, win)
        xs = None
        if share is not None:  # gathered only if it fits in what is left of the budget
            need = len(win) * share.distinct * width * feed.row_bytes(stack)
            if kept + need <= DEV_CACHE_BYTES:
                xs = [feed.gather(stack, win.rows[i], share) for i in range(len(win))]
                kept += need
        out.append((win, share, xs))
    return out
