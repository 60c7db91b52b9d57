"""Peak memory of frame-head training vs frames-store size: flat, bounded by --memory-mb.

Builds frames stores of growing size (synthetic float16 frames shaped like Whisper tiny.en's: 5
layers x 384, 1 s = 50 frames per clip... --frames-per-clip), then trains the emobox head (the
frames-only head) for one epoch on each in a fresh process with a frames cache of --memory-mb, and
reports each process's peak resident memory (``ru_maxrss``) next to the store size. A baseline
process that imports everything and opens the store without training gives the fixed cost.

    python bench/frames_memory.py --sizes-mb 256,1024,2048 --memory-mb 128 --dir /tmp/fm
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LAYERS, DIM = 5, 384  # Whisper tiny.en: embeddings + 4 blocks, width 384

CHILD = r"""
import json, resource, sys, time
from emostore.heads.config import TrainConfig
from emostore.heads.loop import train
from emostore.labels.aggregate import read_label_set
from emostore.manifests.partitions import read_partition
from emostore.store import open as open_store
store, labels, part, mode, memory_mb = sys.argv[1:6]
fs = open_store(store)
records, meta = read_label_set(labels)
t0 = time.perf_counter()
res = None
if mode == "train":
    res = train(fs, records, meta["classes"], read_partition(part),
                TrainConfig(head="emobox", fold="f1", epochs=1, lr=1e-3, hidden=128, memory_mb=int(memory_mb)))
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak_kib / 1024, "seconds": time.perf_counter() - t0,
                  "cache": res.record.get("frames_cache") if res else None}))
"""


def build_store(path: Path, size_mb: int, frames_per_clip: int, seed: int = 0) -> int:
    """A frames store of about ``size_mb`` MiB of float16 frames; returns its number of clips."""
    from emostore.store import layout
    from emostore.store.regions import RegionWriter
    from emostore.store.writer import StoreWriter

    per_clip = frames_per_clip * LAYERS * DIM * 2
    n = max(30, (size_mb << 20) // per_clip)
    ids = [f"u{i:06d}" for i in range(n)]
    attrs = {"format_version": layout.FORMAT_VERSION, "corpus": "synthetic", "layers": list(range(LAYERS)),
             "dim": DIM, "frames_dtype": "float16", "block_rows": layout.BLOCK_ROWS,
             "encoder": {"name": "synthetic"}}
    w = StoreWriter.create_or_resume(path, ids=ids, attrs=attrs, fingerprint={"synthetic": size_mb},
                                     num_layers=LAYERS, dim=DIM, frames_dtype="float16")
    rng = np.random.default_rng(seed)
    w.reserve_frames(n * frames_per_clip)
    for start in range(0, n, layout.BLOCK_ROWS):
        rows = np.arange(start, min(n, start + layout.BLOCK_ROWS))
        pooled = np.empty((len(rows), LAYERS, DIM), dtype=np.float32)
        offsets = rows * frames_per_clip
        region = RegionWriter(w.frames, offsets[0], offsets[-1] + frames_per_clip)
        for k in range(len(rows)):
            x = rng.standard_normal((frames_per_clip, LAYERS, DIM), dtype=np.float32)
            region.put(x, offsets[k])
            pooled[k] = x.mean(0)
        region.finish()
        w.commit_block(rows, pooled, np.full(len(rows), frames_per_clip), offsets, {})
    w.close()
    return n


def write_labels_and_fold(d: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    cls = rng.integers(0, 4, n)
    rows = [{"id": f"u{i:06d}", "train": np.eye(4)[c].tolist(), "test": np.eye(4, dtype=int)[c].tolist(),
             "excluded": None} for i, c in enumerate(cls)]
    labels = d / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "labels.meta.json").write_text(json.dumps({"classes": ["a", "b", "c", "d"], "rule": "mr"}))
    ids = [r["id"] for r in rows]
    cut1, cut2 = int(0.8 * n), int(0.9 * n)
    part = d / "part.json"
    part.write_text(json.dumps({"f1": {"train": ids[:cut1], "dev": ids[cut1:cut2], "test": ids[cut2:]}}))
    return labels, part


def child(store: Path, labels: Path, part: Path, mode: str, memory_mb: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(store), str(labels), str(part), mode, str(memory_mb)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mb", default="512,1024,2048", help="store sizes; each >= 4x the cache so it fills")
    ap.add_argument("--memory-mb", type=int, default=128, help="frames cache bound given to training")
    ap.add_argument("--frames-per-clip", type=int, default=250, help="250 = 5 s at Whisper's 50 frames/s")
    ap.add_argument("--dir", default="/tmp/emostore-frames-memory")
    args = ap.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    print(f"emobox head, 1 epoch, frames cache --memory-mb {args.memory_mb}; synthetic float16 frames "
          f"[{args.frames_per_clip} x {LAYERS} x {DIM}] per clip")
    print(f"{'store MiB':>10} {'clips':>7} {'store/cache':>11} {'base MiB':>9} {'peak MiB':>9} "
          f"{'peak-base':>9} {'cache peak MiB':>14} {'train s':>8}")
    rows = []
    for size in [int(s) for s in args.sizes_mb.split(",")]:
        d = root / f"s{size}"
        store = d / "store.zarr"
        if not (store / "zarr.json").exists():
            d.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            n = build_store(store, size, args.frames_per_clip)
            print(f"  (built {store}: {n} clips in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
        from emostore.store import open as open_store

        fs = open_store(store)
        n = len(fs)
        labels, part = write_labels_and_fold(d, n)
        stored_mb = fs.nbytes_stored() / 2**20
        base = child(store, labels, part, "open", args.memory_mb)
        peak = child(store, labels, part, "train", args.memory_mb)
        cache_mb = peak["cache"]["peak_bytes"] / 2**20
        rows.append((stored_mb, peak["peak_mib"] - base["peak_mib"]))
        print(f"{stored_mb:10.0f} {n:7d} {stored_mb / args.memory_mb:11.1f} {base['peak_mib']:9.0f} "
              f"{peak['peak_mib']:9.0f} {peak['peak_mib'] - base['peak_mib']:9.0f} {cache_mb:14.1f} "
              f"{peak['seconds']:8.1f}")
    (s0, g0), (s1, g1) = rows[0], rows[-1]
    print(f"store grew {s1 / s0:.1f}x ({s0:.0f} -> {s1:.0f} MiB); training memory above baseline "
          f"{g0:.0f} -> {g1:.0f} MiB (ratio {g1 / max(g0, 1e-9):.2f}; flat = ~1.0, bounded by the "
          f"{args.memory_mb} MiB cache + one batch + the model)")


if __name__ == "__main__":
    main()
