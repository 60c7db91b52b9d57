"""Extraction on a Dask cluster: blocks of rows run on workers, one coordinator commits them.

The coordinator (the process running ``emostore extract``) opens the store and holds its
one-writer lock, plans every row's place in ``frames`` (:mod:`emostore.extract.frameplan`) and
submits one task per unfinished block. A worker decodes and encodes its block and writes the
whole shards of the block's frame range, which no other block touches; it hands back the
pooled rows, frame counts, failures and the pieces of the (at most two) shards it shares with
neighbouring blocks. The coordinator writes each shared shard once, whole, when all blocks in it
have delivered, then commits those blocks (index arrays, errors, ``done``; blocks that finish
together in one commit). A worker that dies mid-block has committed nothing; Dask runs the
block again on another worker, and it rewrites the same range.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from emostore.errors import EmostoreError
from emostore.extract.frameplan import FrameLayout


class ClusterError(EmostoreError, ValueError):
    """The Dask cluster cannot be reached or started, or it keeps losing a block's workers."""


@dataclass
class BlockJob:
    """Everything a worker needs for one block (small: no audio, no arrays)."""

    store: str
    first_row: int
    rows: list[int]  # the block's unfinished rows
    batches: list[list[int]]
    audio: dict[int, str]
    offsets: dict[int, int]
    caps: dict[int, int]
    region: tuple[int, int]
    keep_existing: bool
    probe_errors: dict[int, str]
    encoder: str
    device: str
    layers: list[int]
    frames_dtype: str
    policy: object
    decode_threads: int
    torch_threads: int = 0
    seconds: float = 0.0  # audio seconds planned for the block (progress)


@dataclass
class BlockResult:
    first_row: int
    rows: np.ndarray
    pooled: np.ndarray
    num_frames: np.ndarray
    offsets: np.ndarray
    failed: dict[int, str]
    edges: list[tuple[int, np.ndarray]] = field(default_factory=list)
    worker: str = ""
    encode_seconds: float = 0.0
    frames_written: int = 0


_ENCODERS: dict[tuple[str, str], object] = {}
# A finished block whose shared shard still waits for a neighbour is written into it (a
# read-modify-write) and committed after this many seconds.
SHARED_WAIT_S = 10.0
# A cluster with no worker at all for this long stops the run with an error instead of waiting
# forever (Dask's LocalCluster drops a dead worker's nanny for good when its restart takes longer
# than `distributed.deploy.lost-worker-timeout`, 15 s: on a loaded machine a killed worker can
# leave a cluster with none, and the blocks would wait at 0 CPU).
WORKERLESS_S = 300.0


def worker_device(device: str, worker_name) -> str:
    """``cuda`` on a local multi-process cluster: worker k uses visible GPU k (mod the count);
    an explicit ``cuda:N``, ``cpu`` or a remote worker (pinned by its own CUDA_VISIBLE_DEVICES,
    as ``dask cuda worker`` does) keeps the device it was given."""
    if device != "cuda" or not str(worker_name).isdigit():
        return device
    import torch

    return f"cuda:{int(worker_name) % max(1, torch.cuda.device_count())}"


def _encoder(spec: str, device: str):
    key = (spec, device)
    if key not in _ENCODERS:
        from emostore.extract.encoders import load_encoder

        if device.startswith("cuda:"):
            import torch

            torch.cuda.set_device(device)
        _ENCODERS[key] = load_encoder(spec, device)
    return _ENCODERS[key]


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return "local"


