"""What one extraction run will do: the user's options, the batch plan and its description.

:func:`make_plan` probes every file's header, plans every row's place in ``frames``
(:mod:`emostore.extract.frameplan`) and packs the pending rows of each block into batches by audio
seconds; ``--dry-run`` prints :func:`describe_plan` of it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import numpy as np

from emostore.errors import EmostoreError
from emostore.extract import audio
from emostore.extract.encoders import DEFAULT_ENCODER, Encoder
from emostore.extract.frameplan import FrameLayout, pack_order, plan_layout
from emostore.manifests import Manifest
from emostore.store import layout
from emostore.store.summary import format_bytes
from emostore.store.writer import FRAME_DTYPES


class ExtractError(EmostoreError, ValueError):
    """Options that do not fit the encoder or the manifest (layers, normalisation ids)."""


def _at_least(low: float, *, above: bool = False, help: str = "") -> dict:
    """Field metadata: the option's range (``value >= low``, or ``> low`` when ``above``) and its
    help; :class:`ExtractOptions` checks it and the CLI derives its option from it."""
    return {"min": low, "above": above, "help": help}


def _ranged(default, low: float, *, above: bool = False, help: str = ""):
    return field(default=default, metadata=_at_least(low, above=above, help=help))


@dataclass
class ExtractOptions:
    """Everything a user chooses for one extraction (the CLI's flags); numeric ranges are checked here."""

    encoder: str = DEFAULT_ENCODER
    device: str = "cpu"
    frames: bool = True
    frames_dtype: str = FRAME_DTYPES[0]
    layers: list[int] | None = None
    batch_seconds: float = _ranged(120.0, 0, above=True,
                                   help="Padded audio seconds per batch (Whisper counts 30 s per window).")
    max_batch: int = _ranged(32, 1, help="Most clips per batch.")
    normalise: str = "auto"
    norm_ids: list[str] | None = None
    allow_upsample: bool = False
    min_seconds: float = _ranged(0.05, 0, help="Clips shorter than this (seconds) are errors.")
    block_rows: int = _ranged(layout.BLOCK_ROWS, 1, help="Utterances per block: the unit of planning, of a "
                              "cluster task and of the pooled/mean chunks.")
    commit_seconds: float = _ranged(60.0, 0, help="Commit the rows finished so far at least this often (seconds "
                                    "of work; 0: after every batch), so an interrupt or a crash loses at most "
                                    "that much. Single process; a cluster commits whole blocks.")
    compress: bool = False
    workers: int = _ranged(2, 1, help="Audio decoding threads.")
    allow_all_failed: bool = False
    corpus: str | None = None
    progress: object = None  # a Progress factory (emostore.progress); None: quiet
    # Dask: run blocks on the cluster at `scheduler`, or on a local one of `processes` workers
    scheduler: str | None = None
    processes: int = _ranged(0, 0, help="Start a local Dask cluster of N worker processes (with --device cuda: "
                             "worker k uses GPU k mod count).")

    def __post_init__(self):
        for f in fields(self):
            if "min" in f.metadata:
                problem = range_problem(f, getattr(self, f.name))
                if problem:
                    raise ExtractError(f"ExtractOptions.{f.name}: {problem}")
        if self.frames_dtype not in FRAME_DTYPES:
            raise ExtractError(f"frames dtype must be one of {', '.join(FRAME_DTYPES)}, not {self.frames_dtype!r}")
        if self.normalise not in NORMALISE_CHOICES:
            raise ExtractError(f"normalise must be one of {', '.join(NORMALISE_CHOICES)}, not {self.normalise!r}")

    @property
    def distributed(self) -> bool:
        return bool(self.scheduler) or self.processes > 0


# "auto": what the encoder was trained with (Encoder.default_normalise)
NORMALISE_CHOICES = ("auto", *audio.NORMALISATIONS)


def range_problem(f, value) -> str | None:
    """Why ``value`` is outside the range of the ranged field ``f``, or None."""
    low, above = f.metadata["min"], f.metadata["above"]
    if value > low if above else value >= low:
        return None
    return f"{value} must be {'>' if above else '>='} {low}"


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


def select_layers(encoder: Encoder, layers: list[int] | None) -> list[int]:
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


def probe_all(manifest: Manifest, rows: list[int], target_rate: int, workers: int):
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


def pack_batches(rows: list[int], samples: dict[int, int], encoder: Encoder, opts: ExtractOptions) -> list[Batch]:
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
    every, errors = probe_all(manifest, list(range(n)), encoder.sample_rate, opts.workers)
    samples = {r: every[r] for r in pending if r in every}
    long_enough = max(1, opts.min_seconds * encoder.sample_rate)  # shorter clips fail their audio checks
    for r in [r for r, s in samples.items() if s >= long_enough and encoder.num_frames(s) <= 0]:
        errors[r] = (f"{manifest.rows[r]['audio']}: too short for the {encoder.name} encoder "
                     f"({samples.pop(r) / encoder.sample_rate:.3f} s gives no frames)")
    plan = Plan(num_rows=n, pending=pending, samples=samples,
                probe_errors={r: e for r, e in errors.items() if not done[r]},
                sample_rate=encoder.sample_rate, layout=plan_layout(n, every, encoder, opts.block_rows))
    for start in range(0, n, opts.block_rows):
        block = [r for r in range(start, min(n, start + opts.block_rows)) if not done[r]]
        if block:
            ok = [r for r in block if r in samples]
            plan.blocks.append((block, pack_batches(ok, samples, encoder, opts)))
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
