"""The extraction runner: manifest + encoder -> one feature store, once, resumably.

Rows are processed in blocks of ``block_rows`` in manifest order (the unit of commit and resume).
Inside a block, clips are sorted by cost and packed into batches by total audio seconds. Audio
decoding runs ahead in a thread pool and store writes run behind in a writer thread, so the
encoder's forward pass is the only thing on the critical path.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from emostore.errors import EmostoreError
from emostore.extract import audio
from emostore.extract.encoders import DEFAULT_ENCODER, Encoder, load_encoder
from emostore.extract.frameplan import FrameLayout, pack_order, plan_layout
from emostore.manifests import Manifest
from emostore.progress import as_factory
from emostore.provenance import library_versions
from emostore.store import layout
from emostore.store.summary import format_bytes
from emostore.store.regions import RegionWriter
from emostore.store.writer import StoreWriter, existing_done, json_attrs, store_os_error, stored_fingerprint


class ExtractError(EmostoreError, ValueError):
    """Options that do not fit the encoder or the manifest (layers, normalisation ids)."""


@dataclass
class ExtractOptions:
    """Everything a user chooses for one extraction (the CLI's flags)."""

    encoder: str = DEFAULT_ENCODER
    device: str = "cpu"
    frames: bool = True
    frames_dtype: str = "float16"
    layers: list[int] | None = None
    batch_seconds: float = 120.0
    max_batch: int = 32
    normalise: str = "auto"
    norm_ids: list[str] | None = None
    allow_upsample: bool = False
    min_seconds: float = 0.05
    block_rows: int = layout.BLOCK_ROWS
    compress: bool = False
    workers: int = 2
    corpus: str | None = None
    progress: object = None  # a Progress factory (emostore.progress); None/False: quiet, True: auto
    # Dask: run blocks on the cluster at `scheduler`, or on a local one of `processes` workers
    scheduler: str | None = None
    processes: int = 0

    @property
    def distributed(self) -> bool:
        return bool(self.scheduler) or self.processes > 0


@dataclass
class Batch:
    rows: list[int]
    seconds: float


@dataclass
class Plan:
    """What extraction will do; ``dry_run`` prints this before any encoder work."""

    num_rows: int
    pending: list[int]
    samples: dict[int, int]  # estimated samples at the encoder's rate, per pending row
    probe_errors: dict[int, str]
    sample_rate: int
    blocks: list[tuple[list[int], list[Batch]]] = field(default_factory=list)
    layout: FrameLayout | None = None  # every row's planned place in `frames`

    @property
    def audio_seconds(self) -> float:
        return sum(self.samples.values()) / self.sample_rate


@dataclass
class Summary:
    extracted: int
    failed: int
    skipped: int
    audio_seconds: float
    elapsed: float
    encoder_seconds: float
    errors: list[dict]


def _select_layers(encoder: Encoder, layers: list[int] | None) -> list[int]:
    if not layers:
        return list(range(encoder.num_layers))
    bad = [k for k in layers if not 0 <= k < encoder.num_layers]
    if bad:
        raise ExtractError(f"--layers {bad} out of range: {encoder.name} has layers 0..{encoder.num_layers - 1}")
    return sorted(set(layers))


def parse_layers(text: str | None) -> list[int] | None:
    """'0,4,8-12' -> [0, 4, 8, 9, 10, 11, 12]."""
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ExtractError(f"--layers: {part!r} is not a layer number or range like 8-12")
        if sep and int(hi) < int(lo):
            raise ExtractError(f"--layers: range {part!r} runs backwards (write {hi}-{lo})")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


def _probe_all(manifest: Manifest, rows: list[int], target_rate: int, workers: int):
    def one(r: int):
        try:
            frames, rate = audio.probe(manifest.rows[r]["audio"])
            return r, int(round(frames * target_rate / rate)), None
        except audio.AudioError as exc:
            return r, 0, str(exc)

    with ThreadPoolExecutor(max(1, workers * 4)) as pool:
        results = list(pool.map(one, rows))
    samples = {r: n for r, n, e in results if e is None}
    errors = {r: e for r, _, e in results if e is not None}
    return samples, errors


def _pack(rows: list[int], samples: dict[int, int], encoder: Encoder, opts: ExtractOptions) -> list[Batch]:
    """Length-sorted greedy packing; a padded batch costs len(batch) x its longest clip."""
    order = pack_order(rows, samples, encoder)
    batches: list[Batch] = []
    cur: list[int] = []
    longest = 0.0
    for r in order:
        cost = encoder.cost_seconds(samples[r])
        same = encoder.padding != "same-length" or not cur or samples[cur[-1]] == samples[r]
        if cur and (not same or len(cur) >= opts.max_batch or (len(cur) + 1) * max(longest, cost) > opts.batch_seconds):
            batches.append(Batch(cur, len(cur) * longest))
            cur, longest = [], 0.0
        cur.append(r)
        longest = max(longest, cost)
    if cur:
        batches.append(Batch(cur, len(cur) * longest))
    return batches


def make_plan(manifest: Manifest, encoder: Encoder, opts: ExtractOptions, done: np.ndarray) -> Plan:
    n = len(manifest)
    pending = [r for r in range(n) if not done[r]]
    # finished rows are probed too: the frame layout is planned over every row, every run
    every, errors = _probe_all(manifest, list(range(n)), encoder.sample_rate, opts.workers)
    samples = {r: every[r] for r in pending if r in every}
    plan = Plan(num_rows=n, pending=pending, samples=samples,
                probe_errors={r: e for r, e in errors.items() if not done[r]},
                sample_rate=encoder.sample_rate, layout=plan_layout(n, every, encoder, opts.block_rows))
    for start in range(0, n, opts.block_rows):
        block = [r for r in range(start, min(n, start + opts.block_rows)) if not done[r]]
        if block:
            ok = [r for r in block if r in samples]
            plan.blocks.append((block, _pack(ok, samples, encoder, opts)))
    return plan


def describe_plan(plan: Plan, encoder: Encoder, opts: ExtractOptions, layers: list[int]) -> str:
    """Human summary of sizes: what the store will hold before any work is done."""
    frames = sum(encoder.num_frames(s) for s in plan.samples.values())
    itemsize = 2 if opts.frames_dtype == "float16" else 4
    L, D = len(layers), encoder.dim
    pooled_b = plan.num_rows * L * D * 4
    frames_b = frames * L * D * itemsize if opts.frames else 0
    chunks, shards = layout.frame_chunks(L, D, itemsize)
    hours = plan.audio_seconds / 3600
    lines = [
        f"encoder      {encoder.name} ({encoder.backend}, padding: {encoder.padding}) on {opts.device}",
        f"utterances   {plan.num_rows} in manifest, {len(plan.pending)} to extract, "
        f"{len(plan.probe_errors)} unreadable",
        f"audio        {plan.audio_seconds:.1f} s ({hours:.2f} h) at {encoder.sample_rate} Hz",
        f"layers       {L} of {encoder.num_layers} ({_fmt_layers(layers)}), D = {D}, "
        f"{encoder.frame_rate:g} frames/s, ~{frames} frames",
        f"pooled/mean  [{plan.num_rows}, {L}, {D}] float32 = {format_bytes(pooled_b)}, "
        f"chunks {layout.pooled_chunks(plan.num_rows, D, opts.block_rows)}",
        (f"frames       [{frames}, {L}, {D}] {opts.frames_dtype} = {format_bytes(frames_b)}{' before zstd' if opts.compress else ''}, "
         f"chunks {chunks} in shards {shards}") if opts.frames else "frames       not stored (--no-frames)",
        f"batches      {sum(len(b) for _, b in plan.blocks)} in {len(plan.blocks)} blocks of "
        f"<= {opts.block_rows} rows, <= {opts.batch_seconds:g} padded s and {opts.max_batch} clips each",
        f"total        ~{format_bytes(pooled_b + frames_b)} "
        f"({format_bytes((pooled_b + frames_b) / max(plan.audio_seconds, 1e-9))} per audio second)",
    ]
    return "\n".join(lines)


def _fmt_layers(layers: list[int]) -> str:
    return f"{layers[0]}..{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1)) else ",".join(map(str, layers))


def _corpus_name(manifest: Manifest) -> str:
    """The rows' ``corpus`` column (adapters write it) if unique, else the manifest's name."""
    named = {str(r["corpus"]) for r in manifest.rows if r.get("corpus")}
    if len(named) == 1:
        return named.pop()
    return Path(manifest.source).name.split(".")[0]


def _audio_policy(manifest: Manifest, encoder: Encoder, opts: ExtractOptions, stored: dict | None = None,
                  need_stats: bool = True) -> audio.AudioPolicy:
    """The audio policy; ``dataset`` mean/std come from the store ``stored`` (its fingerprint) when
    it was made from the same manifest, training ids and policy, else are computed (skipped when
    not ``need_stats``: a dry run without a store only plans)."""
    mode = encoder.default_normalise() if opts.normalise == "auto" else opts.normalise
    policy = audio.AudioPolicy(sample_rate=encoder.sample_rate, normalise="none" if mode == "dataset" else mode,
                               min_seconds=opts.min_seconds, allow_upsample=opts.allow_upsample)
    if mode != "dataset":
        return policy
    wanted = set(opts.norm_ids) if opts.norm_ids else None
    unknown = wanted - set(manifest.ids) if wanted else set()
    if unknown:
        raise ExtractError(f"--norm-ids: {len(unknown)} ids are not in the manifest, e.g. {sorted(unknown)[:3]}")
    policy = audio.AudioPolicy(**{**asdict(policy), "normalise": "dataset"})
    old = (stored or {}).get("audio") or {}
    if (stored or {}).get("manifest_sha256") == manifest.sha256 and old.get("mean") is not None and \
            _without_stats(old) == _without_stats(_audio_attrs(policy, opts)):
        return audio.AudioPolicy(**{**asdict(policy), "mean": old["mean"], "std": old["std"]})
    if not need_stats:
        return policy
    paths = [r["audio"] for r in manifest.rows if wanted is None or r["id"] in wanted]
    mean, std = audio.dataset_stats(paths, policy)
    return audio.AudioPolicy(**{**asdict(policy), "mean": mean, "std": std})


def _audio_attrs(policy: audio.AudioPolicy, opts: ExtractOptions) -> dict:
    """The policy as recorded; ``dataset`` with ``--norm-ids`` adds a hash of the ids the stats came from."""
    attrs = policy.as_attrs()
    if policy.normalise == "dataset" and opts.norm_ids:
        attrs["norm_ids_sha256"] = hashlib.sha256("\n".join(sorted(set(opts.norm_ids))).encode("utf-8")).hexdigest()
    return attrs


def _without_stats(audio_attrs: dict) -> dict:
    return {k: v for k, v in audio_attrs.items() if k not in ("mean", "std")}


class _Writer(threading.Thread):
    """Drains finished batches into the store in order, off the encoder's thread."""

    def __init__(self, writer: StoreWriter):
        super().__init__(daemon=True, name="emostore-writer")
        self.writer, self.q = writer, queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self):
        while True:
            job = self.q.get()
            if job is None:
                return
            if self.error is None:
                try:
                    job()
                except BaseException as exc:  # surfaced on the main thread
                    self.error = exc

    def submit(self, job):
        if self.error is not None:
            raise self.error
        self.q.put(job)

    def close(self):
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def _decode_batch(manifest: Manifest, rows: list[int], policy: audio.AudioPolicy):
    waves, failed = {}, {}
    for r in rows:
        try:
            waves[r] = audio.load(manifest.rows[r]["audio"], policy)
        except audio.AudioError as exc:
            failed[r] = str(exc)
    return waves, failed


