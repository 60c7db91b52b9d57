"""One block's encoding, the one loop shared by the single-process runner and a cluster worker.

A :class:`BlockWork` is everything about one block of rows that encoding needs (its unfinished
rows, their batches, audio paths and planned places in ``frames``); it is small and picklable, so
a cluster ships it to a worker as it is. :func:`encode_blocks` decodes audio ahead in threads
and encodes the batches of a list of blocks in order; a :class:`BlockFill` collects one block's
results, streams its frames into the block's planned range (:mod:`emostore.store.regions`) and
hands out what is finished as a :class:`BlockCommit` for :meth:`StoreWriter.commit_block`.

Only bad audio (an :class:`emostore.extract.audio.AudioError`, raised while decoding or by an
encoder for a clip it cannot take) and unusable output (no frames, NaN, more frames than
planned) become a row's error; any other exception is a bug and propagates with its traceback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from emostore.extract import audio
from emostore.extract.encoders import Encoder
from emostore.store.regions import RegionWriter

FRAME_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass
class BlockWork:
    """One block's pending work (no audio, no arrays: a cluster sends it to a worker)."""

    first_row: int
    rows: list[int]  # the block's unfinished rows
    batches: list[list[int]]  # rows in planned (packing) order
    audio: dict[int, str]
    offsets: dict[int, int]  # planned first frame of each readable row
    caps: dict[int, int]  # planned frames of each readable row
    region: tuple[int, int]  # the block's [lo, hi) of frames
    keep_existing: bool  # the block has finished rows: their frames are read back, kept
    probe_errors: dict[int, str]
    seconds: float  # planned audio seconds (progress)


def block_works(manifest, plan, done: np.ndarray) -> list[BlockWork]:
    """The unfinished blocks of ``plan`` (:func:`emostore.extract.planning.make_plan`)."""
    lay = plan.layout
    works = []
    for block_rows, batches in plan.blocks:
        first = block_rows[0] // lay.block_rows * lay.block_rows
        readable = [r for r in block_rows if r in plan.samples]
        works.append(BlockWork(
            first_row=first, rows=list(block_rows), batches=[b.rows for b in batches],
            audio={r: manifest.rows[r]["audio"] for r in block_rows},
            offsets={r: int(lay.offsets[r]) for r in readable}, caps={r: int(lay.caps[r]) for r in readable},
            region=lay.region(first), keep_existing=bool(done[first:first + lay.block_rows].any()),
            probe_errors={r: plan.probe_errors[r] for r in block_rows if r in plan.probe_errors},
            seconds=sum(plan.samples[r] for r in readable) / plan.sample_rate,
        ))
    return works


@dataclass
class EncodedBatch:
    """One encoded batch of a block: ``results`` [(row, pooled [L, D] float32, frames [T, L, D])]
    in planned frame order, ``failed`` {row: reason}; ``last``: the block's last batch."""

    work: BlockWork
    results: list
    failed: dict[int, str]
    audio_seconds: float
    encode_seconds: float
    last: bool


def decode_batch(paths: dict[int, str], rows: list[int], policy: audio.AudioPolicy):
    """({row: wave}, {row: reason}): a file that cannot be used is that row's error."""
    waves, failed = {}, {}
    for r in rows:
        try:
            waves[r] = audio.load(paths[r], policy)
        except audio.AudioError as exc:
            failed[r] = str(exc)
    return waves, failed


def encode_rows(encoder: Encoder, waves: dict[int, np.ndarray]) -> Iterator[tuple[int, torch.Tensor | str]]:
    """Encoded rows; an output with no frames or with NaN/inf is that row's error, not stored data."""
    for r, out in _encode_groups(encoder, waves):
        if isinstance(out, torch.Tensor):
            if out.shape[0] == 0:
                out = "encoder returned no frames (clip too short for this encoder?)"
            elif not bool(torch.isfinite(out).all()):
                out = "encoder output holds NaN or inf"
        yield r, out


def _encode_groups(encoder: Encoder, waves: dict[int, np.ndarray]) -> Iterator[tuple[int, torch.Tensor | str]]:
    """Encode in groups the encoder can batch exactly. A batch with a clip the encoder refuses
    (AudioError) is retried clip by clip, so only that clip fails; anything else is raised."""
    rows = list(waves)
    groups: list[list[int]] = [rows]
    if encoder.padding == "same-length":
        by_len: dict[int, list[int]] = {}
        for r in rows:
            by_len.setdefault(len(waves[r]), []).append(r)
        groups = list(by_len.values())
    for group in groups:
        try:
            out = encoder.encode([waves[r] for r in group])
        except audio.AudioError as exc:
            if len(group) == 1:
                yield group[0], str(exc)
                continue
            for r in group:
                try:
                    yield r, encoder.encode([waves[r]])[0]
                except audio.AudioError as exc1:
                    yield r, str(exc1)
            continue
        yield from zip(group, out)


def frames_error(cap: int, num_frames: int) -> str | None:
    """A row whose encoder output is longer than planned cannot be stored in place."""
    if num_frames > cap:
        return (f"encoder returned {num_frames} frames, its frame arithmetic planned {int(cap)} "
                "(Encoder.num_frames disagrees with encode)")
    return None