def run_block(job: BlockJob) -> BlockResult:
    """A worker's task: decode, encode and write one block's own frame shards."""
    import torch
    import zarr

    from emostore.extract.runner import _decode_batch, encode_batch
    from emostore.store import layout as store_layout
    from emostore.store.regions import RegionWriter

    name = _worker_name()
    if job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    encoder = _encoder(job.encoder, worker_device(job.device, name))
    layer_idx = torch.tensor(job.layers, device=encoder.device)
    frames = None
    if job.frames_dtype:
        frames = zarr.open_array(f"{job.store.rstrip('/')}/{store_layout.FRAMES}", mode="r+")
    rows_of = SimpleNamespace(rows={r: {"audio": p} for r, p in job.audio.items()})
    plan = FrameLayout(offsets=job.offsets, caps=job.caps, regions=[], block_rows=0)
    region = RegionWriter(frames, *job.region, shared_edges=True, keep_existing=job.keep_existing)
    torch_dtype = {"float16": torch.float16, "float32": torch.float32}[job.frames_dtype or "float32"]
    pos = {r: i for i, r in enumerate(job.rows)}
    n = len(job.rows)
    pooled = np.full((n, len(job.layers), encoder.dim), np.nan, dtype=np.float32)
    nframes = np.zeros(n, dtype=np.int64)
    offsets = np.zeros(n, dtype=np.int64)
    failed = dict(job.probe_errors)
    enc_time = 0.0
    with ThreadPoolExecutor(max(1, job.decode_threads)) as pool:
        ahead = [pool.submit(_decode_batch, rows_of, b, job.policy) for b in job.batches[:2]]
        for k in range(len(job.batches)):
            waves, bad = ahead[k].result()
            if k + 2 < len(job.batches):
                ahead.append(pool.submit(_decode_batch, rows_of, job.batches[k + 2], job.policy))
            failed.update(bad)
            t = time.perf_counter()
            results = encode_batch(rows_of, encoder, waves, layer_idx, torch_dtype, plan, failed)
            enc_time += time.perf_counter() - t
            for r, pooled_row, hidden in results:
                i = pos[r]
                pooled[i], nframes[i], offsets[i] = pooled_row, hidden.shape[0], job.offsets[r]
                region.put(hidden, job.offsets[r])
    edges = region.finish()
    return BlockResult(first_row=job.first_row, rows=np.asarray(job.rows), pooled=pooled, num_frames=nframes,
                       offsets=offsets, failed=failed, edges=edges, worker=name, encode_seconds=enc_time,
                       frames_written=region.frames_written)


