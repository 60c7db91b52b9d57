"""The feature store's layout: node names, format version, chunk and shard shapes.

docs/store-format.md is the prose version of this module; keep them in step.
"""

from __future__ import annotations

FORMAT_VERSION = 1

IDS = "ids"
NUM_FRAMES = "num_frames"
OFFSETS = "offsets"
POOLED = "pooled/mean"
FRAMES = "frames"
DONE = "done"
ERRORS = "errors"
# Entries of the store's root folder (pooled/mean lives under "pooled").
TOP_LEVEL = (IDS, NUM_FRAMES, OFFSETS, "pooled", FRAMES, DONE, ERRORS)

# Rows of pooled/mean per chunk, and utterances per extraction block (the unit of resume).
BLOCK_ROWS = 256
# Frames per inner chunk of `frames` (one layer each); shards hold all layers.
FRAME_CHUNK = 256
# Target bytes per frames shard (one file on disk / one object in a bucket).
SHARD_BYTES = 32 * 2**20
# Hidden states barely compress: zstd saves ~9-12 % of the bytes and makes reads 1.6-2.3x
# slower (bench/chunks.py), so arrays are stored raw unless the user asks (--compress).
ZSTD = ({"name": "zstd", "configuration": {"level": 0, "checksum": False}},)


def compressors(compress: bool):
    return ZSTD if compress else None


def pooled_chunks(num_rows: int, dim: int, block_rows: int = BLOCK_ROWS) -> tuple[int, int, int]:
    """One chunk per (block of rows, layer): a layer over all utterances reads only that layer,
    a block of rows is written once without read-modify-write. Random rows touch a chunk per
    (row block, layer), so heads load ``pooled()`` whole (it is small) rather than row by row."""
    return (max(1, min(block_rows, num_rows)), 1, dim)


def frame_chunks(num_layers: int, dim: int, itemsize: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(inner chunk, shard) shapes for `frames` [sum T, L, D]."""
    per_frame = num_layers * dim * itemsize
    shard_frames = max(FRAME_CHUNK, (SHARD_BYTES // per_frame) // FRAME_CHUNK * FRAME_CHUNK)
    return (FRAME_CHUNK, 1, dim), (shard_frames, num_layers, dim)
