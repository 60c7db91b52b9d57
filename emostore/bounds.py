"""Numeric ranges of settings, declared once on a dataclass field.

The library checks a dataclass's values with :func:`check_bounds`; the CLI derives each option's
click type from the same :class:`Bound` (:func:`emostore.commands._training.bounded_type`), so
``--epochs 0`` is refused by click with the range the library would have refused it with.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

BOUND = "bound"  # the field metadata key


@dataclass(frozen=True)
class Bound:
    """``low <= value <= high`` (``<`` where open); ``label`` names the setting in messages."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    label: str | None = None

    def holds(self, value) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def text(self) -> str:
        """``>= 1``, ``> 0`` or ``in [0, 1)``."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


def bounded(default, *, ge=None, gt=None, le=None, lt=None, label: str | None = None):
    """A dataclass field with a range: ``ge``/``gt`` the low end, ``le``/``lt`` the high end."""
    bound = Bound(low=gt if gt is not None else ge, high=lt if lt is not None else le,
                  low_open=gt is not None, high_open=lt is not None, label=label)
    return dataclasses.field(default=default, metadata={BOUND: bound})


def bound_of(cls, name: str) -> Bound | None:
    """The range of field ``name`` of dataclass ``cls`` (None: unbounded)."""
    return cls.__dataclass_fields__[name].metadata.get(BOUND)


def check_bounds(obj, error: type[Exception]) -> None:
    """Raise ``error`` naming the first field of ``obj`` outside its range (None values pass)."""
    for f in dataclasses.fields(obj):
        bound = f.metadata.get(BOUND)
        value = getattr(obj, f.name)
        if bound is not None and value is not None and not bound.holds(value):
            raise error(f"{bound.label or f.name} must be {bound.text()}, got {value!r}")