def _encode_rows(encoder: Encoder, waves: dict[int, np.ndarray]) -> Iterator[tuple[int, torch.Tensor | str]]:
    """Encoded rows; an output with no frames or with NaN/inf is that row's error, not stored data."""
    for r, out in _encode_groups(encoder, waves):
        if isinstance(out, torch.Tensor):
            if out.shape[0] == 0:
                out = "encoder returned no frames (clip too short for this encoder?)"
            elif not bool(torch.isfinite(out).all()):
                out = "encoder output holds NaN or inf"
        yield r, out


def _encode_groups(encoder: Encoder, waves: dict[int, np.ndarray]) -> Iterator[tuple[int, torch.Tensor | str]]:
    """Encode in groups the encoder can batch exactly; a failing batch is retried clip by clip."""
    rows = list(waves)
    groups: list[list[int]] = [rows]
    if encoder.padding == "same-length":
        by_len: dict[int, list[int]] = {}
        for r in rows:
            by_len.setdefault(len(waves[r]), []).append(r)
        groups = list(by_len.values())
    for group in groups:
        try:
            yield from zip(group, encoder.encode([waves[r] for r in group]))
        except Exception as exc:
            if len(group) == 1:
                yield group[0], f"encoder failed: {type(exc).__name__}: {exc}"
                continue
            for r in group:
                try:
                    yield r, encoder.encode([waves[r]])[0]
                except Exception as exc1:
                    yield r, f"encoder failed: {type(exc1).__name__}: {exc1}"


