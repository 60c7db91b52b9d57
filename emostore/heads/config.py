"""Training settings: :class:`TrainConfig`, the published presets, and their validation.

A config holds what changes a run's result (plus ``device``), so a sweep can hash it into a run
id; how a run is executed (torch threads, the overlap permission) are arguments of
:func:`emostore.heads.loop.train` / :func:`~emostore.heads.train.run`, not settings.

Every numeric setting's range is declared here, once (:func:`emostore.bounds.bounded`); the CLI
derives its option types from it. This module imports no torch (only :func:`check` does, for the
device), so the CLI can parse training options without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from emostore.bounds import bounded, check_bounds
from emostore.errors import EmostoreError
from emostore.heads.names import HEAD_NAMES, HeadError

FEATURES = ("auto", "pooled", "frames")
SHUFFLES = ("auto", "full", "blocks")  # batch order, see emostore.heads.sources.epoch_order


class TrainError(EmostoreError, ValueError):
    """Training cannot run with these inputs (missing ids, no frames, empty parts...)."""


@dataclass
class TrainConfig:
    head: str
    fold: str
    layer: int | None = None  # encoder layer number (store's `layers`), None = last stored
    hidden: int | None = bounded(None, ge=1, label="hidden size")
    seed: int = bounded(0, ge=0)
    epochs: int = bounded(100, ge=1)  # a cap: early stopping (patience) ends a run at its dev-loss minimum
    lr: float = bounded(1e-3, gt=0)  # probe: 1e-2 (HEAD_DEFAULTS)
    weight_decay: float = bounded(0.01, ge=0)  # AdamW's default
    batch_size: int = bounded(32, ge=1, label="batch size")
    beta: float = bounded(0.99, ge=0, lt=1)  # class-balanced weighting; 0 disables
    smoothing: float = bounded(0.0, ge=0, lt=1)
    warmup_epochs: int = bounded(0, ge=0)  # linear warm-up of the lr over this many epochs
    patience: int | None = bounded(10, ge=0)  # early stopping: epochs without a better dev loss; 0 = run all epochs
    valid_fraction: float = bounded(0.0, ge=0, lt=1)  # share of train held out as dev when the fold has no dev part
    features: str = "auto"  # auto | pooled | frames
    shuffle: str = "auto"  # auto (pooled: full, frames: blocks) | full | blocks
    memory_mb: int = bounded(1024, ge=1)  # frames cache bound
    device: str = "cpu"
    preset: str | None = None  # recorded; apply it with config_from(preset=...)


@dataclass(frozen=True)
class Execution:
    """How runs execute (never part of a run's id): a sweep's local processes, torch threads per run.

    ``threads`` None: :meth:`threads_per_run` decides (one per run; see docs/sweeps.md "Threads").
    """

    jobs: int = bounded(1, ge=1)
    threads: int | None = bounded(None, ge=1)

    def __post_init__(self):
        check_bounds(self, TrainError)

    def threads_per_run(self) -> int:
        """torch intra-op threads of each run: ``threads``, else 1.

        One thread, also for ``jobs = 1``: the heads are tiny (a probe is a [32, D] x [D, C] product),
        so torch's default of one thread per core spends its time synchronising threads; measured in
        docs/sweeps.md ("Threads").
        """
        return self.threads if self.threads is not None else 1

    @staticmethod
    def cores(cap: int = 8) -> int:
        """The cores this process may use (its CPU affinity), at most ``cap``: the recipe's ``jobs``.

        Runs are independent (one thread each, results never depend on ``jobs``), so one process per
        core is the fastest local sweep; the cap bounds the worker start-up and memory of big machines.
        """
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(cap, usable))


# Per-head defaults where a head differs from TrainConfig's: measured on real EmoDB (535 clips, EmoBox
# speaker folds, Whisper tiny.en and FBANK stores; docs/sweeps.md "Defaults"), the lr at which each head
# reaches its dev-loss minimum well inside 100 epochs. A linear probe on one raw layer still improved at
# epoch 96-99 of 100 with lr 1e-3; with 1e-2 it stops at epochs 18-50.
HEAD_DEFAULTS: dict[str, dict] = {
    "probe": {"lr": 1e-2},
}

# Published recipes as TrainConfig defaults; explicit settings override them.
PRESETS: dict[str, dict] = {
    # EmoBox (Ma et al. 2024): 20% of train as validation, 100 epochs with 10 warm-up epochs, its head,
    # no early stopping.
    "emobox": {"head": "emobox", "epochs": 100, "warmup_epochs": 10, "valid_fraction": 0.2, "patience": 0},
}


def config_from(preset: str | None = None, **settings) -> TrainConfig:
    """A TrainConfig: the head's defaults, then a preset's values, then ``settings`` (None values are not settings)."""
    values: dict = {}
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise TrainError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    values.update({k: v for k, v in settings.items() if v is not None})
    head = values.get("head")
    values = {**(HEAD_DEFAULTS.get(head, {}) if isinstance(head, str) else {}), **values}
    unknown = sorted(set(values) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise TrainError(f"unknown training setting(s): {', '.join(unknown)}")
    missing = [k for k in ("head", "fold") if k not in values]
    if missing:
        raise TrainError(f"a training config needs {' and '.join(missing)}")
    cfg = TrainConfig(preset=preset, **{k: _coerce(k, v) for k, v in values.items()})
    check_settings(cfg)
    return cfg


def _coerce(name: str, value):
    """``value`` as the type of TrainConfig field ``name`` (YAML reads 1e-3 as a string, TOML 20.0 as
    a float); anything else is an error naming the setting."""
    kind = str(TrainConfig.__dataclass_fields__[name].type)
    if value is None and "None" in kind:
        return None
    try:
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        raise TrainError(f"setting {name}: expected {kind.split(' ')[0]}, got {value!r}") from None
    if not isinstance(value, str):
        raise TrainError(f"setting {name}: expected a string, got {value!r}")
    return value


def check(cfg: TrainConfig) -> None:
    """Every setting, and that the device exists here (the CPU always does: no torch import for it)."""
    check_settings(cfg)
    if str(cfg.device) == "cpu":
        return
    import torch

    try:
        if torch.device(cfg.device).type == "meta":
            raise ValueError("meta tensors hold no data")
        torch.empty(0, device=torch.device(cfg.device))
    except (RuntimeError, AssertionError, ValueError, NotImplementedError) as exc:
        raise TrainError(f"device {cfg.device!r} is not usable here ({str(exc).splitlines()[0]})") from None


def check_settings(cfg: TrainConfig) -> None:
    """The settings on their own (where they will run does not matter)."""
    if cfg.head not in HEAD_NAMES:
        raise HeadError(f"unknown head {cfg.head!r}; known: {', '.join(HEAD_NAMES)}")
    check_bounds(cfg, TrainError)
    if cfg.head == "weighted-sum" and cfg.layer is not None:
        raise TrainError("the weighted-sum head uses every layer; --layer does not apply")
    if cfg.features not in FEATURES:
        raise TrainError(f"unknown features {cfg.features!r}; known: {', '.join(FEATURES)}")
    if cfg.shuffle not in SHUFFLES:
        raise TrainError(f"unknown shuffle {cfg.shuffle!r}; known: {', '.join(SHUFFLES)}")
