"""Sweep specifications: a TOML/YAML file and/or CLI values expanded into a list of runs.

A specification is a mapping of settings: ``store``, ``labels``, ``partition`` (inputs) and every
:class:`~emostore.heads.config.TrainConfig` field (``head``, ``layer``, ``lr``, ``hidden``, ``beta``,
``fold``, ``seed``, ``epochs``, ``preset``...). A **list value is a grid axis**: the runs are the
Cartesian product of all axes. ``[[runs]]`` (TOML) / ``runs:`` (YAML) entries are sub-specifications,
each merged over the top-level settings and expanded the same way (a list form, or several grids
in one file)::

    store = "emodb.zarr"
    labels = ["labels/mr.jsonl", "labels/pr.jsonl", "labels/ar.jsonl"]
    partition = "partition.json"
    fold = ["fold1", "fold2"]
    epochs = 20

    [[runs]]
    head = "probe"
    layer = "all"          # every stored layer of the store: a probe curve (emobox, ar-mlp, probe)
    lr = [1e-3, 1e-4]

    [[runs]]
    head = ["weighted-sum", "ar-mlp"]

Stores may be named in a lab instead of by path (``lab``, ``encoder`` and ``corpus``), and
``cross = "A->B"`` makes a cross-corpus run (train on A, test on B's balanced set): see
:mod:`emostore.lab.inputs`.

``fold = "all"`` is every fold of the partition. Settings that do not apply to a head are dropped
rather than multiplying runs (``layer`` for weighted-sum, ``hidden`` for probe), and duplicate runs
are merged. Each run gets a stable id: readable parts (head, layer, lr, hidden, fold, seed, the
store's encoder and the label set's name) plus, last, a hash of its inputs' contents and its full
training config, so re-running a sweep finds the runs already done, e.g.
``probe-L0-lr0.001-fold1-s0-whisper-tiny.en-mr-3f2a9c01de``.

Keys are checked where the file is read: an unknown key is named with the accepted ones
(``ACCEPTED``), and a file missing what every run needs says what (``REQUIRED``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from emostore.lab.inputs import NAMES as LAB_NAMES, PATH_SETTINGS, named_inputs
from emostore.errors import EmostoreError
from emostore.heads.config import TrainConfig, TrainError, config_from
from emostore.heads.names import LAYERED, HeadError
from emostore.provenance import file_sha256
from emostore.store import urls

INPUTS = ("store", "labels", "partition")
ACCEPTED = INPUTS + tuple(TrainConfig.__dataclass_fields__) + LAB_NAMES  # what a sweep file may hold (and `runs`)
REQUIRED = INPUTS + ("head", "fold")  # every run needs these (a preset may name the head)


class SweepError(EmostoreError, ValueError):
    """A sweep specification is wrong (unknown setting, missing input, unreadable file)."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its inputs, its training config and its id."""

    store: str
    labels: str
    partition: str
    config: TrainConfig

    @property
    def run_id(self) -> str:
        """Readable settings (head, layer, lr, hidden, fold, seed, encoder, label set), then a hash of
        inputs and config."""
        c = self.config
        parts = ([c.head] + ([f"L{c.layer}"] if c.layer is not None else []) + [f"lr{c.lr:g}"]
                 + ([f"h{c.hidden}"] if c.hidden is not None else []) + [c.fold, f"s{c.seed}"]
                 + [p for p in (encoder_name(self.store), label_set_name(self.labels)) if p])
        key = json.dumps({"inputs": [[p, input_digest(p)] for p in (self.store, self.labels, self.partition)],
                          "config": _identity(c)}, sort_keys=True)
        return "-".join(str(p) for p in parts) + "-" + hashlib.sha256(key.encode()).hexdigest()[:10]

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "store": self.store, "labels": self.labels, "partition": self.partition,
                "config": asdict(self.config)}


