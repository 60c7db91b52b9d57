"""A plan: corpora x encoders, extracted into a lab, every pair resumable.

A plan file (YAML or JSON)::

    lab: lab/                    # optional: where the stores go (--lab overrides); a folder or fsspec URL
    corpora:
      emodb:   {adapter: emodb, root: ../shared/data/emodb}    # a corpus adapter over its native layout
      mine:    {manifest: mine.jsonl}                          # or a manifest (relative paths: from the plan)
    encoders:
      fbank:   fbank                                           # NAME: encoder spec (``--encoder``)
      whisper: {encoder: ct2-whisper, frames: true, layers: [0, 4]}   # or ExtractOptions fields

Extraction (:func:`extract_plan`) writes each corpus's manifest to ``LAB/<corpus>/manifest.jsonl``
(audio paths absolute; rewritten only when its rows change, so the stores' fingerprints hold), then
every pair into ``LAB/<corpus>/<encoder>.zarr`` through :func:`emostore.extract.runner.extract`: a
finished store is a no-op, an interrupted one resumes where it stopped, a store made from other
inputs is refused. A pair that fails is reported and the plan goes on.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

from emostore.lab.layout import LabError, check_name, manifest_path, store_path
from emostore.store import urls

_PLAN_ONLY = {"encoder"}


@dataclass(frozen=True)
class CorpusSource:
    name: str
    adapter: str | None = None
    root: str | None = None
    manifest: str | None = None
    options: dict = field(default_factory=dict)  # adapter options (e.g. ravdess channel)


@dataclass(frozen=True)
class EncoderChoice:
    name: str
    options: dict  # ExtractOptions fields, ``encoder`` included


@dataclass(frozen=True)
class Plan:
    corpora: list[CorpusSource]
    encoders: list[EncoderChoice]
    lab: str | None = None
    source: str = ""

    def pairs(self) -> list[tuple[CorpusSource, EncoderChoice]]:
        return [(c, e) for c in self.corpora for e in self.encoders]


@dataclass
class PairSummary:
    corpus: str
    encoder: str
    store: str
    rows: int = 0
    extracted: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.corpus}/{self.encoder}: FAILED ({self.error})"
        return (f"{self.corpus}/{self.encoder}: {self.rows} rows ({self.extracted} extracted now, {self.skipped} already "
                f"done), {self.failed} failed, {self.bytes / 1e6:.1f} MB, {self.seconds:.1f} s -> {self.store}")


def _extract_fields() -> set[str]:
    from emostore.extract.planning import ExtractOptions

    return {f.name for f in fields(ExtractOptions)} - {"progress", "scheduler", "processes", "corpus"}


def read_plan(path: str | Path) -> Plan:
    """Parse and check a plan file (module docstring); relative roots and manifests are from its folder."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"{path}: no such plan file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            obj = yaml.safe_load(text)
        else:
            obj = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError / JSONDecodeError: one line naming the file
        raise LabError(f"{path}: not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'} ({exc})") from None
    if not isinstance(obj, dict) or set(obj) - {"lab", "corpora", "encoders"}:
        raise LabError(f"{path}: a plan is a mapping with corpora, encoders and optionally lab")
    base = path.parent

    def rel(p):
        return p if urls.is_url(p) or Path(p).is_absolute() else str((base / p).resolve())

    corpora = []
    for name, spec in (obj.get("corpora") or {}).items():
        check_name("corpus", name)
        if not isinstance(spec, dict) or ("manifest" in spec) == ("adapter" in spec or "root" in spec):
            raise LabError(f"{path}: corpus {name!r} needs either adapter and root, or manifest")
        if "manifest" in spec:
            corpora.append(CorpusSource(name, manifest=rel(str(spec["manifest"]))))
            continue
        if not spec.get("adapter") or not spec.get("root"):
            raise LabError(f"{path}: corpus {name!r} needs both adapter and root")
        from emostore.manifests.adapters.base import get_adapter

        get_adapter(spec["adapter"])  # an unknown adapter: one line naming the known ones
        corpora.append(CorpusSource(name, adapter=spec["adapter"], root=rel(str(spec["root"])),
                                    options=dict(spec.get("options") or {})))
    known = _extract_fields()
    encoders = []
    for name, spec in (obj.get("encoders") or {}).items():
        check_name("encoder", name)
        opts = {"encoder": spec} if isinstance(spec, str) else dict(spec or {})
        unknown = sorted(set(opts) - known)
        if unknown or not opts.get("encoder"):
            raise LabError(f"{path}: encoder {name!r}: " + (f"unknown settings {', '.join(unknown)} (known: "
                           f"{', '.join(sorted(known))})" if unknown else "needs `encoder` (e.g. fbank, ct2-whisper)"))
        encoders.append(EncoderChoice(name, opts))
    if not corpora or not encoders:
        raise LabError(f"{path}: a plan needs at least one corpus and one encoder")
    return Plan(corpora, encoders, obj.get("lab"), str(path))