def encode_batch(work: BlockWork, encoder: Encoder, waves: dict[int, np.ndarray], layer_idx: torch.Tensor,
                 frames_dtype: torch.dtype, failed: dict[int, str]) -> list:
    """[(row, pooled [L, D] float32, frames [T, L, D])] in planned frame order; failures go to ``failed``."""
    results = []
    for r, hidden in encode_rows(encoder, waves):
        if isinstance(hidden, torch.Tensor):
            hidden = frames_error(work.caps[r], hidden.shape[0]) or hidden
        if isinstance(hidden, str):
            failed[r] = f"{work.audio[r]}: {hidden}"
            continue
        h = hidden.index_select(1, layer_idx)
        results.append((r, h.mean(0).cpu().numpy(), h.to(frames_dtype).cpu().numpy()))
    return sorted(results, key=lambda item: work.offsets[item[0]])


def encode_blocks(works: list[BlockWork], encoder: Encoder, layers: list[int], frames_dtype: str | None,
                  policy: audio.AudioPolicy, decode_threads: int) -> Iterator[EncodedBatch]:
    """Every batch of ``works`` encoded, in order, while the next batches' audio decodes in
    threads; a block without batches (every row unreadable) yields one empty last batch."""
    layer_idx = torch.tensor(layers, device=encoder.device)
    torch_dtype = FRAME_TORCH_DTYPES[frames_dtype or "float32"]
    todo = [(w, b) for w in works for b in w.batches]
    ahead = max(2, decode_threads * 2)
    futures: dict[int, Future] = {}
    with ThreadPoolExecutor(max(1, decode_threads), thread_name_prefix="emostore-decode") as pool:
        def submit(k: int):
            if k < len(todo) and k not in futures:
                futures[k] = pool.submit(decode_batch, todo[k][0].audio, todo[k][1], policy)

        try:
            for k in range(ahead):
                submit(k)
            k = 0
            for work in works:
                if not work.batches:
                    yield EncodedBatch(work, [], dict(work.probe_errors), 0.0, 0.0, last=True)
                for i in range(len(work.batches)):
                    waves, failed = futures.pop(k).result()
                    submit(k + ahead)
                    k += 1
                    if i == 0:
                        failed.update(work.probe_errors)
                    t = time.perf_counter()
                    results = encode_batch(work, encoder, waves, layer_idx, torch_dtype, failed)
                    secs = sum(len(w) for w in waves.values()) / encoder.sample_rate
                    yield EncodedBatch(work, results, failed, secs, time.perf_counter() - t,
                                       last=i == len(work.batches) - 1)
        finally:
            for f in futures.values():
                f.cancel()


@dataclass
class BlockCommit:
    """Rows of one block ready for :meth:`StoreWriter.commit_block` (arrays aligned with ``rows``)."""

    rows: np.ndarray
    pooled: np.ndarray
    num_frames: np.ndarray
    offsets: np.ndarray
    failed: dict[int, str]

    @staticmethod
    def join(commits: list[BlockCommit]) -> BlockCommit:
        """Several blocks' commits as one (one write of each index array)."""
        return BlockCommit(np.concatenate([c.rows for c in commits]), np.concatenate([c.pooled for c in commits]),
                           np.concatenate([c.num_frames for c in commits]),
                           np.concatenate([c.offsets for c in commits]),
                           {r: why for c in commits for r, why in c.failed.items()})


class BlockFill:
    """One block being filled: pooled rows, frame counts and failures, its frames streamed into its
    range. :meth:`take` hands out the rows settled since the last take; before the block's end
    (``final=False``) it first writes the frames buffered so far, so those rows may be committed."""

    def __init__(self, work: BlockWork, frames, num_layers: int, dim: int, shared_edges: bool = False):
        self.work = work
        self.region = RegionWriter(frames, *work.region, shared_edges=shared_edges, keep_existing=work.keep_existing)
        self.pos = {r: i for i, r in enumerate(work.rows)}
        n = len(work.rows)
        self.pooled = np.full((n, num_layers, dim), np.nan, dtype=np.float32)
        self.num_frames = np.zeros(n, dtype=np.int64)
        self.offsets = np.zeros(n, dtype=np.int64)
        self.failed: dict[int, str] = {}
        self._settled: list[int] = []  # rows added since the last take

    def add(self, batch: EncodedBatch) -> None:
        for r, pooled_row, frames in batch.results:
            i = self.pos[r]
            self.pooled[i], self.num_frames[i], self.offsets[i] = pooled_row, frames.shape[0], self.work.offsets[r]
            self.region.put(frames, self.work.offsets[r])
            self._settled.append(r)
        self.failed.update(batch.failed)
        self._settled += list(batch.failed)

    def take(self, final: bool) -> tuple[BlockCommit, list]:
        """(the rows settled since the last take, the shared-shard pieces left at the block's end)."""
        edges = self.region.finish() if final else self.region.flush_partial()
        rows = sorted(set(self._settled))
        self._settled = []
        idx = [self.pos[r] for r in rows]
        commit = BlockCommit(np.asarray(rows, dtype=np.int64), self.pooled[idx], self.num_frames[idx],
                             self.offsets[idx], {r: self.failed[r] for r in rows if r in self.failed})
        return commit, edges
