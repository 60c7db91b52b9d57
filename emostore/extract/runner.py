"""The extraction runner: manifest + encoder -> one feature store, once, resumably.

Planning (options, probing, batches) is :mod:`emostore.extract.planning`, the block-encoding loop
:mod:`emostore.extract.blocks` (shared with the cluster path, :mod:`emostore.extract.cluster`).
Rows are processed in blocks of ``block_rows`` in manifest order; inside a block, clips are sorted
by cost and packed into batches by total audio seconds. A block is committed when it ends and,
before that, every ``commit_seconds`` and on Ctrl-C/SIGTERM (its rows finished so far), so an
interrupt or a crash loses at most that much work. Audio decoding runs ahead in a thread pool and
store writes run behind in a writer thread, so the encoder's forward pass is the only thing on
the critical path.
"""

from __future__ import annotations

import hashlib
import queue
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from emostore.extract import audio
from emostore.extract.blocks import BlockFill, block_works, encode_blocks
from emostore.extract.encoders import Encoder, load_encoder
from emostore.extract.planning import ExtractError, ExtractOptions, describe_plan, make_plan, select_layers
from emostore.manifests import Manifest
from emostore.progress import as_factory
from emostore.provenance import library_versions
from emostore.store import layout
from emostore.store.failures import storage_error
from emostore.store.writer import StoreWriter, existing_done, json_attrs, stored_fingerprint


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


class ExtractInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped extraction after every finished row was committed; the message
    says how far the store got (the command prints it as its last line)."""


class _Signal(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


@contextmanager
def _interrupt_signals():
    """SIGTERM ends extraction the way Ctrl-C does (finished rows are committed first); outside the
    main thread signals cannot be handled, so nothing changes there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Signal(signal.Signals(signum).name)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _interrupted(out, exc: KeyboardInterrupt, writer: StoreWriter, extracted_before: int) -> ExtractInterrupted:
    how = str(exc) if isinstance(exc, _Signal) else "SIGINT"
    done, n = int(writer.done.sum()), len(writer.done)
    return ExtractInterrupted(
        f"{out}: interrupted ({how}); {done} of {n} rows are done ({done - extracted_before} this run), "
        f"{len(writer.errors)} failed; re-run the same command to resume", how)


def extract(manifest: Manifest, out: str, opts: ExtractOptions, dry_run: bool = False) -> Summary | str:
    """Run (or, with ``dry_run``, describe what remains of) extraction of ``manifest`` into ``out``.

    A storage failure the user fixes (full disk, read-only volume, a bucket that is missing,
    refuses or cannot be reached) is one line (a StoreError); every finished row is kept."""
    try:
        return _extract(manifest, out, opts, dry_run)
    except Exception as exc:
        err = storage_error(out, exc)
        if err is None:
            raise
        raise err from None


def _extract(manifest: Manifest, out: str, opts: ExtractOptions, dry_run: bool) -> Summary | str:
    t0 = time.perf_counter()
    # on a cluster the workers encode; the coordinator's copy only plans (kept off the GPUs)
    encoder = load_encoder(opts.encoder, "cpu" if opts.distributed else opts.device)
    layers = select_layers(encoder, opts.layers)
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
    writer = StoreWriter.create_or_resume(
        out, ids=manifest.ids, attrs=attrs, fingerprint=fingerprint, num_layers=len(layers),
        dim=encoder.dim, frames_dtype=opts.frames_dtype if opts.frames else None, block_rows=opts.block_rows,
        compress=opts.compress,
    )
    try:
        skipped = int(writer.done.sum())
        with _interrupt_signals():
            try:
                summary = _extract_rest(manifest, encoder, layers, policy, writer, opts, out)
            except KeyboardInterrupt as exc:
                if isinstance(exc, ExtractInterrupted):
                    raise
                raise _interrupted(out, exc, writer, skipped) from exc
    finally:
        writer.close()
    summary.skipped = skipped
    summary.elapsed = time.perf_counter() - t0
    summary.errors = sorted(writer.errors.values(), key=lambda e: e["index"])
    if summary.errors and not writer.done.any() and len(summary.errors) == len(manifest) and not opts.allow_all_failed:
        raise ExtractError(f"{out}: every clip failed to extract, e.g. {summary.errors[0]['reason']} (all "
                           f"{len(manifest)} rows are recorded in the store's errors; --allow-all-failed accepts this)")
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


def _run(manifest, encoder, layers, policy, writer: StoreWriter, plan, opts: ExtractOptions) -> Summary:
    """Encode every unfinished block here; a writer thread writes behind. Rows are committed at
    each block's end and, within a block, at least every ``opts.commit_seconds``; on an interrupt
    or an error every row already encoded is committed before the exception goes on."""
    sink = _Writer(writer)
    sink.start()
    frames_dtype = opts.frames_dtype if opts.frames else None
    batches = encode_blocks(block_works(manifest, plan, writer.done), encoder, layers, frames_dtype, policy,
                            opts.workers)
    extracted = failed = 0
    enc_time = 0.0
    bar = as_factory(opts.progress)(round(plan.audio_seconds, 1), "extract", "audio-s", unit_scale=True)
    fill: BlockFill | None = None
    started = last_commit = time.monotonic()
    try:
        for batch in batches:
            if fill is None:
                fill = BlockFill(batch.work, writer.frames, len(layers), encoder.dim)
            sink.submit(partial(fill.add, batch))
            extracted += len(batch.results)
            failed += len(batch.failed)
            enc_time += batch.encode_seconds
            if batch.last or time.monotonic() - last_commit >= opts.commit_seconds:
                sink.submit(partial(_commit, writer, fill, final=batch.last))
                last_commit = time.monotonic()
                if batch.last:
                    fill = None
            bar.update(round(batch.audio_seconds, 1),
                       postfix=f"{extracted / max(time.monotonic() - started, 1e-9):.1f} utt/s")
        sink.close()
    except BaseException:
        # Ctrl-C, SIGTERM or an error: what is queued is whole rows; commit them all, then give up
        # (nothing finished is lost, nothing is written afterwards)
        batches.close()
        if sink.is_alive():
            if fill is not None:
                sink.q.put(partial(_commit, writer, fill, final=False))
            sink.q.put(None)
            sink.join()
        raise
    finally:
        bar.close()
    return Summary(extracted=extracted, failed=failed, skipped=0, audio_seconds=plan.audio_seconds,
                   elapsed=0.0, encoder_seconds=enc_time, errors=[])


def _commit(writer: StoreWriter, fill: BlockFill, final: bool) -> None:
    """Commit the rows of ``fill`` settled since its last commit (the writer thread's job)."""
    c, _ = fill.take(final)
    if c.rows.size or final:
        writer.commit_block(c.rows, c.pooled, c.num_frames, c.offsets, c.failed)


def summary_text(out: str, s: Summary) -> str:
    """The one line ``emostore extract`` ends with."""
    if not s.extracted and not s.failed:
        return f"{out}: finished, nothing to do ({s.skipped} rows done, {len(s.errors)} failed earlier)"
    return (f"{out}: {s.extracted} extracted, {s.skipped} already done, {s.failed} failed; "
            f"{s.audio_seconds:.1f} s of audio in {s.elapsed:.1f} s")
