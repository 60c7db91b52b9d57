"""The whole idea in one call: manifest → partition → labels → extraction → sweep → report → table.

Every step writes into one folder and is skipped when its output is current, so a second run does
no encoder work and repeats no finished training run:

- manifest, partition and label sets are cheap and deterministic: they are rebuilt and rewritten
  only when their bytes would change (an edited corpus shows up in their hashes);
- extraction resumes each store (a finished one is a no-op, see the store's commit protocol);
- the sweep skips every run whose ``run.json`` exists (run ids hash the inputs' contents);
- the report and the summary table are redrawn from the results table.

``OUT/``: ``lab/<corpus>/manifest.jsonl`` and ``lab/<corpus>/<encoder>.zarr`` (a lab, see
:mod:`emostore.lab`: ``emostore catalog OUT/lab`` lists it, sweeps and cross-corpus runs name its
stores), ``partition.json``, ``labels/<rule>.jsonl``, ``sweep/`` (runs and ``results.sqlite``),
``report/index.html``, ``summary.md``.
"""

from __future__ import annotations

import re
import uuid
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from emostore.errors import EmostoreError
from emostore.evaluate.bootstrap import DEFAULT_BOOT
from emostore.outputs import write_bytes, write_text
from emostore.heads.names import FRAME_HEADS  # heads that read frames: stores keep frames only when one is asked for
from emostore.lab.layout import manifest_path, store_path

DEFAULT_ENCODERS = ("ct2-whisper", "fbank")
DEFAULT_HEADS = ("weighted-sum", "ar-mlp", "probe", "emobox")
SUMMARY_METRICS = ("ua", "wa", "macro_f1_single", "macro_f1")


class RecipeError(EmostoreError, ValueError):
    """The recipe cannot run with these inputs."""


@dataclass
class RecipeOptions:
    """What one recipe run does; every field has the default the first command uses."""

    corpus: str = "emodb"
    root: str | None = None  # the corpus in its native layout; None: the EmoDB subset bundled in the package
    out: str = "emostore-recipe"
    encoders: tuple[str, ...] = DEFAULT_ENCODERS
    rule: str = "emobox"  # partition rule
    label_rules: tuple[str, ...] = ("mr",)
    heads: tuple[str, ...] = DEFAULT_HEADS
    lrs: tuple[float, ...] = ()  # () = each head's default learning rate
    seed: int = 0
    jobs: int = 1
    device: str = "cpu"
    allow_mismatch: bool | None = None  # None: only for the bundled subset (a subset of EmoBox's lists)
    n_boot: int = DEFAULT_BOOT
    protocol: str | None = None  # None: emobox for EmoBox partitions, else emo-superb
    adapter_options: dict = field(default_factory=dict)

    @property
    def bundled(self) -> bool:
        return self.root is None


@dataclass
class StepResult:
    name: str
    status: str  # "done" (work was done) or "current" (nothing to do)
    detail: str
    seconds: float


@dataclass
class RecipeResult:
    out: Path
    steps: list[StepResult]
    summary: object  # pandas DataFrame: encoder × head → metrics with CIs
    report: Path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "encoder"


def _settle(target: Path, write: Callable[[Path], object]) -> bool:
    """Write through ``write(staged)`` beside ``target`` (same folder, so relative audio paths stay
    right); replace ``target`` and its ``.meta.json`` sibling only if their bytes differ, and drop
    the staged files. Returns whether anything changed."""
    from emostore.jsonl import meta_path

    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".staged-{uuid.uuid4().hex[:8]}-{target.name}")
    try:
        write(staged)
        changed = False
        for new, old in ((staged, target), (meta_path(staged), meta_path(target))):
            if not new.exists():
                continue
            text = new.read_bytes().replace(staged.name.encode(), target.name.encode())
            if not old.exists() or old.read_bytes() != text:
                write_bytes(old, text)
                changed = True
        return changed
    finally:
        for p in (staged, meta_path(staged)):
            p.unlink(missing_ok=True)