@contextmanager
def cluster_client(scheduler: str | None, processes: int):
    """A ``distributed.Client`` on the cluster at ``scheduler`` or on a new local one of ``processes``
    single-threaded worker processes (closed on exit)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--scheduler/--processes need Dask distributed: pip install 'emostore[cluster]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=processes, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        with Client(lc) as client:
            yield client


def block_jobs(manifest, plan, writer, opts, layers, policy, out: str, torch_threads: int) -> list[BlockJob]:
    lay = plan.layout
    jobs = []
    for block_rows, batches in plan.blocks:
        first = block_rows[0] // opts.block_rows * opts.block_rows
        rows_ok = [r for r in block_rows if r in plan.samples]
        jobs.append(BlockJob(
            store=str(out), first_row=first, rows=list(block_rows), batches=[b.rows for b in batches],
            audio={r: manifest.rows[r]["audio"] for r in block_rows},
            offsets={r: int(lay.offsets[r]) for r in rows_ok}, caps={r: int(lay.caps[r]) for r in rows_ok},
            region=lay.region(first), keep_existing=bool(writer.done[first:first + opts.block_rows].any()),
            probe_errors={r: plan.probe_errors[r] for r in block_rows if r in plan.probe_errors},
            encoder=opts.encoder, device=opts.device, layers=layers,
            frames_dtype=opts.frames_dtype if opts.frames else None, policy=policy,
            decode_threads=opts.workers, torch_threads=torch_threads,
            seconds=sum(plan.samples[r] for r in rows_ok) / plan.sample_rate,
        ))
    return jobs


def run_on_cluster(manifest, encoder, layers, policy, writer, plan, opts, out, client=None):
    """Run ``plan``'s blocks on Dask workers and commit them here; returns the runner's Summary."""
    from emostore.extract.runner import Summary
    from emostore.progress import as_factory
    from emostore.store.regions import SharedShards

    threads = 0 if opts.scheduler else max(1, (os.cpu_count() or 1) // max(1, opts.processes))
    jobs = block_jobs(manifest, plan, writer, opts, layers, policy, out, threads)
    running = {job.first_row: job.region for job in jobs}
    shared = SharedShards(writer.frames, running, [r for k, r in enumerate(plan.layout.regions)
                                                   if k * opts.block_rows not in running])
    finished: dict[int, BlockResult] = {}
    extracted = failed_total = 0
    enc_time = 0.0
    workerless_since = None
    bar = as_factory(opts.progress)(round(plan.audio_seconds, 1), "extract", "audio-s", unit_scale=True)
    with _client_or(client, opts) as cl, cl.as_current():
        # distributed.wait() goes through the *current* client: as_current() makes that the one that
        # owns these futures, also when a caller passed client= while another client is current
        from distributed import wait

        futures = {cl.submit(run_block, job, pure=False, key=f"emostore-block-{job.first_row}-{os.getpid()}"
                             f"-{time.monotonic_ns()}"): job for job in jobs}
        try:
            while futures:
                try:
                    batch = wait(list(futures), timeout=SHARED_WAIT_S / 2, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    batch = set()
                ready: list[BlockResult] = []
                for fut in batch:
                    job = futures.pop(fut)
                    try:
                        res: BlockResult = fut.result()
                    except Exception as exc:
                        raise ClusterError(
                            f"block of rows {job.first_row}..{job.first_row + opts.block_rows - 1} failed on the "
                            f"cluster ({type(exc).__name__}: {exc}); finished blocks are kept, re-run to resume") from None
                    for r, reason in sorted(res.failed.items()):
                        bar.write(f"worker {res.worker}: row {r} ({manifest.ids[r]}): {reason}")
                    finished[res.first_row] = res
                    # a block is committed once the shards it shares with its neighbours are written
                    ready += [finished.pop(first) for first in shared.add(res.first_row, res.edges)]
                    bar.update(round(job.seconds, 1))
                # a slow block must not hold its neighbours' commits back for long
                ready += [finished.pop(first) for first in shared.flush(SHARED_WAIT_S)]
                if ready:  # blocks finished together are committed together: one write of each index array
                    writer.commit_block(np.concatenate([d.rows for d in ready]),
                                        np.concatenate([d.pooled for d in ready]),
                                        np.concatenate([d.num_frames for d in ready]),
                                        np.concatenate([d.offsets for d in ready]),
                                        {r: why for d in ready for r, why in d.failed.items()})
                    extracted += sum(len(d.rows) - len(d.failed) for d in ready)
                    failed_total += sum(len(d.failed) for d in ready)
                    enc_time += sum(d.encode_seconds for d in ready)
                n_workers = len(cl.scheduler_info().get("workers", {}))
                bar.update(0, postfix=f"{n_workers} workers, {failed_total} failed")
                workerless_since = None if n_workers else (workerless_since or time.monotonic())
                if futures and workerless_since is not None and time.monotonic() - workerless_since > WORKERLESS_S:
                    raise ClusterError(
                        f"the Dask cluster has had no worker for {WORKERLESS_S:.0f} s with {len(futures)} blocks "
                        "still to run; finished blocks are kept, start workers and re-run to resume")
        finally:
            for fut in futures:
                fut.cancel()
            bar.close()
    return Summary(extracted=extracted, failed=failed_total, skipped=0, audio_seconds=plan.audio_seconds,
                   elapsed=0.0, encoder_seconds=enc_time, errors=[])


@contextmanager
def _client_or(client, opts):
    if client is not None:
        yield client
        return
    with cluster_client(opts.scheduler, opts.processes) as cl:
        yield cl
