"""Write one block's frames into its planned range of ``frames``, in whole-shard writes.

Every row's place in ``frames`` is planned before encoding (:mod:`emostore.extract.frameplan`),
so a block owns the range ``[lo, hi)``. A shard lying wholly inside that range is written by
the block's writer alone; a shard it shares with a neighbouring block (the range's first and
last shard) is a read-modify-write that two concurrent writers would race on. With
``shared_edges`` those pieces are handed back (``finish()``) for the one coordinator to write;
a single-process run owns every shard and writes them itself.
"""

from __future__ import annotations

import numpy as np


class RegionWriter:
    """Streams rows (in planned order) into ``array[lo:hi]``; gaps are failed rows (fill value)
    or, when resuming a block that has finished rows, the stored frames (read back, kept)."""

    def __init__(self, array, lo: int, hi: int, *, shared_edges: bool = False, keep_existing: bool = False):
        self.array, self.lo, self.hi = array, int(lo), int(hi)
        self.keep_existing = keep_existing
        self.shard = int(array.shards[0]) if array is not None else 1
        if shared_edges:
            own_lo = -(-self.lo // self.shard) * self.shard
            own_hi = self.hi // self.shard * self.shard
            self.own = (own_lo, own_hi) if own_lo < own_hi else (self.hi, self.hi)
        else:
            self.own = (self.lo, self.hi)
        self.start = self.lo  # first frame held in the buffer
        self._buf: list[np.ndarray] = []
        self._buf_len = 0
        self.edges: list[tuple[int, np.ndarray]] = []
        self.frames_written = 0  # frames this writer sent to the array itself (bench, tests)

    @property
    def cursor(self) -> int:
        return self.start + self._buf_len

    def put(self, frames: np.ndarray, at: int) -> None:
        """Place one row's frames [T, L, D] at its planned offset ``at`` (rows in increasing order)."""
        if self.array is None:
            return
        if at < self.cursor or at + frames.shape[0] > self.hi:
            raise RuntimeError(f"frames at {at}+{frames.shape[0]} are outside the block's free range "
                               f"[{self.cursor}, {self.hi})")
        self._gap(at)
        self._buf.append(frames)
        self._buf_len += frames.shape[0]
        boundary = self.cursor // self.shard * self.shard
        if boundary > self.start:
            self._flush(boundary)

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """Write the rest of the range; return the (start, frames) pieces left for the coordinator."""
        if self.array is not None:
            self._gap(self.hi)
            self._flush(self.hi)
        return self.edges

    def _gap(self, until: int) -> None:
        if until > self.cursor:
            a, b = self.cursor, until
            if self.keep_existing:
                fill = np.asarray(self.array[a:b])
            else:
                fill = np.zeros((b - a, *self.array.shape[1:]), dtype=self.array.dtype)
            self._buf.append(fill)
            self._buf_len += b - a

    def _flush(self, upto: int) -> None:
        if upto <= self.start:
            return
        data = np.concatenate(self._buf, axis=0) if len(self._buf) > 1 else self._buf[0]
        data = data.astype(self.array.dtype, copy=False)
        n = upto - self.start
        piece, rest = data[:n], data[n:]
        own_lo, own_hi = self.own
        for a, b, mine in ((self.start, min(upto, own_lo), False), (max(self.start, own_lo), min(upto, own_hi), True),
                           (max(self.start, own_hi), upto, False)):
            if a >= b:
                continue
            part = piece[a - self.start:b - self.start]
            if mine:
                self.array[a:b] = part
                self.frames_written += b - a
            else:
                self.edges.append((a, np.array(part)))
        self._buf = [rest] if rest.shape[0] else []
        self._buf_len = rest.shape[0]
        self.start = upto


def write_edges(array, edges: list[tuple[int, np.ndarray]]) -> None:
    """The coordinator's half: write a block's shared-shard pieces (read-modify-write, one writer)."""
    if array is None:
        return
    for start, piece in edges:
        array[start:start + piece.shape[0]] = piece
