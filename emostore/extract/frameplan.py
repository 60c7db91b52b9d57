"""Where every row's frames go in ``frames``, decided before any encoding.

A row's frame count follows from its sample count (read from the file header) and the encoder's
arithmetic (``Encoder.num_frames``), so the whole layout is known up front: blocks in manifest
order, inside a block the rows in batch-packing order (cheapest first), each row at the running
sum of the planned counts. One process or many workers therefore write the same bytes to the
same places, and a block's range can be written by whoever runs it without asking anyone where
the previous block ended. A row that fails leaves its planned range as fill value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emostore.store.writer import StoreError


def pack_order(rows: list[int], samples: dict[int, int], encoder) -> list[int]:
    """Rows sorted the way batches are packed (cost, then row): the order frames are laid out."""
    return sorted(rows, key=lambda r: (encoder.cost_seconds(samples[r]), r))


@dataclass
class FrameLayout:
    offsets: np.ndarray  # int64 [N]: planned first frame of each row (0 where unreadable)
    caps: np.ndarray  # int64 [N]: planned frames of each row (0 where unreadable)
    regions: list[tuple[int, int]]  # [lo, hi) of each block, block k = rows k*block_rows ...
    block_rows: int

    @property
    def total(self) -> int:
        return self.regions[-1][1] if self.regions else 0

    def region(self, row: int) -> tuple[int, int]:
        return self.regions[row // self.block_rows]

    def check_done(self, done: np.ndarray, offsets: np.ndarray, num_frames: np.ndarray, where: str) -> None:
        """Refuse to resume when finished rows are not where this plan puts them (audio changed)."""
        moved = np.flatnonzero(done & ((offsets != self.offsets) | (num_frames > self.caps)))
        if moved.size:
            raise StoreError(
                f"{where}: {moved.size} finished rows (e.g. row {int(moved[0])}) no longer fit the frame plan: "
                "an audio file at or before them changed, became unreadable, or became readable (a fixed file) "
                "since extraction started, and frames are placed by the first run's plan; restore the files as "
                "they were to resume, or extract into a new --out (a fixed file is extracted there)")


def plan_layout(num_rows: int, samples: dict[int, int], encoder, block_rows: int) -> FrameLayout:
    """The layout for rows with known ``samples`` (at the encoder's rate); others get no frames."""
    offsets = np.zeros(num_rows, dtype=np.int64)
    caps = np.zeros(num_rows, dtype=np.int64)
    regions = []
    pos = 0
    for start in range(0, num_rows, block_rows):
        lo = pos
        block = [r for r in range(start, min(num_rows, start + block_rows)) if r in samples]
        for r in pack_order(block, samples, encoder):
            offsets[r] = pos
            caps[r] = encoder.num_frames(samples[r])
            pos += int(caps[r])
        regions.append((lo, pos))
    return FrameLayout(offsets=offsets, caps=caps, regions=regions, block_rows=block_rows)
