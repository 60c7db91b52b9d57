"""Where a head's inputs come from during training: pooled features in memory, or frames streamed.

A *source* is any object with ``logits(head, rows) -> Tensor [B, C]`` for store row numbers
``rows``; the training loop knows nothing else about it (a benchmark can plug in a source that
recomputes the encoder instead).

* :class:`PooledSource`: ``pooled/mean`` [N, L, D] read whole (small: N × L × D float32).
* :class:`FramesSource`: frames read one *block* of store rows at a time. The extractor writes
  the frames of a block of manifest rows contiguously (docs/store-format.md), so a block is one
  range read of the frames array, restricted to the layers the head uses. Blocks are kept in an
  LRU cache of at most ``budget_bytes`` (room is made before a block is read; a block larger than
  the budget is read row by row), so the cache never holds more than the budget whatever the
  store's size; on top of it come one batch and the transient decode buffers of one block read.

Order: :func:`epoch_order` shuffles either all rows (``full``) or *blocks* then rows within a
window of blocks that fits the cache (``blocks``, the default for frames): every batch then reads
from cached blocks, each block is read once per epoch, and the order is still random at the
granularity of a window. The order depends only on the seed and the store's row layout, so a
pooled and a frames run with the same ``shuffle`` see the same batches.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from emostore.heads.heap import tune_malloc
from emostore.heads.names import HeadError
from emostore.store import layout


def block_rows(fs) -> int:
    """Rows per extraction block (the unit in which frames are contiguous)."""
    return int(fs.attrs.get("block_rows") or layout.BLOCK_ROWS)


def frame_bytes(fs, n_layers: int) -> int:
    """Bytes of one frame of ``n_layers`` layers as stored."""
    itemsize = np.dtype(fs.attrs.get("frames_dtype") or "float16").itemsize  # None: a --no-frames store
    return n_layers * fs.dim * itemsize


def block_frames(fs, block: int) -> np.ndarray:
    """Frames held by each block of ``block`` store rows (what caching that block costs, all rows)."""
    n = fs.num_frames
    edges = np.arange(0, len(n), block)
    return np.add.reduceat(n, edges) if len(n) else np.zeros(0, dtype=np.int64)


def epoch_order(rows: np.ndarray, gen: torch.Generator, shuffle: str, block: int = 0,
                block_cost: np.ndarray | None = None, window_frames: int = 0) -> np.ndarray:
    """Positions into ``rows`` in this epoch's order (see the module docstring).

    ``block_cost[b]``: frames a cached block ``b`` holds (:func:`block_frames`); a window gathers
    blocks while their total stays within ``window_frames``.
    """
    if shuffle == "full":
        return torch.randperm(len(rows), generator=gen).numpy()
    if shuffle != "blocks":
        raise HeadError(f"unknown shuffle {shuffle!r}; known: full, blocks")
    blocks = rows // block
    uniq = np.unique(blocks)
    perm = uniq[torch.randperm(len(uniq), generator=gen).numpy()]
    members = {b: np.flatnonzero(blocks == b) for b in uniq}
    order, window, size = [], [], 0
    for b in perm:
        need = int(block_cost[b]) if block_cost is not None else 0
        if window and size + need > window_frames:
            order.append(_shuffled(np.concatenate(window), gen))
            window, size = [], 0
        window.append(members[b])
        size += need
    if window:
        order.append(_shuffled(np.concatenate(window), gen))
    return np.concatenate(order) if order else np.zeros(0, dtype=np.int64)


def _shuffled(a: np.ndarray, gen: torch.Generator) -> np.ndarray:
    return a[torch.randperm(len(a), generator=gen).numpy()]


class PooledSource:
    """All pooled features [N, L, D] in memory (on ``device``); batches are row-indexed."""

    def __init__(self, fs, device: str = "cpu"):
        self.pooled = torch.from_numpy(np.ascontiguousarray(fs.pooled(), dtype=np.float32)).to(device)

    def logits(self, head, rows: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.pooled.device)
        return head.forward_pooled(self.pooled[idx])


class FramesSource:
    """Frames of the layers ``layers`` (positions; None = all) read by blocks into a bounded cache."""

    def __init__(self, fs, layers: list[int] | None = None, budget_bytes: int = 1 << 30, device: str = "cpu"):
        tune_malloc()
        self.arr = fs._frames_array
        self.offsets, self.num_frames = fs.offsets, fs.num_frames
        self.layers = layers
        self.frame_bytes = frame_bytes(fs, len(layers) if layers is not None else fs.num_layers)
        self.block = block_rows(fs)
        self.n_rows = len(fs)
        self.budget = int(budget_bytes)
        self.device = device
        self.cache: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()
        self.cached_bytes = 0
        self.peak_cached_bytes = 0
        self.reads = 0

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` of the chosen layers, [T, L', D] in the stored dtype.

        One layer at a time by integer index: zarr's list (orthogonal) selection over the layer axis
        decodes ~35x the result's bytes transiently (measured: 443 MiB for a 12.6 MiB read), basic
        indexing ~3x.
        """
        self.reads += 1
        if self.layers is None:
            return self.arr[start:stop]
        return np.stack([self.arr[start:stop, k] for k in self.layers], axis=1)

    def _block_span(self, b: int) -> tuple[int, int]:
        lo, hi = b * self.block, min((b + 1) * self.block, self.n_rows)
        n = self.num_frames[lo:hi]
        has = n > 0
        if not has.any():
            return 0, 0
        off = self.offsets[lo:hi][has]
        return int(off.min()), int((off + n[has]).max())

    def _rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """Each row's frames [T, L', D] (stored dtype), through the block cache."""
        out = []
        for r in rows:
            r = int(r)
            b = r // self.block
            hit = self.cache.get(b)
            if hit is None:
                start, stop = self._block_span(b)
                size = (stop - start) * self.frame_bytes
                if size > self.budget:  # one block over budget: read the row alone
                    o = int(self.offsets[r])
                    out.append(self._read(o, o + int(self.num_frames[r])))
                    continue
                self._make_room(size)
                hit = (start, self._read(start, stop))
                self.cache[b] = hit
                self.cached_bytes += hit[1].nbytes
                self.peak_cached_bytes = max(self.peak_cached_bytes, self.cached_bytes)
            else:
                self.cache.move_to_end(b)
            start, data = hit
            o = int(self.offsets[r]) - start
            out.append(data[o:o + int(self.num_frames[r])])
        return out

    def _make_room(self, size: int) -> None:
        """Evict least recently used blocks until ``size`` more bytes fit in the budget."""
        while self.cache and self.cached_bytes + size > self.budget:
            _, (_, data) = self.cache.popitem(last=False)
            self.cached_bytes -= data.nbytes

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded frames [B, T, L', D] float32 and the validity mask [B, T]."""
        arrays = self._rows(rows)
        t = max(a.shape[0] for a in arrays)
        x = np.zeros((len(arrays), t) + arrays[0].shape[1:], dtype=np.float32)
        mask = np.zeros((len(arrays), t), dtype=bool)
        for k, a in enumerate(arrays):
            x[k, : a.shape[0]] = a
            mask[k, : a.shape[0]] = True
        return torch.from_numpy(x).to(self.device), torch.from_numpy(mask).to(self.device)

    def logits(self, head, rows: np.ndarray) -> torch.Tensor:
        x, mask = self.batch(rows)
        return head.forward_frames(x, mask)
