"""Chunk and shard shapes of the feature store: why emostore/store/layout.py chose them.

Run from the repository root (about 2 minutes on 2 CPU cores with the defaults)::

    python bench/chunks.py [--utts 4096] [--frame-utts 96] [--layers 13] [--dim 768] [--repeats 5]

Builds synthetic Zarr v3 arrays of realistic shape (``zarr.open_group(..., zarr_format=3)``,
``create_array(chunks=, shards=)``) in a temp dir under /tmp that is deleted at the end. Shapes
are compared under zarr's default codecs (bytes + zstd); a ``codec`` line per array then compares
zstd with no compression at the current shape, which is why emostore stores raw arrays by
default (``--compress`` opts into zstd):

* ``pooled/mean`` [N, L, D] float32 (N = --utts: 4096 x 13 x 768 = 164 MB per candidate),
  chunkings (256,1,D) (current, ``layout.pooled_chunks``), (256,L,D), (N,1,D), (64,L,D), and
  the current shape without zstd.
* ``frames`` [sum T, L, D] float16 (--frame-utts utterances of 50-150 frames, mean ~100: about
  9,600 frames x 13 x 768 = 0.19 GB per candidate): inner chunk (256,1,D) in shards of ~32 MiB
  (current, ``layout.frame_chunks``: 1536 frames x all layers), no sharding with (256,L,D)
  chunks, no sharding with (256,1,D) chunks, (1024,1,D) in ~32 MiB shards, (64,1,D) and
  (64,L,D) in the current shards, and the current shapes without zstd.

All candidates of one array are on disk together (at most ~1.35 GB with the defaults; pooled
ones are deleted before the frames ones are written) and timed interleaved, round robin, so
drift on a shared machine hits every candidate alike; the median of --repeats runs is shown.
Data are standard normal values (real hidden states compress about as poorly: zstd keeps ~88%
of Whisper tiny.en float16 frames, see bench/extract.py). The two access patterns the store
serves:

(i)  one layer over all utterances: ``pooled[:, l, :]``; ``frames[a:b, l, :]`` over every row
     block of 6144 frames (rounded up to a multiple of every candidate's shard), i.e. a layer-wise probe.
     Per layer, for l in {0, L//2, L-1}.
(ii) all layers of a batch of 32 random utterances: ``pooled`` rows by orthogonal selection (as
     ``FeatureStore.pooled(rows=...)``); frames utterance by utterance via offsets (as
     ``FeatureStore.frames``). Per batch.

Times are with a warm page cache, so they measure zarr's fetch + decompress + assemble cost on
the CPU; the ``gets`` and ``MB read`` columns (store requests and bytes returned, counted by a
wrapper store; byte-range reads inside a shard count as one get each) stand for the cost on a
cold disk or an object store, where each get is a request. ``write s`` is one pass of aligned
block writes. Each candidate's line gives ratios against the current layout (> 1 = slower /
more), and the last two lines recommend a layout per array (lowest geometric mean of the two
read-time ratios among the zstd candidates that cost at most 2x the objects, 1.5x the bytes
read and 1.25x the disk; "keep" unless one is >10% better). A ``codec`` line per array compares
zstd with no compression at the current shape.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore, WrapperStore

from emostore.store import layout

ROW_BLOCK = 6144  # rows per block in the layer sweep and in writes; rounded up to a multiple of every shard
COUNT = {"gets": 0, "bytes": 0}


class CountingStore(WrapperStore):
    """Counts chunk/shard reads (metadata excluded): requests and bytes returned."""

    def _add(self, key, buf):
        if buf is not None and not key.endswith("zarr.json"):
            COUNT["gets"] += 1
            COUNT["bytes"] += len(buf)

    async def get(self, key, prototype, byte_range=None):
        buf = await self._store.get(key, prototype, byte_range)
        self._add(key, buf)
        return buf

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        bufs = await self._store.get_partial_values(prototype, key_ranges)
        for (key, _), buf in zip(key_ranges, bufs):
            self._add(key, buf)
        return bufs


def du(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def measure(fn) -> tuple[float, float, float]:
    """(seconds, gets, MB) per unit of work of one call of fn(), which returns its number of units."""
    COUNT.update(gets=0, bytes=0)
    t = time.perf_counter()
    units = fn()
    dt = time.perf_counter() - t
    return dt / units, COUNT["gets"] / units, COUNT["bytes"] / 1e6 / units


def row_block(cands) -> int:
    """ROW_BLOCK rounded up to a multiple of every candidate's shard (or chunk) rows."""
    m = math.lcm(*[(s or c)[0] for c, s, _ in cands])
    return -(-ROW_BLOCK // m) * m


def build(root: Path, data: np.ndarray, chunks, shards, compressors="auto", block: int = ROW_BLOCK) -> float:
    """Write ``data`` with this layout in aligned row blocks; returns seconds."""
    g = zarr.open_group(root, mode="w", zarr_format=3)
    t = time.perf_counter()
    arr = g.create_array("a", shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards, fill_value=0,
                         compressors=compressors)
    for a in range(0, data.shape[0], block):
        arr[a : a + block] = data[a : a + block]
    return time.perf_counter() - t


def open_counted(root: Path):
    return zarr.open_array(CountingStore(LocalStore(root, read_only=True)), path="a", mode="r")


def fmt_shape(shape, L, D, N=None) -> str:
    if shape is None:
        return "-"
    names = {L: "L", D: "D"}
    parts = []
    for i, s in enumerate(shape):
        if i > 0 and s in names:
            parts.append(names[s])
        elif i == 0 and N is not None and s == N:
            parts.append("N")
        else:
            parts.append(str(s))
    return "(" + ",".join(parts) + ")"


HEADER = (f"{'candidate':<46} {'objects':>7} {'MB disk':>8} {'write s':>7} | {'layer ms':>9} {'gets':>6} "
          f"{'MB read':>8} | {'batch32 ms':>10} {'gets':>5} {'MB read':>8}")


def row(name, r) -> str:
    return (f"{name:<46} {r['objects']:>7} {r['disk'] / 1e6:>8.1f} {r['write']:>7.2f} | "
            f"{r['layer'][0] * 1e3:>9.1f} {r['layer'][1]:>6.0f} {r['layer'][2]:>8.1f} | "
            f"{r['batch'][0] * 1e3:>10.1f} {r['batch'][1]:>5.0f} {r['batch'][2]:>8.1f}")


def ratios(name, r, ref) -> tuple[str, float]:
    lt, bt = r["layer"][0] / ref["layer"][0], r["batch"][0] / ref["batch"][0]
    lb, bb = r["layer"][2] / ref["layer"][2], r["batch"][2] / ref["batch"][2]
    score = (lt * bt) ** 0.5
    return (f"{name}: layer read {lt:.2f}x time, {lb:.2f}x bytes; batch-of-32 read {bt:.2f}x time, "
            f"{bb:.2f}x bytes; objects {r['objects'] / ref['objects']:.2f}x; write {r['write'] / ref['write']:.2f}x "
            f"(geomean of the two read times {score:.2f}x)"), score


def recommend(kind, results, current) -> str:
    """Lowest geometric mean of the two read-time ratios among candidates that cost no more than
    2x the objects, 1.5x the bytes read on either pattern and 1.25x the disk of the current one."""
    ref = results[current]
    scores, excluded = {}, []
    for n, r in results.items():
        if n == current or "no zstd" in n:  # shapes only; the codec gets its own line
            continue
        why = []
        if r["objects"] > 2 * ref["objects"]:
            why.append(f"{r['objects'] / ref['objects']:.0f}x objects")
        for key, label in (("layer", "layer"), ("batch", "batch")):
            if r[key][2] > 1.5 * ref[key][2]:
                why.append(f"{r[key][2] / ref[key][2]:.1f}x bytes per {label} read")
        if r["disk"] > 1.25 * ref["disk"]:
            why.append(f"{r['disk'] / ref['disk']:.2f}x disk")
        if why:
            excluded.append(f"{n}: {', '.join(why)}")
        else:
            scores[n] = ((r["layer"][0] / ref["layer"][0]) * (r["batch"][0] / ref["batch"][0])) ** 0.5
    best = min(scores, key=scores.get) if scores else None
    rule = "(rule: lowest geomean of the two read times among candidates within 2x objects, 1.5x bytes read, 1.25x disk)"
    tail = f"; excluded -- {'; '.join(excluded)}" if excluded else ""
    if best is None or scores[best] > 0.9:
        alt = f"best eligible alternative {best} at {scores[best]:.2f}x" if best else "no eligible alternative"
        return f"recommendation ({kind}): keep {current} -- {alt} {rule}{tail}"
    return f"recommendation ({kind}): consider {best} -- {scores[best]:.2f}x the current read time {rule}{tail}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--utts", type=int, default=4096, help="rows of pooled/mean (default 4096)")
    ap.add_argument("--frame-utts", type=int, default=96, help="utterances in the frames array (default 96)")
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timing runs (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.utts < 32 or args.frame_utts < 32:
        ap.error("--utts and --frame-utts must be at least 32 (one batch of 32 utterances)")
    N, L, D, R = args.utts, args.layers, args.dim, args.repeats
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="emostore-chunks-", dir="/tmp"))
    try:
        run(args, N, L, D, R, rng, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_array(kind, data, cands, tmp: Path, layer_fn, batch_fn, check_fn, R: int):
    """Write every candidate of one array side by side, then time them interleaved.

    Each repeat visits every candidate once (round robin), so drift on a shared machine hits all
    candidates alike; the median over repeats is reported."""
    roots, results, cur_name = {}, {}, None
    L, D = data.shape[1:]
    for i, (chunks, shards, tag) in enumerate(cands):
        raw = tag == "no zstd"
        name = (f"chunks {fmt_shape(chunks, L, D, data.shape[0])}"
                + ("" if kind == "pooled" else (f" shards {fmt_shape(shards, L, D)}" if shards else " no shards"))
                + (f" [{tag}]" if tag else ""))
        root = tmp / f"{kind}{i}"
        w = build(root, data, chunks, shards, None if raw else "auto", row_block(cands))
        disk, objects = du(root / "a")
        roots[name] = root
        results[name] = dict(objects=objects, disk=disk, write=w, layer=[], batch=[])
        if tag == "current":
            cur_name = name
        check_fn(open_counted(root), name)
    arrays = {n: open_counted(r) for n, r in roots.items()}
    for _ in range(R):
        for name, arr in arrays.items():
            results[name]["layer"].append(measure(lambda: layer_fn(arr)))
            results[name]["batch"].append(measure(lambda: batch_fn(arr)))
    print(HEADER)
    for name, r in results.items():
        for key in ("layer", "batch"):
            runs = r[key]
            r[key] = (statistics.median(x[0] for x in runs), runs[-1][1], runs[-1][2])
        print(row(name, r))
    for root in roots.values():
        shutil.rmtree(root)
    for name, r in results.items():
        if name != cur_name:
            print(ratios(name, r, results[cur_name])[0])
    raw = [n for n in results if "no zstd" in n]
    if raw:
        r, ref = results[raw[0]], results[cur_name]
        print(f"codec ({kind}): zstd saves {1 - ref['disk'] / r['disk']:.1%} of the disk bytes on this data and costs "
              f"{ref['layer'][0] / r['layer'][0]:.2f}x / {ref['batch'][0] / r['batch'][0]:.2f}x the layer / batch read "
              f"time of the same shape without compression")
    return recommend(kind if kind != "pooled" else "pooled/mean", results, cur_name)


def run(args, N, L, D, R, rng, tmp: Path):
    print(f"zarr {zarr.__version__}, default codecs (bytes + zstd), page cache warm, median of {R} interleaved "
          f"runs; 'gets' = store requests, 'MB read' = bytes returned by the store (both for one run)")
    layer_ids = [0, L // 2, L - 1]

    # -- pooled/mean ------------------------------------------------------------------------
    pooled = rng.standard_normal((N, L, D), dtype=np.float32)
    cands = [(layout.pooled_chunks(N, D), None, "current"), ((min(256, N), L, D), None, ""),
             ((N, 1, D), None, ""), ((64, L, D), None, ""),
             (layout.pooled_chunks(N, D), None, "no zstd")]
    pbatches = [np.sort(rng.choice(N, size=32, replace=False)) for _ in range(4)]
    print(f"\npooled/mean [{N}, {L}, {D}] float32 = {pooled.nbytes / 1e6:.0f} MB; layer ms = pooled[:, l, :], per layer "
          f"(l in {layer_ids}); batch32 ms = all layers of 32 random rows, mean of {len(pbatches)} batches")

    def p_layer(arr):
        for l in layer_ids:
            arr[:, l, :]
        return len(layer_ids)

    def p_batch(arr):
        for b in pbatches:
            arr.get_orthogonal_selection((b, slice(None), slice(None)))
        return len(pbatches)

    def p_check(arr, name):
        got = arr.get_orthogonal_selection((pbatches[0], slice(None), slice(None)))
        assert np.array_equal(got, pooled[pbatches[0]]), name

    rec_pooled = bench_array("pooled", pooled, cands, tmp, p_layer, p_batch, p_check, R)
    del pooled

    # -- frames -----------------------------------------------------------------------------
    T = rng.integers(50, 151, size=args.frame_utts)
    offsets = np.concatenate([[0], np.cumsum(T)[:-1]])
    F = int(T.sum())
    frames = rng.standard_normal((F, L, D), dtype=np.float32).astype(np.float16)
    ch, sh = layout.frame_chunks(L, D, 2)
    shard1024 = max(1024, (layout.SHARD_BYTES // (L * D * 2)) // 1024 * 1024)
    cands = [
        (ch, sh, "current"),
        ((256, L, D), None, ""),
        ((256, 1, D), None, ""),
        ((1024, 1, D), (shard1024, L, D), ""),
        ((64, 1, D), sh, ""),
        ((64, L, D), sh, ""),
        (ch, sh, "no zstd"),
    ]
    block = row_block(cands)
    fbatches = [rng.choice(args.frame_utts, size=32, replace=False) for _ in range(2)]
    print(f"\nframes [{F}, {L}, {D}] float16 = {frames.nbytes / 1e6:.0f} MB ({args.frame_utts} utterances, "
          f"{T.min()}-{T.max()} frames, mean {T.mean():.0f}); layer ms = frames[:, l, :] in blocks of {block} "
          f"rows, per layer (l in {layer_ids}); batch32 ms = all layers of 32 random utterances, one read each, "
          f"mean of {len(fbatches)} batches")

    def f_layer(arr):
        for l in layer_ids:
            for a in range(0, F, block):
                arr[a : a + block, l, :]
        return len(layer_ids)

    def f_batch(arr):
        for b in fbatches:
            for u in b:
                arr[offsets[u] : offsets[u] + T[u]]
        return len(fbatches)

    def f_check(arr, name):
        u = int(fbatches[0][0])
        assert np.array_equal(arr[offsets[u] : offsets[u] + T[u]], frames[offsets[u] : offsets[u] + T[u]]), name
        assert np.array_equal(arr[F - 7 :, L - 1], frames[F - 7 :, L - 1]), name

    rec_frames = bench_array("frames", frames, cands, tmp, f_layer, f_batch, f_check, R)
    print(rec_pooled)
    print(rec_frames)


if __name__ == "__main__":
    main()
