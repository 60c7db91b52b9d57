"""Progress reporting that the caller owns: a bar on a terminal, plain lines in a log, or nothing.

Bulk extraction and sweeps run in batch jobs (SLURM, Dask workers, CI) whose output is a file, where
a redrawn bar prints nothing useful until it ends. Library functions therefore never build their own
bars: they take a ``progress`` factory (``Progress.factory(mode)``) and call it once per long step.

Modes: ``bar`` (tqdm, on a terminal), ``lines`` (one plain line at most every ``interval`` seconds:
done / total, rate, ETA, plus a last line at the end), ``quiet`` (nothing), ``auto`` (``bar`` when
the stream is a terminal, else ``lines``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, TextIO

MODES = ("auto", "bar", "lines", "quiet")
INTERVAL = 10.0  # seconds between two plain lines
INTERVAL_ENV = "EMOSTORE_PROGRESS_INTERVAL"  # overrides INTERVAL for the commands (tests, chatty logs)


def default_interval() -> float:
    """Seconds between two plain lines: $EMOSTORE_PROGRESS_INTERVAL if set, else :data:`INTERVAL`."""
    raw = os.environ.get(INTERVAL_ENV)
    if not raw:
        return INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${INTERVAL_ENV}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ValueError(f"${INTERVAL_ENV}={raw!r} is negative")
    return value


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


class Progress:
    """One long step's progress: ``update(n)`` as work is done, ``close()`` (or ``with``) at the end."""

    def __init__(self, total: float | None, desc: str, unit: str = "it", mode: str = "auto",
                 stream: TextIO | None = None, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic,
                 unit_scale: bool = False):
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}; known: {', '.join(MODES)}")
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.total, self.desc, self.unit = mode, total, desc, unit
        self.interval, self.clock = interval, clock
        self.n = 0.0
        self.start = self.last = clock()
        self.postfix = ""
        self.closed = False
        self._lock = threading.Lock()  # updates may come from worker threads (relabel llm)
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=self.stream, dynamic_ncols=True)

    def update(self, n: float = 1, postfix: str | None = None) -> None:
        with self._lock:
            self._update(n, postfix)

    def _update(self, n: float, postfix: str | None) -> None:
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
        elif self.mode == "lines" and self.clock() - self.last >= self.interval:
            self._line()

    def write(self, text: str) -> None:
        """A message (a failure, a warning) that does not break the bar."""
        if self.mode == "quiet":
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def _line(self, final: bool = False) -> None:
        now = self.clock()
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        done = _number(self.n) + (f"/{_number(self.total)}" if self.total else "")
        parts = [f"{self.desc}: {done} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:,.2f} {self.unit}/s")
        if final:
            parts.append(f"in {_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "lines" and self.n:
            self._line(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def factory(mode: str = "auto", stream: TextIO | None = None, interval: float | None = None):
        """A ``(total, desc, unit) -> Progress`` callable that library functions take as ``progress``.

        ``interval`` None: :func:`default_interval` (the environment's, else 10 s).
        """
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}; known: {', '.join(MODES)}")
        interval = default_interval() if interval is None else interval

        def make(total: float | None, desc: str, unit: str = "it", unit_scale: bool = False) -> Progress:
            return Progress(total, desc, unit, mode=mode, stream=stream, interval=interval, unit_scale=unit_scale)

        return make


def quiet(total: float | None, desc: str, unit: str = "it", unit_scale: bool = False) -> Progress:
    """The factory that reports nothing (the library's default)."""
    return Progress(total, desc, unit, mode="quiet")


def as_factory(progress) -> Callable[..., Progress]:
    """A library function's ``progress`` argument as a factory: a factory as is, ``None`` quiet."""
    if callable(progress):
        return progress
    if progress is None:
        return quiet
    raise TypeError(f"progress must be a Progress factory (e.g. Progress.factory('auto')) or None, "
                    f"not {type(progress).__name__}")