@functools.lru_cache(maxsize=None)
def input_digest(path: str) -> str:
    """What an input's content is: a file's SHA-256, a store's extraction fingerprint (hashed).

    In the run id, so an input regenerated at the same path makes new runs instead of being
    skipped as done.
    """
    if not urls.is_url(path) and Path(path).is_file():
        return file_sha256(path)
    attrs = store_attrs(path)
    key = json.dumps([attrs.get("fingerprint"), attrs.get("manifest_sha256")], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def store_attrs(path: str) -> dict:
    """A store's attributes, from its ``zarr.json`` alone (no array is opened)."""
    meta = urls.join(path, "zarr.json")
    if not urls.is_file(meta):
        raise SweepError(f"{path}: neither a file nor a Zarr store")
    fs, inside = urls.filesystem(meta)
    return json.loads(fs.cat_file(inside).decode("utf-8")).get("attributes", {})


def _id_part(text) -> str | None:
    """``text`` as a run id part: no path separators or spaces."""
    return "".join(ch if ch.isalnum() or ch in "._+-" else "_" for ch in str(text)) if text else None


def encoder_name(store: str) -> str | None:
    """The store's encoder name (``whisper-tiny.en``, ``fbank``), as in the run id."""
    encoder = store_attrs(store).get("encoder")
    return _id_part(encoder.get("name") if isinstance(encoder, dict) else None)


def label_set_name(labels: str) -> str | None:
    """A label set's name in the run id: its file's stem (``labels/mr.jsonl`` -> ``mr``)."""
    name = Path(str(labels)).name
    return _id_part(name[:-len(".jsonl")] if name.endswith(".jsonl") else Path(name).stem)


def _identity(cfg: TrainConfig) -> dict:
    """The config fields that change a run's result (the device does not)."""
    d = asdict(cfg)
    d.pop("device")
    return d


def read_spec(path: str | Path) -> dict:
    """A specification file (.toml, .yaml/.yml or .json) as a mapping."""
    path = Path(path)
    if not path.exists():
        raise SweepError(f"{path}: no such sweep file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            spec = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        elif path.suffix == ".json":
            spec = json.loads(text)
        else:
            raise SweepError(f"{path}: a sweep file is .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SweepError(f"{path}: not valid {path.suffix[1:].upper()} ({exc})") from None
    except ImportError:
        raise SweepError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use TOML") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml up front
        if type(exc).__module__.startswith("yaml"):
            raise SweepError(f"{path}: not valid YAML ({exc})") from None
        raise
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: a sweep file holds a mapping of settings")
    check_keys(spec, str(path))
    _resolve_inputs(spec, path.parent)
    return spec


def check_keys(spec: dict, where: str = "the sweep") -> None:
    """Refuse unknown keys, naming them, the accepted ones and what the spec lacks of ``REQUIRED``."""
    subs = spec.get("runs") or []
    tables = [("", spec)] + [(f" ([[runs]] table {i})", sub) for i, sub in enumerate(subs, 1)
                             if isinstance(sub, dict)]
    unknown = [f"'{k}'{table}" for table, sub in tables for k in sub
               if k not in ACCEPTED and not (k == "runs" and not table)]
    if not unknown:
        return
    given = {k for _, sub in tables for k in sub}
    missing = [k for k in REQUIRED if k not in given and not (k == "head" and "preset" in given)]
    msg = (f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {where}; accepted: "
           f"{', '.join(ACCEPTED)}, runs")
    if missing:
        msg += f"; required and not given: {', '.join(missing)} (in the file or as options)"
    raise SweepError(msg)


def _resolve_inputs(spec: dict, base: Path) -> None:
    """Input paths in a file are relative to that file."""
    for sub in [spec] + list(spec.get("runs") or []):
        for key in INPUTS + PATH_SETTINGS:
            if key in sub:
                vals = sub[key] if isinstance(sub[key], list) else [sub[key]]
                resolved = [str(base / v) if not Path(str(v)).is_absolute() else str(v) for v in vals]
                sub[key] = resolved if isinstance(sub[key], list) else resolved[0]


def expand(spec: dict, stored_layers=None, overrides: dict | None = None) -> list[RunSpec]:
    """All runs of ``spec`` (see the module docstring), in a stable order, duplicates merged.

    ``overrides`` (command-line values) replace the file's values everywhere, ``[[runs]]`` tables
    included. ``stored_layers(store) -> list[int]`` answers ``layer = "all"`` and resolves the
    default layer (default: read the store).
    """
    spec = dict(spec)
    subs = spec.get("runs") or [{}]
    if not isinstance(subs, list) or not all(isinstance(s, dict) for s in subs):
        raise SweepError("`runs` must be a list of tables of settings")
    check_keys(spec)
    check_keys(overrides or {}, "the options")
    spec.pop("runs", None)
    stored_layers = stored_layers or _stored_layers
    out: dict[str, RunSpec] = {}
    for sub in subs:
        merged = {**spec, **sub, **(overrides or {})}
        axes = {k: (v if isinstance(v, list) else [v]) for k, v in merged.items()}
        for k, v in axes.items():
            if not v:
                raise SweepError(f"setting {k!r} is an empty list")
        keys = list(axes)
        for values in itertools.product(*(axes[k] for k in keys)):
            run = _make_run(dict(zip(keys, values)), stored_layers)
            for r in run:
                out.setdefault(r.run_id, r)
    return list(out.values())


def _make_run(settings: dict, stored_layers) -> list[RunSpec]:
    settings = named_inputs(settings)  # stores named in a lab, cross-corpus pairs (emostore.lab.inputs)
    missing = [k for k in INPUTS if not settings.get(k)]
    if missing:
        raise SweepError(f"the sweep needs {', '.join(missing)} (in the file or as options)")
    # absolute paths, as workers may run elsewhere; a store may also be an fsspec URL (s3://...)
    inputs = {k: str(settings.pop(k)) for k in INPUTS}
    inputs = {k: v if urls.is_url(v) else str(Path(v).resolve()) for k, v in inputs.items()}
    for k, v in inputs.items():
        if not urls.exists(v):
            raise SweepError(f"{k} {v}: no such file or store")
    if settings.get("head") is None and settings.get("preset") is None:
        raise SweepError("every run needs a head (or a preset naming one)")
    try:
        base = config_from(**dict(settings, layer=None))  # the settings' types and ranges, once
    except (TrainError, HeadError) as exc:
        raise SweepError(str(exc)) from None
    layers = [settings.get("layer")]
    if base.head in LAYERED:
        stored = list(stored_layers(inputs["store"]))
        if layers == ["all"]:
            layers = stored
        elif layers[0] is None or layers[0] == -1:  # the default, named: the same run as asking for it
            layers = [stored[-1]]
        elif layers[0] not in stored:
            raise SweepError(f"layer {layers[0]!r} is not in the store {inputs['store']} (stored: {stored})")
    else:
        layers = [None]  # weighted-sum reads every layer
    folds = _partition_folds(inputs["partition"]) if base.fold == "all" else [base.fold]
    runs = []
    for fold in folds:
        for layer in layers:
            cfg = replace(base, layer=layer, fold=fold)
            if cfg.head == "probe":
                cfg = replace(cfg, hidden=None)
            runs.append(RunSpec(**inputs, config=cfg))
    return runs


def _partition_folds(partition: str) -> list[str]:
    """``fold = "all"``: every fold of the partition file, in its order."""
    from emostore.manifests.partitions import read_partition

    return list(read_partition(partition).folds)


@functools.lru_cache(maxsize=None)  # one store opening per store, not per grid point (grouped: issue 17)
def _stored_layers(store: str) -> list[int]:
    from emostore.store.reader import open as open_store

    return list(open_store(store).layers)