class Recipe:
    """One recipe run over ``opts`` (see the module doc); ``log`` receives one line per step."""

    def __init__(self, opts: RecipeOptions, log: Callable[[str], None] = print, progress=None):
        self.opts = opts
        self.log = log
        self.progress = progress  # a factory from emostore.progress; None: quiet
        self.out = Path(opts.out)
        self.steps: list[StepResult] = []
        self.total_steps = 5 + len(opts.encoders)

    # -- plumbing -----------------------------------------------------------------------------------

    def _step(self, name: str, fn) -> object:
        k = len(self.steps) + 1
        self.log(f"[{k}/{self.total_steps}] {name} ...")
        t0 = time.perf_counter()
        status, detail, value = fn()
        step = StepResult(name, status, detail, time.perf_counter() - t0)
        self.steps.append(step)
        self.log(f"[{k}/{self.total_steps}] {name}: {detail} ({step.seconds:.1f} s)")
        return value

    @property
    def lab(self) -> Path:
        """Where the manifest and the stores go: the lab layout, ``OUT/lab/<corpus>/``."""
        return self.out / "lab"

    @property
    def root(self) -> Path:
        if self.opts.root is not None:
            return Path(self.opts.root)
        from emostore.recipe.demo_data import bundled_root

        return bundled_root()

    # -- steps ----------------------------------------------------------------------------------------

    def manifest(self) -> Path:
        from emostore.manifests.build import build_manifest

        path = Path(manifest_path(str(self.lab), self.opts.corpus))

        def run():
            rows = []
            changed = _settle(path, lambda p: rows.extend(build_manifest(self.opts.corpus, self.root, p,
                                                                         **self.opts.adapter_options)))
            where = "the bundled EmoDB subset" if self.opts.bundled else str(self.root)
            return ("done" if changed else "current",
                    f"{len(rows)} utterances of {self.opts.corpus} from {where} -> {path}", path)

        return self._step("manifest", run)

    def partition(self, manifest: Path) -> Path:
        from emostore.manifests import load_manifest
        from emostore.manifests.partitions import make_partition, write_partition

        path = self.out / "partition.json"
        allow = self.opts.allow_mismatch
        if allow is None and self.opts.bundled and self.opts.rule == "emobox":
            allow = True  # the bundled clips are a subset of EmoBox's EmoDB lists: its folds, restricted to them

        def run():
            options = {"allow_mismatch": True} if allow else {}  # a rule without that option refuses it
            p = make_partition(self.opts.corpus, load_manifest(manifest, require_audio=False), self.opts.rule,
                               **options)
            changed = _settle(path, lambda t: write_partition(p, t))
            sizes = ", ".join(f"{s['train']}/{s['dev']}/{s['test']}" for s in p.meta["sizes"].values())
            note = f"; {p.meta['note']}" if p.meta.get("note") else ""
            return ("done" if changed else "current",
                    f"rule {self.opts.rule}: {len(p)} folds, train/dev/test {sizes}{note}", (path, list(p.folds)))

        return self._step("partition", run)

    def labels(self, manifest: Path) -> list[Path]:
        from emostore.labels.aggregate import aggregate_manifest, write_label_set

        def run():
            paths, changed = [], False
            for rule in self.opts.label_rules:
                path = self.out / "labels" / f"{rule}.jsonl"
                records, meta = aggregate_manifest(manifest, rule)
                changed |= _settle(path, lambda t: write_label_set(t, records, meta))
                paths.append(path)
            return ("done" if changed else "current",
                    f"{', '.join(r.upper() for r in self.opts.label_rules)} label sets -> {self.out / 'labels'}", paths)

        return self._step("labels", run)

    def extract(self, manifest: Path, encoder: str) -> Path:
        from emostore.extract.planning import ExtractOptions
        from emostore.extract.runner import extract, summary_text
        from emostore.manifests import load_manifest
        from emostore.store.writer import stored_fingerprint

        path = Path(store_path(str(self.lab), self.opts.corpus, _slug(encoder)))
        frames = any(h in FRAME_HEADS for h in self.opts.heads)
        stored = stored_fingerprint(path) or {}
        if stored and stored.get("frames_dtype") is not None:
            frames = True  # a store with frames serves pooled heads too: keep it as it is
        elif stored and frames:
            path = path.with_name(f"{_slug(encoder)}-frames.zarr")  # made without frames: a sibling with them

        def run():
            opts = ExtractOptions(encoder=encoder, device=self.opts.device, frames=frames, progress=self.progress)
            rows = load_manifest(manifest)
            summary = extract(rows, str(path), opts)  # every clip failing is an ExtractError: nothing to train on
            status = "done" if summary.extracted or summary.failed else "current"
            return status, summary_text(str(path), summary), path

        return self._step(f"extract {encoder}", run)

    def sweep(self, stores: list[Path], labels: list[Path], partition: Path, folds: list[str]) -> Path:
        from emostore.sweep.config import expand
        from emostore.sweep.runner import run_sweep

        out = self.out / "sweep"
        spec = {"store": [str(s.resolve()) for s in stores], "labels": [str(p.resolve()) for p in labels],
                "partition": str(partition.resolve()), "fold": folds, "seed": self.opts.seed,
                "runs": [{"head": h, **({"layer": "all"} if h == "probe" else {})} for h in self.opts.heads]}
        if self.opts.lrs:
            spec["lr"] = list(self.opts.lrs)
        if self.opts.device != "cpu":
            spec["device"] = self.opts.device

        def run():
            runs = expand(spec)
            summary = run_sweep(runs, out, jobs=self.opts.jobs, progress=self.progress, log=self.log)
            if summary.failed:
                first = next(iter(summary.failures.items()))
                self.log(f"{summary.failed} runs failed, e.g. {first[0]}: {first[1]}")
            status = "done" if summary.done or summary.failed else "current"
            return (status, f"{summary.total} runs: {summary.done} trained, {summary.skipped} already done, "
                            f"{summary.failed} failed -> {summary.results}", out)

        return self._step("sweep", run)

    def report(self, sweep: Path) -> Path:
        from emostore.analysis import write_report

        out = self.out / "report"

        def run():
            files = write_report(sweep, out, n_boot=self.opts.n_boot, seed=self.opts.seed, protocol=self.protocol,
                                 by=["head"], title=f"emostore recipe: {self.opts.corpus}")
            return "done", f"{len(files)} files -> {out / 'index.html'}", out / "index.html"

        return self._step("report", run)

    @property
    def protocol(self) -> str:
        return self.opts.protocol or ("emobox" if self.opts.rule.startswith("emobox") else "emo-superb")

    # -- all of it ------------------------------------------------------------------------------------

    def run(self) -> RecipeResult:
        if not self.opts.encoders:
            raise RecipeError("the recipe needs at least one --encoder")
        if not self.opts.heads:
            raise RecipeError("the recipe needs at least one --head")
        self.out.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        partition, folds = self.partition(manifest)
        labels = self.labels(manifest)
        stores = [self.extract(manifest, e) for e in self.opts.encoders]
        sweep = self.sweep(stores, labels, partition, folds)
        report = self.report(sweep)
        table = summary_table(sweep, n_boot=self.opts.n_boot, seed=self.opts.seed)
        write_text(self.out / "summary.md", format_summary(table) + "\n")
        return RecipeResult(self.out, self.steps, table, report)


