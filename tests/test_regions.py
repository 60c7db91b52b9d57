"""Block writers and the coordinator's shared shards: concurrent blocks give the single writer's array."""

from __future__ import annotations

import numpy as np
import zarr

from emostore.store.regions import RegionWriter, SharedShards

SHARD = 8  # frames per shard (inner chunks of 4)


def _array(store, total: int):
    g = zarr.open_group(store, mode="w", zarr_format=3)
    return g.create_array("frames", shape=(total, 2, 3), dtype="float32", chunks=(4, 1, 3), shards=(SHARD, 2, 3),
                          fill_value=0)


def _rows(rng, regions):
    """Per block: rows (offset, frames) tiling its region, one row left out (a failed row's gap)."""
    out = []
    for lo, hi in regions:
        cuts = sorted(set(rng.integers(lo + 1, hi, 3).tolist())) if hi - lo > 4 else []
        bounds = [lo, *cuts, hi]
        rows = [(a, rng.standard_normal((b - a, 2, 3)).astype(np.float32)) for a, b in zip(bounds, bounds[1:])]
        out.append(rows[:1] + rows[2:] if len(rows) > 2 else rows)
    return out


def _write(array, rows_per_block, regions, shared: bool, run=None, keep=False, flush=False):
    run = range(len(regions)) if run is None else run
    coordinator = SharedShards(array, {b: regions[b] for b in run},
                               [r for b, r in enumerate(regions) if b not in run]) if shared else None
    order = list(run)[::-1]  # blocks finish out of order
    committed = []
    for b in order:
        w = RegionWriter(array, *regions[b], shared_edges=shared, keep_existing=keep)
        for at, frames in rows_per_block[b]:
            w.put(frames, at)
        edges = w.finish()
        lo, hi = regions[b]
        owned = (hi // SHARD * SHARD) - (-(-lo // SHARD) * SHARD)
        assert w.frames_written == (max(owned, 0) if shared else hi - lo)
        committed += coordinator.add(b, edges) if shared else [b]
        if flush:  # every waiting piece written at once (a slow neighbour's timeout)
            committed += coordinator.flush(0.0)
    assert sorted(committed) == sorted(run)


def test_blocks_with_shared_shards_write_what_a_single_writer_writes(tmp_path):
    rng = np.random.default_rng(0)
    regions = [(0, 5), (5, 21), (21, 24), (24, 24), (24, 40), (40, 43)]  # unaligned, empty, aligned
    rows = _rows(rng, regions)
    single, blocks = _array(tmp_path / "a.zarr", 43), _array(tmp_path / "b.zarr", 43)
    _write(single, rows, regions, shared=False)
    _write(blocks, rows, regions, shared=True)
    np.testing.assert_array_equal(single[:], blocks[:])
    assert np.count_nonzero(single[:]) > 0 and (single[:] == 0).any()  # data and the failed rows' gaps


def test_writing_waiting_pieces_early_gives_the_same_array_and_commits_each_block_once(tmp_path):
    rng = np.random.default_rng(2)
    regions = [(0, 5), (5, 21), (21, 24), (24, 40), (40, 43)]
    rows = _rows(rng, regions)
    ref, early = _array(tmp_path / "a.zarr", 43), _array(tmp_path / "b.zarr", 43)
    _write(ref, rows, regions, shared=False)
    _write(early, rows, regions, shared=True, flush=True)
    np.testing.assert_array_equal(ref[:], early[:])


def test_rerunning_some_blocks_keeps_the_shared_shards_of_the_others(tmp_path):
    rng = np.random.default_rng(1)
    regions = [(0, 5), (5, 21), (21, 24), (24, 40), (40, 43)]
    rows = _rows(rng, regions)
    ref, part = _array(tmp_path / "a.zarr", 43), _array(tmp_path / "b.zarr", 43)
    _write(ref, rows, regions, shared=False)
    _write(part, rows, regions, shared=True, run=[0, 2, 4])  # as if blocks 1 and 3 were committed earlier
    _write(part, rows, regions, shared=True, run=[1, 3])
    np.testing.assert_array_equal(ref[:], part[:])