def block_region(frames, layout: FrameLayout, first_row: int, done: np.ndarray, shared_edges: bool = False):
    """The writer of one block's planned frame range; a block with finished rows keeps their frames."""
    start = first_row // layout.block_rows * layout.block_rows
    lo, hi = layout.region(start)
    return RegionWriter(frames, lo, hi, shared_edges=shared_edges,
                        keep_existing=bool(done[start:start + layout.block_rows].any()))


def encode_batch(manifest: Manifest, encoder: Encoder, waves: dict[int, np.ndarray], layer_idx: torch.Tensor,
                 frames_dtype: torch.dtype, layout: FrameLayout, failed: dict[int, str]) -> list:
    """[(row, pooled [L, D] float32, frames [T, L, D])] in planned frame order; failures go to ``failed``."""
    results = []
    for r, hidden in _encode_rows(encoder, waves):
        if isinstance(hidden, torch.Tensor):
            hidden = layout.frames_error(r, hidden.shape[0]) or hidden
        if isinstance(hidden, str):
            failed[r] = f"{manifest.rows[r]['audio']}: {hidden}"
            continue
        h = hidden.index_select(1, layer_idx)
        results.append((r, h.mean(0).cpu().numpy(), h.to(frames_dtype).cpu().numpy()))
    return sorted(results, key=lambda item: layout.offsets[item[0]])


