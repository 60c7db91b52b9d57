"""Cluster extraction scaling: the orchestration and write path with 1, 2, 4 and 8 workers.

Run from the repository root (about 4 minutes on 2 CPU cores with the defaults)::

    python bench/scale.py [--blocks 32] [--latency 0.25] [--no-s3] [--real-clips 96]

What is measured. An encoder stand-in (``bench-sleep``, registered in every Dask worker by a
preload of this file) sleeps a fixed ``--latency`` per batch — it holds no CPU, as a GPU forward
pass would not — and returns constant (non-fill) hidden states of L = 2, D = 128 (``--layers``, ``--dim``) at 50 frames/s,
so everything else is real: header probes, decoding (16 kHz WAV, no resampling), layer
selection, pooling, the float16 cast, whole-shard writes by the workers, shared-shard pieces and
commits by the coordinator, the Dask scheduler. A local cluster of N single-threaded worker
processes is started first (not timed); the timer covers ``run_on_cluster`` (submit every block
to the last commit) of a fresh store. ``--blocks`` blocks of 32 rows, batches of 8 clips (4 per
block). Throughput is audio seconds per second; the scaling efficiency is throughput(N) /
(N x throughput(1)); the ideal for a latency-bound encoder is 1.0.

Each N runs into a local folder and (unless ``--no-s3`` or moto is missing) into an
S3-compatible server (``moto_server``, a separate process on 127.0.0.1). A last line runs the
real encoder (``--real-encoder``, default Whisper tiny.en) on ``--real-clips`` EmoDB clips with 2 processes vs 1 and prints the
ratio of the two throughputs (cluster start excluded): on this machine's 2 shared cores that is
bound by CPU, not by orchestration.

Request counts per read pattern against the S3 server (``--requests``) are printed from the
server's request log: they back the table in docs/store-format.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from emostore.extract.encoders.base import Encoder, Usage, register  # noqa: E402

HOP = 320


@register("bench-sleep", Usage("bench-sleep:LATENCY,LAYERS,DIM", "benchmark stand-in: sleeps LATENCY s per batch", "bench-sleep:0.25,4,384"))
class SleepEncoder(Encoder):
    """A latency-bound stand-in: ``time.sleep(latency)`` per batch, constant outputs."""

    padding = "per-utterance"

    def __init__(self, path, device):
        latency, layers, dim = (path or "0.25,2,128").split(",")  # bench-sleep:SECONDS,L,D
        self.latency = float(latency)
        self.name, self.device, self.frame_rate = "bench-sleep", device, 16000 / HOP
        self.num_layers, self.dim = int(layers), int(dim)

    def num_frames(self, num_samples: int) -> int:
        return max(1, num_samples // HOP)

    def encode(self, waves):
        time.sleep(self.latency)
        return [torch.full((self.num_frames(len(w)), self.num_layers, self.dim), 0.5) for w in waves]

    def describe(self) -> dict:
        return {"backend": self.backend, "name": self.name, "weights": None, "weights_sha256": None,
                "config": {"latency": self.latency}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_manifest(folder: Path, rows: int) -> Path:
    """``rows`` manifest rows over 8 distinct 16 kHz clips of 1.5-3 s (decoding stays cheap)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    clips = []
    for k in range(8):
        path = folder / f"clip{k}.wav"
        sf.write(path, (rng.standard_normal(int(16000 * (1.5 + 0.2 * k))) * 0.1).astype(np.float32), 16000)
        clips.append(path)
    out = folder / "manifest.jsonl"
    out.write_text("".join(json.dumps({"id": f"u{i:05d}", "audio": str(clips[i % 8])}) + "\n" for i in range(rows)))
    return out


def timed_cluster_run(manifest_path, out: str, opts) -> float:
    """Seconds spent in run_on_cluster (submit to last commit) for a fresh store at ``out``."""
    import emostore.extract.cluster as cluster
    from emostore.extract.runner import extract
    from emostore.manifests import load_manifest

    real = cluster.run_on_cluster
    spent = {}

    def timed(*a, **kw):
        t = time.perf_counter()
        try:
            return real(*a, **kw)
        finally:
            spent["s"] = time.perf_counter() - t

    cluster.run_on_cluster = timed
    try:
        extract(load_manifest(manifest_path), out, opts)
    finally:
        cluster.run_on_cluster = real
    return spent["s"]


class MotoServer:
    """moto's S3 server as a child process; its stderr request log is kept for counting."""

    def __init__(self, log: Path):
        self.port, self.log = _free_port(), log
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}"})
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        import s3fs

        s3fs.S3FileSystem().mkdir("bench")

    def requests(self) -> list[str]:
        import re

        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text())  # werkzeug colours some lines
        return [line for line in text.splitlines() if "HTTP/1.1" in line]

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def _warm(client) -> None:
    """Import the extraction stack in every worker once (seconds: transformers, zarr, s3fs), as a
    long-running cluster would have; only the steady state is timed."""

    def imports():
        import emostore.extract.cluster  # noqa: F401
        import emostore.extract.runner  # noqa: F401

        try:
            import s3fs  # noqa: F401
        except ImportError:
            pass

    client.run(imports)