def summary_table(sweep, n_boot: int = DEFAULT_BOOT, seed: int = 0):
    """Encoder × head (× label rule): the dev-selected setting's test metrics over folds with 95 % CIs.

    Per (encoder, corpus, rule, head) the setting with the lowest mean dev loss is kept (a probe's
    layer is a setting), then each metric is averaged over folds with its bootstrap CI
    (:func:`emostore.analysis.fold_mean`).
    """
    import pandas as pd

    from emostore.analysis import done_runs, fold_mean, select_best
    from emostore.analysis.runs import head_of

    runs = done_runs(sweep)
    chosen = select_best(runs, ["encoder", "corpus", "rule", "head"])
    rows = []
    for (encoder, corpus, rule, head), cell in chosen.groupby(["encoder", "corpus", "rule", "head"], sort=True):
        row = {"encoder": encoder, "corpus": corpus, "rule": rule, "head": head_of(cell.iloc[0].to_dict()),
               "folds": int(cell["fold"].nunique()), "settings": int(cell["settings_compared"].iloc[0])}
        for metric in SUMMARY_METRICS:
            m = fold_mean(cell, metric, n_boot=n_boot, seed=seed)
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = m["value"], m["ci_low"], m["ci_high"]
        rows.append(row)
    return pd.DataFrame(rows)


def format_summary(table) -> str:
    """The summary as a Markdown table; percentages with their 95 % bootstrap CIs."""
    from emostore.evaluate.protocols import DEFINITIONS

    def cell(row, metric):
        value, lo, hi = (row[metric], row[f"{metric}_low"], row[f"{metric}_high"])
        ci = "" if lo != lo else f" [{100 * lo:.1f}, {100 * hi:.1f}]"  # NaN: no bootstrap
        return f"{100 * value:.1f}{ci}"

    head = "| encoder | labels | head (dev-selected) | folds | UA % | WA % | macro-F1 single % | macro-F1 multi % |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['encoder']} | {str(r['rule']).upper()} | {r['head']} | {r['folds']} | "
                     + " | ".join(cell(r, m) for m in SUMMARY_METRICS) + " |")
    lines.append("")
    lines.append("Mean over folds, [95 % bootstrap CI]. " + "; ".join(
        f"{name}: {DEFINITIONS[m]}" for name, m in (("macro-F1 single", "macro_f1_single"),
                                                     ("macro-F1 multi", "macro_f1"))))
    return "\n".join(lines)


def run_recipe(opts: RecipeOptions, log: Callable[[str], None] = print, progress=None) -> RecipeResult:
    """Run every step of the recipe (module doc); returns the steps, the summary table and the report.

    ``log`` gets one line per step; ``progress`` (a factory, :mod:`emostore.progress`) reports
    extraction and the sweep."""
    return Recipe(opts, log=log, progress=progress).run()


__all__ = ["RecipeError", "RecipeOptions", "RecipeResult", "format_summary", "run_recipe", "summary_table"]