def extract(manifest: Manifest, out: str, opts: ExtractOptions, dry_run: bool = False,
            log=print) -> Summary | str:
    """Run (or, with ``dry_run``, describe what remains of) extraction of ``manifest`` into ``out``."""
    t0 = time.perf_counter()
    # on a cluster the workers encode; the coordinator's copy only plans (kept off the GPUs)
    encoder = load_encoder(opts.encoder, "cpu" if opts.distributed else opts.device)
    layers = _select_layers(encoder, opts.layers)
    policy = _audio_policy(manifest, encoder, opts, stored_fingerprint(out), need_stats=not dry_run)
    desc = encoder.describe()
    fingerprint = json_attrs({
        "format_version": layout.FORMAT_VERSION, "manifest_sha256": manifest.sha256,
        "encoder": {k: desc[k] for k in ("backend", "name", "weights_sha256")},
        "layers": layers, "frames_dtype": opts.frames_dtype if opts.frames else None,
        "audio": _audio_attrs(policy, opts), "block_rows": opts.block_rows, "compress": opts.compress,
    })
    if dry_run:
        done = existing_done(out, fingerprint)
        plan = make_plan(manifest, encoder, opts, np.zeros(len(manifest), dtype=bool) if done is None else done)
        return describe_plan(plan, encoder, opts, layers)
    attrs = json_attrs({
        "format_version": layout.FORMAT_VERSION,
        "corpus": opts.corpus or _corpus_name(manifest),
        "manifest": manifest.source, "manifest_sha256": manifest.sha256,
        "encoder": desc, "encoder_layers": encoder.num_layers, "layers": layers, "dim": encoder.dim,
        "sample_rate": encoder.sample_rate, "frame_rate": encoder.frame_rate,
        "padding": encoder.padding, "audio": _audio_attrs(policy, opts),
        "pooling": "mean over valid frames, float32, computed before the frames dtype cast",
        "frames_dtype": opts.frames_dtype if opts.frames else None,
        "block_rows": opts.block_rows, "compress": opts.compress,
        "versions": library_versions("emostore", "torch", "transformers", "zarr", "numpy"),
        "batching": _batching(opts),
    })
    try:
        writer = StoreWriter.create_or_resume(
            out, ids=manifest.ids, attrs=attrs, fingerprint=fingerprint, num_layers=len(layers),
            dim=encoder.dim, frames_dtype=opts.frames_dtype if opts.frames else None, block_rows=opts.block_rows,
            compress=opts.compress,
        )
        try:
            skipped = int(writer.done.sum())
            summary = _extract_rest(manifest, encoder, layers, policy, writer, opts, out, log)
        finally:
            writer.close()
    except OSError as exc:
        err = store_os_error(out, exc)
        if err is exc:
            raise
        raise err from None
    summary.skipped = skipped
    summary.elapsed = time.perf_counter() - t0
    summary.errors = sorted(writer.errors.values(), key=lambda e: e["index"])
    return summary


def _batching(opts: ExtractOptions) -> dict:
    return {"batch_seconds": opts.batch_seconds, "max_batch": opts.max_batch, "device": opts.device}


