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
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from emostore.errors import EmostoreError
from emostore.extract.blocks import BlockCommit, BlockFill, BlockWork, block_works, encode_blocks


class ClusterError(EmostoreError, ValueError):
    """The Dask cluster cannot be reached or started, or it keeps losing a block's workers."""


@dataclass
class BlockJob:
    """What a worker needs for one block: the block's work and how to encode it (small: no audio)."""

    store: str
    work: BlockWork
    encoder: str
    device: str
    layers: list[int]
    frames_dtype: str | None
    policy: object
    decode_threads: int
    torch_threads: int = 0


@dataclass
class BlockResult:
    first_row: int
    commit: BlockCommit
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
    """A worker's task: decode, encode and write one block's own frame shards (the runner's loop,
    :func:`emostore.extract.blocks.encode_blocks`, over one block)."""
    import torch
    import zarr

    from emostore.store import layout as store_layout

    name = _worker_name()
    if job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    encoder = _encoder(job.encoder, worker_device(job.device, name))
    frames = None
    if job.frames_dtype:
        frames = zarr.open_array(f"{job.store.rstrip('/')}/{store_layout.FRAMES}", mode="r+")
    fill = BlockFill(job.work, frames, len(job.layers), encoder.dim, shared_edges=True)
    enc_time = 0.0
    for batch in encode_blocks([job.work], encoder, job.layers, job.frames_dtype, job.policy, job.decode_threads):
        fill.add(batch)
        enc_time += batch.encode_seconds
    commit, edges = fill.take(final=True)
    return BlockResult(first_row=job.work.first_row, commit=commit, edges=edges, worker=name,
                       encode_seconds=enc_time, frames_written=fill.region.frames_written)


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
    return [BlockJob(store=str(out), work=work, encoder=opts.encoder, device=opts.device, layers=layers,
                     frames_dtype=opts.frames_dtype if opts.frames else None, policy=policy,
                     decode_threads=opts.workers, torch_threads=torch_threads)
            for work in block_works(manifest, plan, writer.done)]


def _block_failed(job: BlockJob, block_rows: int, exc: BaseException):
    """A worker's exception as the coordinator raises it: a problem the user can fix (or workers
    that keep dying) as one line; anything else, a bug, keeps its traceback."""
    rows = f"rows {job.work.first_row}..{job.work.first_row + block_rows - 1}"
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return ClusterError(f"the block of {rows} lost its worker too often ({exc}); finished blocks are kept, "
                            "re-run to resume")
    if isinstance(exc, EmostoreError):
        return ClusterError(f"the block of {rows} failed on the cluster: {exc}")
    exc.add_note(f"(raised by a Dask worker encoding the block of {rows}; finished blocks are kept)")
    return None


def run_on_cluster(manifest, encoder, layers, policy, writer, plan, opts, out, client=None):
    """Run ``plan``'s blocks on Dask workers and commit them here; returns the runner's Summary.
    On an interrupt or an error, the finished blocks are committed before it goes on."""
    from emostore.extract.runner import Summary
    from emostore.progress import as_factory
    from emostore.store.regions import SharedShards

    threads = 0 if opts.scheduler else max(1, (os.cpu_count() or 1) // max(1, opts.processes))
    jobs = block_jobs(manifest, plan, writer, opts, layers, policy, out, threads)
    running = {job.work.first_row: job.work.region for job in jobs}
    shared = SharedShards(writer.frames, running, [r for k, r in enumerate(plan.layout.regions)
                                                   if k * opts.block_rows not in running])
    finished: dict[int, BlockResult] = {}
    ready: list[BlockResult] = []
    totals = {"extracted": 0, "failed": 0, "encode": 0.0}

    def commit():
        """Blocks finished together are committed together: one write of each index array."""
        if ready:
            c = BlockCommit.join([d.commit for d in ready])
            writer.commit_block(c.rows, c.pooled, c.num_frames, c.offsets, c.failed)
            totals["extracted"] += len(c.rows) - len(c.failed)
            totals["failed"] += len(c.failed)
            totals["encode"] += sum(d.encode_seconds for d in ready)
            ready.clear()

    workerless_since = None
    bar = as_factory(opts.progress)(round(plan.audio_seconds, 1), "extract", "audio-s", unit_scale=True)
    with _client_or(client, opts) as cl, cl.as_current():
        # distributed.wait() goes through the *current* client: as_current() makes that the one that
        # owns these futures, also when a caller passed client= while another client is current
        from distributed import wait

        futures = {cl.submit(run_block, job, pure=False, key=f"emostore-block-{job.work.first_row}-{os.getpid()}"
                             f"-{time.monotonic_ns()}"): job for job in jobs}
        try:
            while futures:
                try:
                    batch = wait(list(futures), timeout=SHARED_WAIT_S / 2, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    batch = set()
                for fut in batch:
                    job = futures.pop(fut)
                    try:
                        res: BlockResult = fut.result()
                    except Exception as exc:
                        err = _block_failed(job, opts.block_rows, exc)
                        if err is None:
                            raise
                        raise err from None
                    for r, reason in sorted(res.commit.failed.items()):
                        bar.write(f"worker {res.worker}: row {r} ({manifest.ids[r]}): {reason}")
                    finished[res.first_row] = res
                    # a block is committed once the shards it shares with its neighbours are written
                    ready.extend(finished.pop(first) for first in shared.add(res.first_row, res.edges))
                    bar.update(round(job.work.seconds, 1))
                # a slow block must not hold its neighbours' commits back for long
                ready.extend(finished.pop(first) for first in shared.flush(SHARED_WAIT_S))
                commit()
                n_workers = len(cl.scheduler_info().get("workers", {}))
                bar.update(0, postfix=f"{n_workers} workers, {totals['failed']} failed")
                workerless_since = None if n_workers else (workerless_since or time.monotonic())
                if futures and workerless_since is not None and time.monotonic() - workerless_since > WORKERLESS_S:
                    raise ClusterError(
                        f"the Dask cluster has had no worker for {WORKERLESS_S:.0f} s with {len(futures)} blocks "
                        "still to run; finished blocks are kept, start workers and re-run to resume")
        except BaseException as exc:
            # an interrupt or a block's failure: keep every finished block (write the shared shards
            # they wait for, then commit them); after a failed write (disk, lock) write nothing more
            if isinstance(exc, ClusterError) or not isinstance(exc, (OSError, EmostoreError)):
                ready.extend(finished.pop(first) for first in shared.flush(0.0))
                commit()
            raise
        finally:
            for fut in futures:
                fut.cancel()
            bar.close()
    return Summary(extracted=totals["extracted"], failed=totals["failed"], skipped=0,
                   audio_seconds=plan.audio_seconds, elapsed=0.0, encoder_seconds=totals["encode"], errors=[])


@contextmanager
def _client_or(client, opts):
    if client is not None:
        yield client
        return
    with cluster_client(opts.scheduler, opts.processes) as cl:
        yield cl