def scaling(args, tmp: Path, s3: MotoServer | None) -> None:
    from distributed import Client, LocalCluster

    from emostore.extract.planning import ExtractOptions

    manifest = synthetic_manifest(tmp, args.blocks * 32)
    preload = tmp / "bench_preload.py"
    preload.write_text(f"import sys\nsys.path.insert(0, {str(REPO / 'bench')!r})\nimport scale  # noqa: F401\n")
    targets = [("local", lambda n: str(tmp / f"local-{n}.zarr"))]
    if s3 is not None:
        targets.append(("s3", lambda n: f"s3://bench/scale-{n}.zarr"))
    base = {}
    for n in (1, 2, 4, 8):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                          preload=[str(preload)]) as lc, Client(lc) as client:
            _warm(client)
            opts = ExtractOptions(encoder=f"bench-sleep:{args.latency},{args.layers},{args.dim}", block_rows=32, max_batch=8,
                                  scheduler=lc.scheduler_address)
            for name, where in targets:
                seconds = timed_cluster_run(manifest, where(n), opts)
                audio = args.blocks * 32 * 2.2  # mean clip length of the 8 synthetic clips
                rate = audio / seconds
                base.setdefault(name, rate)
                mb = audio * 50 * args.layers * args.dim * 2 / seconds / 2**20
                print(f"scale {name:5s} workers={n}: {rate:8.1f} audio-s/s, {seconds:6.2f} s, {mb:6.1f} MiB/s of "
                      f"frames, efficiency {rate / (n * base[name]):.3f}", flush=True)


def real_encoder_ratio(args, tmp: Path) -> None:
    from distributed import Client, LocalCluster

    from emostore.extract.planning import ExtractOptions

    clips = sorted(Path(args.audio_dir).glob("*.wav"))[: args.real_clips]
    manifest = tmp / "real.jsonl"
    manifest.write_text("".join(json.dumps({"id": p.stem, "audio": str(p)}) + "\n" for p in clips))
    times = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, Client(lc):
            opts = ExtractOptions(encoder=args.real_encoder, block_rows=max(1, len(clips) // 8),
                                  scheduler=lc.scheduler_address)
            timed_cluster_run(manifest, str(tmp / f"warm-{n}.zarr"), opts)  # workers import and load once
            times[n] = timed_cluster_run(manifest, str(tmp / f"real-{n}.zarr"), opts)
    print(f"real encoder {args.real_encoder}, {len(clips)} clips: 1 process {times[1]:.2f} s, 2 processes "
          f"{times[2]:.2f} s, throughput ratio 2 vs 1: {times[1] / times[2]:.2f} (ideal 2.0; "
          f"{os.cpu_count()} CPU cores here)")


def request_counts(tmp: Path, s3: MotoServer) -> None:
    """S3 requests per read pattern on the 8-worker store (one shard of frames, N = blocks x 32)."""
    import emostore.store

    url = "s3://bench/scale-8.zarr"
    before = len(s3.requests())
    fs = emostore.store.open(url)
    fs.ids, fs.done, fs.offsets, fs.num_frames  # noqa: B018
    time.sleep(0.3)
    print(f"requests  {'open store, read ids/done/offsets/num_frames':40s}: {len(s3.requests()) - before:4d}")
    patterns = {
        "pooled, one layer, all rows": lambda fs: fs.pooled(layer=0),
        "pooled, all layers, all rows": lambda fs: fs.pooled(),
        "frames of one utterance, all layers": lambda fs: fs.frames(5),
        "frames of one utterance, one layer": lambda fs: fs.frames(7, layer=0),
        "frames, every utterance (frames_dask)": lambda fs: fs.frames_dask().compute(),
    }
    for name, read in patterns.items():
        fs = emostore.store.open(url)
        fs.ids, fs.done, fs.offsets, fs.num_frames  # index arrays: read once per open  # noqa: B018
        before = len(s3.requests())
        read(fs)
        time.sleep(0.3)  # the server writes its log line after answering
        reqs = s3.requests()[before:]
        kinds = {m: sum(1 for r in reqs if f'"{m} ' in r) for m in ("GET", "HEAD", "PUT", "POST", "DELETE")}
        print(f"requests  {name:40s}: {len(reqs):4d} (" + ", ".join(f"{v} {k}" for k, v in kinds.items() if v) + ")")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.25, help="stand-in encoder seconds per batch")
    ap.add_argument("--layers", type=int, default=2, help="stand-in encoder layers L")
    ap.add_argument("--dim", type=int, default=128, help="stand-in encoder width D")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--requests", action="store_true", help="also count S3 requests per read pattern")
    ap.add_argument("--real-clips", type=int, default=64)
    ap.add_argument("--real-encoder", default="ct2-whisper")
    ap.add_argument("--audio-dir", default=str(REPO.parent / "shared" / "data" / "emodb" / "wav"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        s3 = None
        if not args.no_s3:
            try:
                import moto.server  # noqa: F401
                import s3fs  # noqa: F401

                s3 = MotoServer(tmp / "moto.log")
            except ImportError:
                print("s3: moto[server] and s3fs not installed, local disk only")
        try:
            scaling(args, tmp, s3)
            if s3 is not None and args.requests:
                request_counts(tmp, s3)
            if args.real_clips:
                real_encoder_ratio(args, tmp)
        finally:
            if s3 is not None:
                s3.close()


if __name__ == "__main__":
    main()
