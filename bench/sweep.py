"""Sweep benchmark: heads trained from the store vs the same heads trained the s3prl way.

Run from the repository root (about 11 minutes on 2 idle CPU cores with the defaults, almost all
of it in the s3prl-way baseline: 16 configs x (2 epochs x 56 train+dev clips + 8 test clips) =
1,920 Whisper windows at ~0.3 s each; proportionally longer when other work shares the cores)::

    python bench/sweep.py [--clips 64] [--epochs 2] [--configs 16] [--batch-size 16] [--device cuda]
                          [--store PATH] [--workdir DIR] [--audio-dir DIR] [--tol 1e-2]

What runs, all in this one process, so that the ratios compare figures measured side by side:

1. A manifest over ``--clips`` EmoDB clips (``../shared/data/emodb/wav``; every clip is 2.0 s) of
   four emotions (anger, neutral, sadness, happiness), balanced over speakers and emotions: one
   speaker-disjoint fold, train = speakers 03 08 09 10, dev = 11, test = 12 (3/4, 1/8, 1/8 of
   the clips); an MR label set (``aggregate_manifest(..., "mr")``); a Whisper tiny.en store
   (``runner.extract`` with the default ``ct2-whisper`` encoder and default options: all 5
   layers, float16 frames). The extraction is timed end to end (encoder load and weights hash
   included): it is part of the store way's cost. ``--store PATH`` reuses a store this script
   built before (its manifest is read from the store's attrs; extraction is then not timed).

2. ``--configs`` head configurations (default 16: 12 pooled-exact heads: probe on layers 4..1 x
   lr 1e-3/1e-2, ar-mlp on layers 4 and 2, weighted-sum x 2 lrs; 4 frame heads: emobox on
   layers 4 and 2 x 2 lrs), ``--epochs`` epochs each, seed 0.

3. Each config is trained twice with :func:`emostore.heads.loop.train`, same config, same seed:

   * the store way: ``train(...)`` with its default source (``pooled/mean`` in memory for
     pooled-exact heads, frames streamed from the store for emobox);
   * the s3prl way: ``train(..., source=EncoderSource)``. ``EncoderSource``
     (`bench/encoder_source.py`) recomputes the frozen encoder on every batch of
     every epoch, as s3prl's downstream training does with a
     frozen upstream: it decodes the batch's audio with :func:`emostore.extract.audio.load` and
     the store's recorded :class:`~emostore.extract.audio.AudioPolicy`, encodes it with the
     runner's own ``emostore.extract.blocks.encode_rows`` (same 30 s window padding and cropping), in sub-batches packed
     by the runner's rule (``ExtractOptions().batch_seconds`` / ``max_batch``: 4 clips for
     Whisper), selects the store's layers, and either mean-pools over the valid frames (pooled-
     exact heads: ``head.forward_pooled``, the very computation the runner stores in
     ``pooled/mean``) or pads the frames with a mask (``head.forward_frames``).

   The training loop, batch order, initialisation, dropout draws and model selection are the
   same code in both ways; only where the features come from differs. The two ways of a config
   are timed back to back (store way first), so drift on a shared machine hits both alike. The
   store way of a pooled head takes ~10-30 ms on an idle machine, so on a busy one a single run
   measures mostly scheduler (CPU-quota) stalls of up to ~0.4 s: it is repeated until at least
   ``--store-seconds`` (default 2 s) and ``--store-repeats`` runs (default 3) are done, every
   repeat checked to give identical dev losses, and the *mean* time counts, so it averages the
   machine's load over a window as the s3prl way's single run of about a minute does. The
   baseline's encoder is loaded (and warmed with one batch) once, before the sweep; that load is
   timed and counted in the end-to-end ratio only.

4. Printed: one line per config, then per head family (pooled-exact heads, frame heads) and for
   all configs together:

   * ``sweep-only speed-up`` = s3prl-way training seconds / store-way training seconds (targets:
     >= 100x pooled, >= 10x frames);
   * ``with extraction`` = (baseline encoder load + s3prl-way training) / (extraction + store-way
     training); the whole extraction (and the whole encoder load) is charged to each family,
     since one store serves both. This ratio grows with the number of configs x epochs (the
     store pays for the encoder once, the baseline configs x epochs x (train + dev) times +
     once per config for the test predictions), so it is printed with the break-even sweep size.
   * dev-loss agreement: max over configs and epochs of |dev loss(store) - dev loss(s3prl way)|
     and of that difference divided by the store's dev loss. Pooled features are stored as
     float32 computed exactly as the baseline computes them (differences come only from float
     summation order in the encoder's matmuls); frames are stored as float16, so frame heads
     differ by float16 rounding. The run fails (exit 1) if any relative difference exceeds
     ``--tol`` (default 1e-2). Selected epochs and max |test probability difference| are
     printed too.

``--baseline-configs K`` trains only K of the configs (spread over both families) the s3prl way
and extrapolates each family's baseline time from their mean per-config time; every such figure
is marked ``(extrapolated)``. By default every config is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/sweep.py` from anywhere
    sys.path.insert(0, str(REPO))

from emostore.extract import runner  # noqa: E402
from emostore.extract.planning import ExtractOptions  # noqa: E402
from emostore.extract.encoders import DEFAULT_ENCODER, load_encoder  # noqa: E402
from encoder_source import EncoderSource  # noqa: E402  (bench/encoder_source.py)
from emostore.manifests import load_manifest  # noqa: E402

EMOTIONS = {"W": "anger", "N": "neutral", "T": "sadness", "F": "happiness"}
SPEAKERS = {"train": ("03", "08", "09", "10"), "dev": ("11",), "test": ("12",)}
TARGETS = {"pooled": 100.0, "frames": 10.0}


# -- inputs --------------------------------------------------------------------------------------


def find_audio_dir(arg: str | None) -> Path:
    cands = [Path(arg)] if arg else [REPO.parent / "shared/data/emodb/wav", Path("/work/shared/data/emodb/wav")]
    for c in cands:
        if c.is_dir() and any(c.glob("*.wav")):
            return c
    sys.exit(f"no EmoDB wav files in {', '.join(map(str, cands))}; pass --audio-dir")


def pick_clips(audio_dir: Path, n: int) -> list[dict]:
    """``n`` manifest rows, 1/8 dev and 1/8 test (at least one per emotion), balanced round robin."""
    per = max(len(EMOTIONS), round(n / 8))
    want = {"dev": per, "test": per, "train": n - 2 * per}
    if want["train"] < len(EMOTIONS):
        sys.exit(f"--clips {n} is too few (need at least {4 * len(EMOTIONS)})")
    rows = []
    for part, speakers in SPEAKERS.items():
        pools = [sorted(p for p in audio_dir.glob(f"{s}*.wav") if p.stem[5] == e)
                 for e in EMOTIONS for s in speakers]
        taken = 0
        while taken < want[part] and any(pools):
            for pool in pools:
                if pool and taken < want[part]:
                    p = pool.pop(0)
                    rows.append({"id": p.stem, "audio": str(p), "speaker": p.stem[:2],
                                 "emotion": EMOTIONS[p.stem[5]], "part": part})
                    taken += 1
        if taken < want[part]:
            sys.exit(f"only {taken} {part} clips of {want[part]} in {audio_dir}")
    return sorted(rows, key=lambda r: r["id"])


def partition_of(rows: list[dict]):
    from emostore.manifests.partitions import Partition

    part_of = {s: p for p, ss in SPEAKERS.items() for s in ss}
    fold = {p: [r["id"] for r in rows if part_of.get(str(r.get("speaker"))) == p] for p in SPEAKERS}
    return Partition({"f1": fold})


def make_configs(n: int, layers: list[int], epochs: int, batch_size: int, device: str):
    from emostore.heads.config import TrainConfig

    top, mid = layers[-1], layers[len(layers) // 2]
    lrs = (1e-3, 1e-2)
    probe_layers = [k for k in reversed(layers)][:4]
    pooled = ([("weighted-sum", None, lr) for lr in lrs] + [("ar-mlp", k, 1e-3) for k in (top, mid)]
              + [("probe", k, lr) for k in probe_layers for lr in lrs])
    frames = [("emobox", k, lr) for k in (top, mid) for lr in lrs]
    n_frames = max(1, n // 4) if n >= 2 else 0
    n_pooled = n - n_frames
    base = ([(h, k, lr, 0) for h, k, lr in pooled][:n_pooled] + [(h, k, lr, 0) for h, k, lr in frames][:n_frames])
    seed = 1
    while len(base) < n:  # more than the grid: the same grid with further seeds
        extra = [(h, k, lr, seed) for h, k, lr in pooled][: n_pooled - sum(b[0] != "emobox" for b in base)]
        extra += [(h, k, lr, seed) for h, k, lr in frames][: n_frames - sum(b[0] == "emobox" for b in base)]
        base += extra[: n - len(base)]
        seed += 1
    return [TrainConfig(head=h, fold="f1", layer=k, seed=s, epochs=epochs, lr=lr, batch_size=batch_size,
                        device=device) for h, k, lr, s in base]


def family(head: str) -> str:
    from emostore.heads.heads import HEADS

    return "pooled" if HEADS[head].pooled_exact else "frames"


def label(cfg) -> str:
    lay = "all" if cfg.layer is None else f"L{cfg.layer}"
    return f"{cfg.head:<12} {lay:<3} lr {cfg.lr:g} seed {cfg.seed}"


# -- the run -------------------------------------------------------------------------------------


def build(args, work: Path):
    """(store path, manifest path, extraction seconds or None, summary or None)."""
    if args.store:
        import emostore.store

        fs = emostore.store.open(args.store)
        mpath = fs.attrs.get("manifest")
        if not mpath or not Path(mpath).exists():
            sys.exit(f"{args.store}: its manifest {mpath!r} is gone; rebuild the store without --store")
        return args.store, Path(mpath), None, None
    rows = pick_clips(find_audio_dir(args.audio_dir), args.clips)
    mpath = work / "manifest.jsonl"
    mpath.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = work / "store.zarr"
    if store.exists():
        shutil.rmtree(store)
    opts = ExtractOptions(encoder=args.encoder, device=args.device)
    t = time.perf_counter()
    summary = runner.extract(load_manifest(mpath), str(store), opts)
    seconds = time.perf_counter() - t
    if summary.failed:
        sys.exit(f"extraction failed for {summary.failed} clips: {summary.errors[:3]}")
    return str(store), mpath, seconds, summary


def fmt_ratio(x: float) -> str:
    return f"{x:,.0f}x" if x >= 100 else f"{x:,.1f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=64, help="EmoDB clips in the store (3/4 train, 1/8 dev, 1/8 test)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--configs", type=int, default=16, help="head configs (1/4 emobox, the rest pooled-exact)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu", help="encoder and heads (cpu, cuda)")
    ap.add_argument("--encoder", default=DEFAULT_ENCODER)
    ap.add_argument("--audio-dir", default=None)
    ap.add_argument("--store", default=None, help="reuse a store built by this script (extraction not timed)")
    ap.add_argument("--workdir", default=None, help="keep the manifest, store and labels here (default: temp)")
    ap.add_argument("--baseline-configs", type=int, default=None,
                    help="train only this many configs the s3prl way and extrapolate (default: all)")
    ap.add_argument("--store-repeats", type=int, default=3, help="at least this many store-way runs per config")
    ap.add_argument("--store-seconds", type=float, default=2.0,
                    help="repeat each config's store way until this many seconds are spent; its time is the mean")
    ap.add_argument("--tol", type=float, default=1e-2, help="max relative dev-loss difference allowed")
    args = ap.parse_args(argv)

    from emostore.heads.loop import train
    from emostore.labels.aggregate import aggregate_manifest
    import emostore.store

    t_all = time.perf_counter()
    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="emostore-bench-sweep-")
        work = Path(tmp)
    try:
        store, mpath, extract_s, summary = build(args, work)
        manifest = load_manifest(mpath)
        fs = emostore.store.open(store)
        records, meta = aggregate_manifest(mpath, "mr")
        classes = meta["classes"]
        part = partition_of(manifest.rows)
        sizes = {p: len(v) for p, v in part.folds["f1"].items()}
        configs = make_configs(args.configs, fs.layers, args.epochs, args.batch_size, args.device)

        t = time.perf_counter()
        encoder = load_encoder(args.encoder, args.device)
        src = EncoderSource.for_store(fs, manifest, encoder)
        src.hidden(np.arange(min(4, len(fs)), dtype=np.int64))  # warm-up
        load_s = time.perf_counter() - t
        src.clips_encoded, src.encoder_seconds = 0, 0.0

        n_base = len(configs) if args.baseline_configs is None else max(1, min(args.baseline_configs, len(configs)))
        # spread the measured subset over both families (every k-th config of each)
        measured = set()
        for fam in ("pooled", "frames"):
            idx = [i for i, c in enumerate(configs) if family(c.head) == fam]
            k = max(1, round(n_base * len(idx) / len(configs))) if idx else 0
            measured |= {idx[round(j * len(idx) / k)] for j in range(min(k, len(idx)))} if k else set()

        enc = fs.attrs["encoder"]["name"]
        print(f"bench/sweep.py: {len(fs)} EmoDB clips ({sizes['train']} train / {sizes['dev']} dev / "
              f"{sizes['test']} test, speakers {'/'.join(','.join(s) for s in SPEAKERS.values())}), "
              f"{len(classes)} classes {classes}, MR labels")
        print(f"encoder {enc}, layers {fs.layers}, D {fs.dim}, frames {fs.attrs.get('frames_dtype')}, "
              f"device {args.device}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start")
        print(f"{len(configs)} configs x {args.epochs} epochs, batch {args.batch_size}; store way: mean of >= "
              f"{max(1, args.store_repeats)} runs per config (>= {args.store_seconds:g} s of them); s3prl way: 1 run "
              f"per config, measured on {len(measured)} of {len(configs)} configs")
        if extract_s is not None:
            print(f"extraction: {extract_s:.1f} s wall ({summary.extracted} clips, encoder {summary.encoder_seconds:.1f} s"
                  f" = {summary.encoder_seconds / max(summary.extracted, 1):.3f} s/clip)")
        else:
            print(f"extraction: not timed (reused --store {store})")
        print(f"baseline encoder load + warm-up: {load_s:.1f} s")
        print(flush=True)

        hdr = (f"{'config':<34} {'store s':>8} {'s3prl s':>8} {'speed-up':>9} {'max|Δdev|':>10} {'rel':>8} "
               f"{'sel':>5} {'max|Δp|':>8}")
        print(hdr)
        rows_out, repeats = [], []
        for i, cfg in enumerate(configs):
            times, a = [], None
            while len(times) < max(1, args.store_repeats) or sum(times) < args.store_seconds:
                t = time.perf_counter()
                again = train(fs, records, classes, part, cfg)
                times.append(time.perf_counter() - t)
                if a is not None and again.dev_losses != a.dev_losses:
                    raise SystemExit(f"{label(cfg)}: the store way is not deterministic ({a.dev_losses} vs "
                                     f"{again.dev_losses})")
                a = again
            store_s = statistics.fmean(times)
            repeats.append(len(times))
            b = base_s = None
            if i in measured:
                t = time.perf_counter()
                b = train(fs, records, classes, part, cfg, source=src)
                base_s = time.perf_counter() - t
            r = {"cfg": cfg, "family": family(cfg.head), "store_s": store_s, "base_s": base_s}
            if b is not None:
                da = np.abs(np.asarray(a.dev_losses) - np.asarray(b.dev_losses))
                r.update(dev_abs=float(da.max()), dev_rel=float((da / np.abs(a.dev_losses)).max()),
                         sel=(a.selected_epoch, b.selected_epoch),
                         dprob=float(np.abs(a.test_probs - b.test_probs).max()))
                print(f"{label(cfg):<34} {store_s:8.2f} {base_s:8.1f} {fmt_ratio(base_s / store_s):>9} "
                      f"{r['dev_abs']:10.2e} {r['dev_rel']:8.1e} {'%d/%d' % r['sel']:>5} {r['dprob']:8.1e}",
                      flush=True)
            else:
                print(f"{label(cfg):<34} {store_s:8.2f} {'-':>8} {'-':>9} (s3prl way not run)", flush=True)
            rows_out.append(r)

        print()
        print("speed-up = s3prl-way seconds / store-way seconds, same configs, same run; "
              "'with extraction' = (encoder load + s3prl sweep) / (extraction + store sweep)")
        print(f"{'family':<28} {'configs':>7} {'store s':>8} {'s3prl s':>9} {'sweep-only':>11} {'target':>7} "
              f"{'met':>4} {'with extr.':>11} {'max|Δdev|':>10} {'max rel':>8} {'same sel':>8} {'max|Δp|':>8}")
        ok = True
        fams = {"pooled": "pooled (probe/ar-mlp/w-sum)", "frames": "frames (emobox)", "all": "all configs"}
        for fam, name in fams.items():
            rs = [r for r in rows_out if fam == "all" or r["family"] == fam]
            if not rs:
                continue
            got = [r for r in rs if r["base_s"] is not None]
            store_tot = sum(r["store_s"] for r in rs)
            if fam == "all":
                parts = [[r for r in rows_out if r["family"] == f] for f in ("pooled", "frames")]
                base_tot, extrap = 0.0, False
                for p in parts:
                    g = [r for r in p if r["base_s"] is not None]
                    if p and g:
                        base_tot += sum(r["base_s"] for r in g) / len(g) * len(p)
                        extrap |= len(g) < len(p)
            else:
                base_tot = sum(r["base_s"] for r in got) / len(got) * len(rs) if got else float("nan")
                extrap = len(got) < len(rs)
            ratio = base_tot / store_tot
            mark = " (extrapolated)" if extrap else ""
            target = TARGETS.get(fam)
            met = "-" if target is None else ("yes" if ratio >= target else "NO")
            e2e = "-" if extract_s is None else fmt_ratio((load_s + base_tot) / (extract_s + store_tot))
            dev_abs = max(r["dev_abs"] for r in got) if got else float("nan")
            dev_rel = max(r["dev_rel"] for r in got) if got else float("nan")
            same = sum(r["sel"][0] == r["sel"][1] for r in got)
            dprob = max(r["dprob"] for r in got) if got else float("nan")
            print(f"{name:<28} {len(rs):>7} {store_tot:8.2f} {base_tot:9.1f} {fmt_ratio(ratio):>11} "
                  f"{'-' if target is None else f'{target:g}x':>7} {met:>4} {e2e:>11} {dev_abs:10.2e} {dev_rel:8.1e} "
                  f"{f'{same}/{len(got)}':>8} {dprob:8.1e}{mark}")
            if fam != "all" and got and not dev_rel <= args.tol:
                ok = False
        print()
        n_clip_passes = src.clips_encoded
        print(f"store way: {min(repeats)}-{max(repeats)} runs per config (mean time counted), "
              f"{sum(repeats)} runs in all")
        print(f"s3prl way: {n_clip_passes} clip encodings in the measured configs, encoder {src.encoder_seconds:.1f} s "
              f"({src.encoder_seconds / max(n_clip_passes, 1):.3f} s/clip); the store encoded each of {len(fs)} clips once")
        if extract_s is not None:
            per_cfg_base = sum(r["base_s"] for r in rows_out if r["base_s"] is not None) / max(len(measured), 1)
            per_cfg_store = sum(r["store_s"] for r in rows_out) / len(rows_out)
            extra = extract_s - load_s  # what the store pays once beyond the baseline's own encoder load
            be = extra / max(per_cfg_base - per_cfg_store, 1e-9)
            print(f"break-even: extraction pays for itself after {be:.2f} configs of {args.epochs} epochs "
                  f"(extraction - encoder load = {extra:.1f} s; s3prl way {per_cfg_base:.1f} s/config, "
                  f"store way {per_cfg_store:.2f} s/config)")
        print(f"dev-loss agreement (same seed): relative tolerance {args.tol:g} "
              f"{'holds' if ok else 'EXCEEDED'} (pooled heads read float32 pooled/mean, "
              f"frame heads float16 frames)")
        print(f"total wall time: {time.perf_counter() - t_all:.0f} s (load average {os.getloadavg()[0]:.1f} at the end)")
        return 0 if ok else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
