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

    def flush_partial(self) -> list:
        """Make every frame put so far durable without ending the block (a commit of finished rows
        before the block is done). Only the buffered tail of the current shard is unwritten; it is
        written now (a read-modify-write of that one shard, which zarr replaces whole) and kept in
        the buffer, so the shard's next write holds it again. Needs a writer that owns its shards."""
        if self.array is None or self.cursor <= self.start:
            return []
        if self.own != (self.lo, self.hi):
            raise RuntimeError("a partial flush needs a writer that owns every shard of its range")
        data = np.concatenate(self._buf, axis=0) if len(self._buf) > 1 else self._buf[0]
        data = data.astype(self.array.dtype, copy=False)
        self._buf = [data]
        self.array[self.start:self.cursor] = data
        return []

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


class SharedShards:
    """The coordinator's half: collect blocks' pieces of shared shards and write each such shard
    once, whole (no read-modify-write), when every running block that touches it has delivered.

    ``regions`` maps each block of the run to its frame range; ``others`` are the ranges of
    blocks not in this run (finished before): a shard that also holds one of those is read back
    once and overlaid. ``add`` returns the blocks whose shared shards are all written: only then
    may they be committed (``done`` promises their frames are durable). So that a slow block does
    not hold back its neighbours' commits for long, ``flush(older_than)`` writes the pieces that
    have waited longer into their shards now (read-modify-write) and returns the blocks that frees.
    """

    def __init__(self, array, regions: dict[int, tuple[int, int]], others: list[tuple[int, int]]):
        self.array = array
        self.shard = int(array.shards[0]) if array is not None else 1
        self.waiting: dict[int, set[int]] = {}  # shard -> running blocks still to deliver into it
        self.needs: dict[int, set[int]] = {}  # block -> its shared shards not yet written
        self.pieces: dict[int, list[tuple[int, np.ndarray]]] = {}
        self.keep: set[int] = set()  # shards that also hold frames written earlier (read them back)
        self.since: dict[int, float] = {}  # shard -> when its oldest unwritten piece arrived
        for block, (lo, hi) in regions.items():
            shared = self._shared(lo, hi) if array is not None else set()
            self.needs[block] = set(shared)
            for k in shared:
                self.waiting.setdefault(k, set()).add(block)
        for lo, hi in others:
            if hi > lo:
                self.keep.update(k for k in range(lo // self.shard, (hi - 1) // self.shard + 1) if k in self.waiting)

    def _shared(self, lo: int, hi: int) -> set[int]:
        if hi <= lo:
            return set()
        S = self.shard
        return {k for k in range(lo // S, (hi - 1) // S + 1) if not (k * S >= lo and (k + 1) * S <= hi)}

    def add(self, block: int, edges: list[tuple[int, np.ndarray]]) -> list[int]:
        """Take ``block``'s pieces; return the blocks now ready to commit (possibly including it)."""
        import time

        for start, piece in edges:
            self.pieces.setdefault(start // self.shard, []).append((start, piece))
            self.since.setdefault(start // self.shard, time.monotonic())
        ready = [] if self.needs.get(block) else [block]
        for k in sorted(k for k, blocks in self.waiting.items() if block in blocks):
            self.waiting[k].discard(block)
            if self.waiting[k]:
                continue
            self._write(k)
            del self.waiting[k]
            ready += self._written(k)
        return ready

    def flush(self, older_than: float) -> list[int]:
        """Write pieces that have waited ``older_than`` seconds; return the blocks now ready."""
        import time

        ready = []
        now = time.monotonic()
        for k in [k for k, t in self.since.items() if now - t >= older_than and k in self.waiting]:
            self._write(k)
            self.keep.add(k)  # later pieces of this shard are overlaid on what is there now
            delivered = {b for b, shards in self.needs.items() if k in shards and b not in self.waiting[k]}
            for b in delivered:
                self.needs[b].discard(k)
                if not self.needs[b]:
                    ready.append(b)
        return ready

    def _written(self, k: int) -> list[int]:
        ready = []
        for b, shards in self.needs.items():
            if k in shards:
                shards.discard(k)
                if not shards:
                    ready.append(b)
        return ready

    def _write(self, k: int) -> None:
        lo = k * self.shard
        hi = min(lo + self.shard, self.array.shape[0])
        if k in self.keep:
            buf = np.asarray(self.array[lo:hi])
        else:
            buf = np.zeros((hi - lo, *self.array.shape[1:]), dtype=self.array.dtype)
        for start, piece in self.pieces.pop(k, []):
            buf[start - lo:start - lo + piece.shape[0]] = piece
        self.since.pop(k, None)
        self.array[lo:hi] = buf
