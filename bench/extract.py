"""Extraction benchmark: runner overhead, store size, and pooled-vs-frames read cost.

Run from the repository root (about 3 minutes on 2 idle CPU cores with the defaults)::

    python bench/extract.py [--clips N] [--device cuda] [--rounds R] [--encoder SPEC] [--audio-dir DIR]

Uses the first N clips (sorted by name, default 64) of EmoDB from ``../shared/data/emodb/wav``
(or ``--audio-dir``) and the default encoder, Whisper tiny.en (``ct2-whisper``). Prints, one
figure per line, everything measured side by side in this one run:

(a) ``extract/forward throughput ratio``: the runner's throughput divided by the bare encoder's
    forward throughput on the very same batches (a ratio of the two wall times, since both
    process the same audio). The encoder is loaded and warmed once, before anything is timed,
    and ``emostore.extract.runner.load_encoder`` is patched to hand that warmed encoder to the
    runner, so encoder load time is in neither measurement.

    * forward: audio already decoded in memory (same ``AudioPolicy`` as the runner); the timer
      covers only ``encoder.encode(waves)`` over the batch plan of ``planning.make_plan`` (same
      rows in each batch, same order), plus a ``cuda.synchronize`` per batch on a GPU.
    * extract: ``runner.extract(manifest, fresh temp store, ExtractOptions())`` (quiet) end
      to end: fingerprint (sha256 of the weights), store creation, header probes, planning,
      decoding, encoding, layer selection, mean pooling, float16 cast, device->host copy,
      writes and the final commit. The runner's ``_run`` (the decode+encode+write pipeline
      alone) is also timed, by wrapping it, and printed on its own line.

    The machine may be shared, so ``--rounds`` (default 3) rounds run back to back, each a
    forward pass and an extraction (forward first in even rounds, extract first in odd ones),
    and the headline ratio is the median of the same-round ratios; every round's figures and
    the fastest-extract / fastest-forward ratio are printed too, to show the noise. The share
    of ``_run`` spent outside ``encoder.encode`` (decode waits, layer selection, pooling, casts,
    the final writer flush) is printed as well: it is measured inside one run, so it is not
    disturbed by drift between runs (but ``encode`` itself may be slowed by the decode and
    writer threads sharing the cores, which only the ratio to the bare forward shows).

(b) ``store bytes per audio second``: bytes of the ``frames`` array on disk (shards + metadata)
    per second of audio, against the float16 minimum L*D*2 bytes per frame * frame_rate frames/s;
    ``pooled/mean`` and the whole store are shown on separate lines.

(c) one head epoch's reads from the finished store, page cache warm (the store was just
    written): all ``pooled/mean`` rows of all layers (``fs.pooled()``) vs every utterance's
    frames (``fs.frames(i)`` for every done i, and ``fs.frames_dask().compute()``). Median of a
    few repeats each.

Note: every clip of the shared EmoDB copy is exactly 2.0 s long (the uploader cut or zero-padded
them), so every batch is 4 clips (Whisper costs a 30 s window per clip and batch_seconds is 120)
and the store holds exactly 50 frames per audio second.

A last ``sanity`` line re-encodes one batch, compares it with what the store holds, and runs
``emostore.store.verify`` on the store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import emostore.store
from emostore.extract import audio, planning, runner
from emostore.extract.encoders import DEFAULT_ENCODER, load_encoder
from emostore.manifests import load_manifest

REPO = Path(__file__).resolve().parents[1]


def find_audio_dir(arg: str | None) -> Path:
    cands = [Path(arg)] if arg else [REPO.parent / "shared/data/emodb/wav", REPO.parent / "shared/data/emodb",
                                      Path("/work/shared/data/emodb/wav")]
    for c in cands:
        if c.is_dir() and any(c.glob("*.wav")):
            return c
    sys.exit(f"no EmoDB wav files in {', '.join(map(str, cands))}; pass --audio-dir")


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_pass(encoder, plan, waves) -> float:
    """Seconds spent in encoder.encode over the plan's batches, audio already in memory."""
    total = 0.0
    for _, batches in plan.blocks:
        for b in batches:
            batch = [waves[r] for r in b.rows]
            sync(encoder.device)
            t = time.perf_counter()
            out = encoder.encode(batch)
            sync(encoder.device)
            total += time.perf_counter() - t
            del out
    return total


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=64, help="first N EmoDB clips (default 64)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:k]")
    ap.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encoder spec (default {DEFAULT_ENCODER})")
    ap.add_argument("--audio-dir", default=None, help="folder of EmoDB .wav files")
    ap.add_argument("--rounds", type=int, default=3, help="forward+extract rounds; the fastest of each is used")
    ap.add_argument("--keep", default=None, help="write the store here and keep it (default: a temp dir, deleted)")
    args = ap.parse_args()

    wavs = sorted(find_audio_dir(args.audio_dir).glob("*.wav"))[: args.clips]
    tmp = tempfile.TemporaryDirectory(prefix="emostore-bench-")
    tmpdir = Path(tmp.name)
    with open(tmpdir / "manifest.jsonl", "w") as fh:
        for p in wavs:
            fh.write(json.dumps({"id": p.stem, "audio": str(p)}) + "\n")
    manifest = load_manifest(tmpdir / "manifest.jsonl")
    out = Path(args.keep) if args.keep else tmpdir / "bench.zarr"

    # -- load and warm the encoder once; both measurements reuse it -------------------------
    t = time.perf_counter()
    encoder = load_encoder(args.encoder, args.device)
    load_s = time.perf_counter() - t
    opts = planning.ExtractOptions(encoder=args.encoder, device=args.device)
    layers = planning.select_layers(encoder, opts.layers)
    policy = runner._audio_policy(manifest, encoder, opts)
    plan = planning.make_plan(manifest, encoder, opts, np.zeros(len(manifest), dtype=bool))
    waves = {r: audio.load(manifest.rows[r]["audio"], policy) for r in plan.pending}
    first = plan.blocks[0][1][0].rows
    for _ in range(2):
        encoder.encode([waves[r] for r in first])
    sync(encoder.device)
    nbatches = sum(len(b) for _, b in plan.blocks)
    secs = plan.audio_seconds
    L, D = len(layers), encoder.dim
    print(f"setup: {len(manifest)} clips, {secs:.1f} audio s, {encoder.name} on {args.device}, "
          f"L={L} D={D} {encoder.frame_rate:g} frames/s, {nbatches} batches "
          f"(batch_seconds={opts.batch_seconds:g}, max_batch={opts.max_batch}), "
          f"torch threads={torch.get_num_threads()}")
    print(f"encoder load + warm-up (excluded from all timings): {load_s:.1f} s load")

    # -- (a) rounds of forward + extract, order alternating; median of same-round ratios --
    run_times: list[float] = []
    real_run = runner._run

    def timed_run(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real_run(*a, **kw)
        finally:
            run_times.append(time.perf_counter() - t0)

    fwd_times, ext_times, summaries = [], [], []

    def do_extract(k: int):
        store = out if k == args.rounds - 1 else tmpdir / f"round{k}.zarr"
        runner.load_encoder = lambda spec, device="cpu": encoder  # hand the warmed encoder to the runner
        runner._run = timed_run
        try:
            t = time.perf_counter()
            summary = runner.extract(manifest, str(store), opts)
            ext_times.append(time.perf_counter() - t)
        finally:
            runner.load_encoder = load_encoder
            runner._run = real_run
        summaries.append(summary)
        if summary.failed or summary.extracted != len(manifest):
            print(f"WARNING: extract reported {summary.extracted} extracted, {summary.failed} failed: "
                  f"{summary.errors[:3]}")
        if store != out:
            shutil.rmtree(store)

    for k in range(args.rounds):  # forward first in even rounds, extract first in odd ones
        if k % 2:
            do_extract(k)
        fwd_times.append(forward_pass(encoder, plan, waves))
        if not k % 2:
            do_extract(k)

    pairs = [f / e for f, e in zip(fwd_times, ext_times)]
    fwd, ext_s = min(fwd_times), min(ext_times)
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    print(f"bare forward: {statistics.median(fwd_times):.2f} s median = {secs / statistics.median(fwd_times):.2f} "
          f"audio s/s (rounds: {fmt(fwd_times)} s)")
    print(f"extract() end to end: {statistics.median(ext_times):.2f} s median = "
          f"{secs / statistics.median(ext_times):.2f} audio s/s (rounds: {fmt(ext_times)} s; _run "
          f"{fmt(run_times)} s; encoder inside _run {fmt([x.encoder_seconds for x in summaries])} s)")
    print(f"extract/forward throughput ratio: {statistics.median(pairs):.3f} (target >= 0.90)  "
          f"[median of same-round pairs: {fmt(pairs)}]")
    print(f"extract/forward throughput ratio, fastest extract / fastest forward: {fwd / ext_s:.3f}")
    print(f"extract _run only/forward throughput ratio: "
          f"{statistics.median([f / r for f, r in zip(fwd_times, run_times)]):.3f} (median of same-round pairs)")
    print(f"runner time outside the encoder, share of _run: "
          f"{statistics.median([1 - x.encoder_seconds / r for x, r in zip(summaries, run_times)]):.1%}")

    # -- (b) bytes per audio second ---------------------------------------------------------
    fs = emostore.store.open(out)
    frames_b, pooled_b, total_b = du(out / "frames"), du(out / "pooled"), du(out)
    total_frames = int(fs.num_frames[fs.done].sum())
    minimum = L * D * 2 * encoder.frame_rate
    print(f"store bytes per audio second: {frames_b / secs:.0f} (float16 minimum {minimum:.0f}, "
          f"ratio {frames_b / secs / minimum:.3f})  [frames only; {total_frames} frames = "
          f"{total_frames / secs:.2f} frames/s stored]")
    print(f"pooled/mean bytes per audio second: {pooled_b / secs:.0f} "
          f"(float32 minimum {len(manifest) * L * D * 4 / secs:.0f}, {len(manifest) * L * D * 4 / pooled_b:.3f} "
          f"of the file bytes are payload)")
    print(f"whole store bytes per audio second: {total_b / secs:.0f} "
          f"(ratio to float16 frames minimum {total_b / secs / minimum:.3f})")

    # -- (c) one head epoch: pooled vs frames ----------------------------------------------
    done = np.flatnonzero(fs.done)
    fs = emostore.store.open(out)
    pooled_t = median_time(lambda: fs.pooled(), 7)
    frames_t = median_time(lambda: [fs.frames(int(i)) for i in done], 3)
    dask_t = median_time(lambda: fs.frames_dask().compute(), 3)
    print(f"head epoch read, pooled (all {len(done)} rows x {L} layers): {pooled_t * 1e3:.1f} ms")
    print(f"head epoch read, frames (fs.frames(i) for {len(done)} utterances): {frames_t * 1e3:.1f} ms "
          f"(ratio frames/pooled {frames_t / pooled_t:.1f})")
    print(f"head epoch read, frames (frames_dask().compute()): {dask_t * 1e3:.1f} ms "
          f"(ratio frames/pooled {dask_t / pooled_t:.1f})")

    # -- sanity: the store holds what the encoder produced ---------------------------------
    rows = plan.blocks[0][1][0].rows
    ref = encoder.encode([waves[r] for r in rows])
    err_p = max(float((fs.pooled(rows=[r])[0] - h[:, layers].mean(0).cpu().numpy()).__abs__().max())
                for r, h in zip(rows, ref))
    err_f = max(float(np.abs(fs.frames(r).astype(np.float32) - h[:, layers].cpu().numpy()).max())
                for r, h in zip(rows, ref))
    problems = emostore.store.verify(fs, manifest)
    print(f"sanity: max |stored - re-encoded| on {len(rows)} clips: pooled {err_p:.2e}, frames {err_f:.2e}; "
          f"emostore.store.verify: {'; '.join(problems) if problems else 'ok'}")
    if args.keep is None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
