"""`extract` and `sweep` show progress where they run: plain lines in a log file, a tqdm bar on a
terminal (a pseudo-terminal of a set size), nothing with --quiet. Real commands, run as processes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from emostore.progress import INTERVAL_ENV, Progress, default_interval

# each test runs `emostore` in a subprocess: a hang fails it with a message
pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
COLS = 72


def _env(interval: str = "0") -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), **{INTERVAL_ENV: interval})
    env.pop("COLUMNS", None)
    return env


def _emostore(args: list[str], stderr, interval: str = "0") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emostore.cli", *args], stdout=subprocess.PIPE, stderr=stderr,
                          env=_env(interval), timeout=120, check=True)


@pytest.fixture
def clips(tmp_path, shortest_clips) -> Path:
    """A folder of 4 real EmoDB clips (2.0 s each: 8 audio-seconds)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for c in shortest_clips[:4]:
        shutil.copy(c, folder / c.name)
    return folder


def _extract_args(clips: Path, out: Path) -> list[str]:
    return ["extract", str(clips), "--encoder", "fbank", "--max-batch", "1", "--out", str(out)]


LINE = re.compile(r"^extract: (\d+(?:\.\d)?)/8 audio-s \((\d+)%\), [\d.,]+ audio-s/s, ETA \d+s, [\d.]+ utt/s$")


def test_extract_into_a_log_file_prints_plain_progress_lines_with_rate_and_eta(clips, tmp_path):
    log = tmp_path / "extract.log"
    with open(log, "w") as fh:
        _emostore(_extract_args(clips, tmp_path / "s.zarr"), fh)
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text  # no bar redraws in a file
    lines = [m.groups() for m in map(LINE.match, text.splitlines()) if m]
    assert len(lines) == 4, text  # one per batch of one 2-s clip (interval 0)
    assert [float(done) for done, _ in lines] == [2.0, 4.0, 6.0, 8.0]
    assert [int(pct) for _, pct in lines] == [25, 50, 75, 100]
    assert re.search(r"^extract: 8/8 audio-s \(100%\), [\d.,]+ audio-s/s, in \d+s", text, re.M)  # the last line


def _run_on_pty(args: list[str], rows: int = 24, cols: int = COLS) -> str:
    """Run the command with stderr on a pseudo-terminal of ``rows`` x ``cols``; what it drew there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the slave side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen([sys.executable, "-m", "emostore.cli", *args], stdout=subprocess.PIPE, stderr=slave,
                            env=_env())
    os.close(slave)
    proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_extract_on_a_terminal_draws_a_bar_that_fits_the_terminal_width(clips, tmp_path):
    drawn = _run_on_pty(_extract_args(clips, tmp_path / "s.zarr"))
    assert "\r" in drawn  # redrawn in place
    frames = [f for f in re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", drawn)) if f.strip()]
    assert any(re.match(r"extract: 100%\|█+\| 8\.00/8\.00 \[", f) for f in frames), drawn
    assert max(len(f) for f in frames) <= COLS
    assert not any(LINE.match(f) for f in frames)  # no plain lines on a terminal


def test_extract_quiet_prints_no_progress_in_either_mode(clips, tmp_path):
    log = tmp_path / "extract.log"
    with open(log, "w") as fh:
        done = _emostore(_extract_args(clips, tmp_path / "a.zarr") + ["--quiet"], fh)
    assert log.read_text() == ""
    assert b"4 extracted" in done.stdout
    assert "extract" not in _run_on_pty(_extract_args(clips, tmp_path / "b.zarr") + ["-q"])


def test_sweep_fold_all_into_a_log_file_prints_run_lines_with_the_failed_count(fbank_fold, tmp_path):
    fold = fbank_fold["fold"]
    part = tmp_path / "part.json"
    part.write_text(json.dumps({"f1": fold, "f2": {"train": fold["train"], "dev": fold["test"],
                                                   "test": fold["dev"]}}))
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"
    with open(log, "w") as fh:
        done = _emostore(["sweep", "--store", fbank_fold["store"], "--labels", fbank_fold["labels"], "--partition",
                          str(part), "--fold", "all", "--head", "probe", "--epochs", "1", "--out", str(out)], fh)
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("sweep:")]
    assert lines[0].startswith("sweep: 1/2 run (50%), ") and lines[0].endswith(", 0 failed"), lines
    assert "ETA" in lines[0]
    assert lines[-1].startswith("sweep: 2/2 run (100%), ") and " in " in lines[-1]
    assert b"2 runs: 2 trained" in done.stdout
    folds = sorted(json.loads((p / "run.json").read_text())["config"]["fold"] for p in (out / "runs").iterdir())
    assert folds == ["f1", "f2"]


def test_interval_comes_from_the_environment_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert default_interval() == 2.5
    assert Progress.factory("lines")(10, "x").interval == 2.5
    monkeypatch.delenv(INTERVAL_ENV)
    assert default_interval() == 10.0
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ValueError, match="EMOSTORE_PROGRESS_INTERVAL='soon'"):
        default_interval()


@pytest.mark.parametrize("path", [("recipe",), ("extract",), ("train",), ("sweep",), ("relabel", "llm"),
                                  ("relabel", "embed")])
def test_every_long_command_takes_quiet_and_nothing_else_about_progress(path):
    from emostore.cli import main

    cmd = main
    for name in path:
        cmd = cmd.commands[name]
    params = {p.name: p for p in cmd.params}
    assert params["quiet"].opts == ["--quiet", "-q"] and params["quiet"].is_flag
    assert "progress" not in params


def test_quiet_means_quiet_and_the_default_is_auto(monkeypatch):
    import io

    from emostore.commands._progress import progress_factory

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert progress_factory(False)(1, "x").mode == "lines"  # auto: lines off a terminal
    assert progress_factory(True)(1, "x").mode == "quiet"


def test_a_bool_is_not_a_progress_factory():
    from emostore.progress import as_factory

    assert as_factory(None)(1, "x").mode == "quiet"
    with pytest.raises(TypeError, match="a Progress factory"):
        as_factory(True)
