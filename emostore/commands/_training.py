"""The training options, one table shared by ``emostore train`` and ``emostore sweep``.

``None`` defaults: the preset's value or ``TrainConfig``'s applies. In a sweep every option may be
repeated (a grid axis) and ``--layer`` also takes ``all``. Numeric options take their ranges from
the library's dataclass fields (:func:`bounded_type`), never typed again here.
"""

from __future__ import annotations

import click

from emostore.bounds import bound_of
from emostore.commands import _choices
from emostore.heads.config import Execution, TrainConfig


def bounded_type(cls, name: str):
    """The click type of numeric dataclass field ``name``: int or float, a range where it has one
    (None for a field that is not a number)."""
    declared = str(cls.__dataclass_fields__[name].type)
    if not declared.startswith(("int", "float")):
        return None
    kind = int if declared.startswith("int") else float
    bound = bound_of(cls, name)
    if bound is None:
        return kind
    if kind is int:
        low, high = (None if v is None else int(v) for v in (bound.low, bound.high))
        return click.IntRange(low, high, min_open=bound.low_open, max_open=bound.high_open)
    return click.FloatRange(bound.low, bound.high, min_open=bound.low_open, max_open=bound.high_open)


TRAIN_OPTIONS = [  # (flag, click.option keywords); a numeric setting's type comes from TrainConfig
    ("--preset", dict(type=_choices.presets(),
                      help="A published recipe's defaults (emobox: emobox head, 100 epochs, 10 warm-up, no early "
                           "stopping, 20% of train as dev when the fold has none); other options override it.")),
    ("--layer", dict(type=int, help="Encoder layer read by the emobox, ar-mlp and probe heads (weighted-sum "
                                    "ignores it) [default: last stored].")),
    ("--hidden", dict(help="Hidden size [default: 256, ar-mlp 1024].")),
    ("--seed", dict(help="[default: 0]")),
    ("--epochs", dict(help="Most epochs; early stopping usually ends a run sooner [default: 100].")),
    ("--lr", dict(help="AdamW learning rate [default: 1e-3; probe 1e-2].")),
    ("--batch-size", dict(help="[default: 32]")),
    ("--beta", dict(help="Class-balanced weighting (Cui et al.); 0 disables [default: 0.99].")),
    ("--smoothing", dict(help="Label smoothing of the train loss [default: 0].")),
    ("--warmup-epochs", dict(help="Linear lr warm-up epochs [default: 0].")),
    ("--patience", dict(help="Early stopping: stop after this many epochs without a lower dev loss; "
                                 "0: run every epoch [default: 10; --preset emobox: 0].")),
    ("--valid-fraction", dict(help="Share of train held out as dev when the fold has no dev part "
                                       "[default: 0].")),
    ("--features", dict(type=_choices.feature_kinds(),
                        help="auto: pooled/mean where the head is exact on it, else frames [default: auto].")),
    ("--shuffle", dict(type=_choices.shuffles(),
                       help="Batch order: full permutation, or blocks of store rows (bounded, sequential frame "
                            "reads) [default: auto = full for pooled, blocks for frames].")),
    ("--memory-mb", dict(help="Frames cache bound in MiB [default: 1024].")),
    ("--device", dict(help="torch device, e.g. cuda or cuda:1 [default: cpu].")),
]


def threads_option(fn):
    """``--threads N``: torch intra-op threads per run, ranged by the library's ``Execution``."""
    return click.option("--threads", type=bounded_type(Execution, "threads"), default=None,
                        help="torch threads per run (recorded in run.json) [default: 1: the heads are tiny, "
                             "and torch's one thread per core is several times slower on them; docs/sweeps.md "
                             "\"Threads\"].")(fn)


def train_options(multiple: bool = False):
    """The training settings of `train`, and of `sweep` where each may be repeated (a grid axis)."""
    def decorate(fn):
        for flag, kw in reversed(TRAIN_OPTIONS):
            if "type" not in kw:
                kw = dict(kw, type=bounded_type(TrainConfig, flag[2:].replace("-", "_")))
            if multiple and flag == "--layer":  # sweeps also take `all`
                kw = dict(kw, type=str, help=kw["help"] + " `all`: one run per stored layer for each of these "
                                                     "heads (weighted-sum reads every layer; it ignores --layer).")
            fn = click.option(flag, multiple=multiple, default=() if multiple else None, **kw)(fn)
        return fn

    return decorate


def grid_value(key: str, value):
    """`--layer all` stays a word; other --layer values are integers."""
    if key == "layer" and value != "all":
        try:
            return int(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a layer number or `all`", param_hint="--layer") from None
    return value