def _extract_rest(manifest, encoder, layers, policy, writer: StoreWriter, opts: ExtractOptions, out,
                  log=print) -> Summary:
    """Extract the rows not done yet, here or on a cluster; a finished store (opened read-only) has
    nothing to do."""
    if not writer.writable:
        return Summary(extracted=0, failed=0, skipped=0, audio_seconds=0.0, elapsed=0.0, encoder_seconds=0.0,
                       errors=[])
    plan = make_plan(manifest, encoder, opts, writer.done)
    plan.layout.check_done(writer.done, writer.offsets, writer.num_frames, str(out))
    writer.reserve_frames(plan.layout.total)
    writer.set_attrs(batching=_batching(opts))
    if opts.distributed:
        from emostore.extract.cluster import run_on_cluster

        return run_on_cluster(manifest, encoder, layers, policy, writer, plan, opts, out, log)
    return _run(manifest, encoder, layers, policy, writer, plan, opts)


def _run(manifest, encoder, layers, policy, writer, plan, opts) -> Summary:
    layer_idx = torch.tensor(layers, device=encoder.device)
    frames_dtype = {"float16": torch.float16, "float32": torch.float32}[opts.frames_dtype]
    sink = _Writer(writer)
    sink.start()
    pool = ThreadPoolExecutor(max(1, opts.workers), thread_name_prefix="emostore-decode")
    all_batches = [(bi, b) for bi, (_, batches) in enumerate(plan.blocks) for b in batches]
    futures: dict[int, Future] = {}
    ahead = max(2, opts.workers * 2)

    def submit(k: int):
        if k < len(all_batches) and k not in futures:
            futures[k] = pool.submit(_decode_batch, manifest, all_batches[k][1].rows, policy)

    for k in range(ahead):
        submit(k)
    extracted = failed_total = 0
    enc_time = 0.0
    bar = as_factory(opts.progress)(round(plan.audio_seconds, 1), "extract", "audio-s", unit_scale=True)
    k = 0
    started = time.perf_counter()
    try:
        for block_rows, batches in plan.blocks:
            rows = np.asarray(block_rows)
            pos = {r: i for i, r in enumerate(block_rows)}
            pooled = np.full((len(rows), len(layers), encoder.dim), np.nan, dtype=np.float32)
            nframes = np.zeros(len(rows), dtype=np.int64)
            offsets = np.zeros(len(rows), dtype=np.int64)
            failed = {r: plan.probe_errors[r] for r in block_rows if r in plan.probe_errors}
            region = block_region(writer.frames, plan.layout, block_rows[0], writer.done)
            for _ in batches:
                waves, bad = futures.pop(k).result()
                submit(k + ahead)
                k += 1
                failed.update(bad)
                t = time.perf_counter()
                results = encode_batch(manifest, encoder, waves, layer_idx, frames_dtype, plan.layout, failed)
                enc_time += time.perf_counter() - t

                def write(results=results, pos=pos, pooled=pooled, nframes=nframes, offsets=offsets, region=region):
                    for r, pooled_row, frames in results:
                        i = pos[r]
                        pooled[i] = pooled_row
                        nframes[i] = frames.shape[0]
                        offsets[i] = plan.layout.offsets[r]
                        region.put(frames, offsets[i])

                sink.submit(write)
                secs = sum(len(w) for w in waves.values()) / encoder.sample_rate
                extracted += len(results)
                rate = extracted / max(time.perf_counter() - started, 1e-9)
                bar.update(round(secs, 1), postfix=f"{rate:.1f} utt/s")
            failed_total += len(failed)

            def commit(rows=rows, pooled=pooled, nframes=nframes, offsets=offsets, failed=failed, region=region):
                region.finish()
                writer.commit_block(rows, pooled, nframes, offsets, failed)

            sink.submit(commit)
        sink.close()
    except BaseException:
        # Ctrl-C or an error mid-run: blocks already queued are whole, so finish committing
        # them before giving up (nothing finished is lost, nothing is written afterwards).
        if sink.is_alive():
            sink.q.put(None)
            sink.join()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
    return Summary(extracted=extracted, failed=failed_total, skipped=0, audio_seconds=plan.audio_seconds,
                   elapsed=0.0, encoder_seconds=enc_time, errors=[])


def summary_line(s: Summary) -> str:
    return json.dumps({k: v for k, v in asdict(s).items() if k != "errors"})


def summary_text(out: str, s: Summary) -> str:
    """The one line ``emostore extract`` ends with."""
    if not s.extracted and not s.failed:
        return f"{out}: finished, nothing to do ({s.skipped} rows done, {len(s.errors)} failed earlier)"
    return (f"{out}: {s.extracted} extracted, {s.skipped} already done, {s.failed} failed; "
            f"{s.audio_seconds:.1f} s of audio in {s.elapsed:.1f} s")
