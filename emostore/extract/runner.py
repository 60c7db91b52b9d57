"""The extraction runner: manifest + encoder -> one feature store, once, resumably.

Planning (options, probing, batches) is :mod:`emostore.extract.planning`; the cluster path is
:mod:`emostore.extract.cluster`. Rows are processed in blocks of ``block_rows`` in manifest order (the unit of commit and resume).
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from emostore.extract import audio
from emostore.extract.encoders import Encoder, load_encoder
from emostore.extract.frameplan import FrameLayout
from emostore.manifests import Manifest
from emostore.progress import as_factory
from emostore.provenance import library_versions
from emostore.store import layout
from emostore.store.regions import RegionWriter
from emostore.store.writer import StoreWriter, existing_done, json_attrs, store_os_error, stored_fingerprint


from emostore.extract.planning import (  # noqa: F401  (the runner's API before the split)
    Batch, ExtractError, ExtractOptions, Plan, _pack, _probe_all, _select_layers, describe_plan, make_plan,
    parse_layers,
)


@dataclass
class Summary:
    extracted: int
    failed: int
    skipped: int
    audio_seconds: float
    elapsed: float
    encoder_seconds: float
    errors: list[dict]


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


def extract(manifest: Manifest, out: str, opts: ExtractOptions, dry_run: bool = False) -> Summary | str:
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
            summary = _extract_rest(manifest, encoder, layers, policy, writer, opts, out)
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


def _extract_rest(manifest, encoder, layers, policy, writer: StoreWriter, opts: ExtractOptions, out) -> Summary:
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

        return run_on_cluster(manifest, encoder, layers, policy, writer, plan, opts, out)
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


def summary_text(out: str, s: Summary) -> str:
    """The one line ``emostore extract`` ends with."""
    if not s.extracted and not s.failed:
        return f"{out}: finished, nothing to do ({s.skipped} rows done, {len(s.errors)} failed earlier)"
    return (f"{out}: {s.extracted} extracted, {s.skipped} already done, {s.failed} failed; "
            f"{s.audio_seconds:.1f} s of audio in {s.elapsed:.1f} s")