def _write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (local or URL) unless it already holds exactly that."""
    fs, inside = urls.filesystem(path)
    if fs.exists(inside) and fs.cat_file(inside).decode("utf-8") == text:
        return
    fs.makedirs(inside.rsplit("/", 1)[0], exist_ok=True)
    if urls.is_url(path):
        fs.pipe_file(inside, text.encode("utf-8"))
        return
    tmp = Path(inside).with_name(Path(inside).name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(inside)


def stage_manifest(lab: str, corpus: CorpusSource) -> str:
    """``LAB/<corpus>/manifest.jsonl`` from the corpus's adapter or manifest, audio paths absolute."""
    from emostore.manifests.manifest import load_manifest

    if corpus.manifest:
        rows = load_manifest(corpus.manifest).rows  # audio resolved against the manifest's folder
    else:
        from emostore.manifests.adapters.base import AdapterError, get_adapter

        root = Path(corpus.root)
        if not root.exists():
            raise AdapterError(f"{root}: no such corpus folder (corpus {corpus.name!r} of the plan)")
        rows = []
        for u in get_adapter(corpus.adapter).build(root, **corpus.options):
            u.extra.setdefault("corpus", corpus.adapter)
            rows.append(u.to_json())
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = manifest_path(lab, corpus.name)
    _write_text(out, text)
    return out


def extract_plan(plan: Plan, lab: str | None = None, processes: int = 0, scheduler: str | None = None,
                 progress=None, log=None) -> list[PairSummary]:
    """Extract every pair of ``plan`` into ``lab`` (module docstring); one summary per pair, in plan order."""
    from emostore.extract.runner import ExtractOptions, extract
    from emostore.manifests.manifest import load_manifest
    from emostore.progress import as_factory

    lab = lab or plan.lab
    if not lab:
        raise LabError("no lab: give --lab LAB or `lab:` in the plan")
    if not urls.is_url(lab):
        lab = str(Path(lab).resolve())
    if processes and not scheduler:  # one local cluster for the whole plan, not one per pair
        with _local_cluster(processes) as address:
            return extract_plan(plan, lab, 0, address, progress, log)
    say = log or (lambda m: None)
    pairs = plan.pairs()
    overall = as_factory(progress)(len(pairs), "plan", "pair")
    out: list[PairSummary] = []
    manifests: dict[str, str] = {}
    try:
        for n, (corpus, enc) in enumerate(pairs, 1):
            s = PairSummary(corpus.name, enc.name, store_path(lab, corpus.name, enc.name))
            t0 = time.perf_counter()
            say(f"[{n}/{len(pairs)}] {corpus.name} x {enc.name} -> {s.store}")
            try:
                if corpus.name not in manifests:
                    manifests[corpus.name] = stage_manifest(lab, corpus)
                m = load_manifest(_local_copy(manifests[corpus.name]))
                opts = ExtractOptions(**enc.options, corpus=corpus.name, processes=processes, scheduler=scheduler,
                                      progress=progress)
                r = extract(m, s.store, opts)
                s.rows, s.extracted, s.skipped, s.failed = len(m), r.extracted, r.skipped, len(r.errors)
                s.bytes = urls.nbytes(s.store)
            except Exception as exc:  # noqa: BLE001 - recorded per pair; the plan goes on
                from emostore.errors import EmostoreError

                if not isinstance(exc, (EmostoreError, OSError)):
                    raise
                s.error = str(exc).splitlines()[0]
            s.seconds = time.perf_counter() - t0
            out.append(s)
            say(s.line())
            overall.update(1, postfix=f"{sum(1 for x in out if x.error)} failed")
    finally:
        overall.close()
    return out


@contextmanager
def _local_cluster(processes: int):
    """The address of a Dask LocalCluster of ``processes`` single-threaded worker processes."""
    try:
        from distributed import LocalCluster
    except ImportError:
        raise LabError("--processes needs Dask distributed: pip install 'emostore[cluster]'") from None
    with LocalCluster(n_workers=processes, threads_per_worker=1, processes=True, dashboard_address=":0") as lc:
        yield lc.scheduler_address


def _local_copy(path: str) -> str:
    """A manifest to read: the path itself, or for a URL lab a local temporary copy."""
    if not urls.is_url(path):
        return path
    import tempfile

    fs, inside = urls.filesystem(path)
    tmp = Path(tempfile.mkdtemp(prefix="emostore-lab-")) / "manifest.jsonl"
    tmp.write_bytes(fs.cat_file(inside))
    return str(tmp)
