"""Progress: plain lines at most every interval in a log, a tqdm bar on a terminal, nothing when quiet."""

from __future__ import annotations

import io
import re

from emostore.progress import Progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_lines_mode_prints_at_most_one_line_per_interval_and_a_final_line():
    out, clock = io.StringIO(), Clock()
    with Progress(100, "extract", "audio-s", mode="auto", stream=out, interval=10.0, clock=clock) as p:
        assert p.mode == "lines"  # a StringIO is no terminal
        for _ in range(100):
            clock.t += 0.5  # 50 s in all: lines at 10, 20, 30, 40, 50 s
            p.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert lines[0] == "extract: 20/100 audio-s (20%), 2.00 audio-s/s, ETA 40s"
    assert lines[-1] == "extract: 100/100 audio-s (100%), 2.00 audio-s/s, in 50s"


def test_quiet_prints_nothing_and_write_is_silent():
    out = io.StringIO()
    with Progress(10, "sweep", "run", mode="quiet", stream=out) as p:
        p.update(10)
        p.write("run x failed")
    assert out.getvalue() == ""


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_auto_on_a_terminal_draws_a_bar():
    out = FakeTTY()
    with Progress(4, "sweep", "run", stream=out) as p:
        assert p.mode == "bar"
        p.update(4)
    assert re.search(r"sweep: 100%\|.*\| 4/4", out.getvalue())
