"""Interrupts keep finished work: SIGINT/SIGTERM in the middle of a block commit every finished row,
a run commits inside a block every --commit-seconds, and a re-run completes the store to the
bytes of an uninterrupted run. Also: an encoder's bug keeps its traceback; option ranges; every
row failing is not a success."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import stand_in_encoders  # noqa: F401  (registers slow-fbank and buggy-fbank here)
from conftest import REPO, write_manifest, write_wav
from emostore.cli import main
from emostore.commands._errors import BUG_NOTE
from emostore.extract.planning import NORMALISE_CHOICES, ExtractError, ExtractOptions
from emostore.store import layout
from emostore.store.writer import FRAME_DTYPES, StoreError, init_group

SCRIPT = REPO / "tests" / "stand_in_encoders.py"
ROWS = 6
STALL_AT = 4  # one clip per batch: rows of the first 3 batches are finished when call 4 stalls


def _files(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes()
            for p in sorted(store.rglob("*")) if p.is_file() and p.name != ".lock"}


def _cmd(manifest: Path, out: Path, *extra: str) -> list[str]:
    # one block of 8 rows, one clip per batch: every interrupt here lands in the middle of a block
    return [sys.executable, str(SCRIPT), "extract", str(manifest), "--encoder", "slow-fbank", "--block-rows", "8",
            "--max-batch", "1", "--out", str(out), *extra]


def _env(tmp_path: Path, stall: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "OMP_NUM_THREADS": "1",
           "EMOSTORE_TEST_CALLS": str(tmp_path / "calls")}
    env.pop("EMOSTORE_TEST_STALL_AT", None)
    if stall:
        env["EMOSTORE_TEST_STALL_AT"] = str(STALL_AT)
    return env


def _as_foreground():
    """In the child before exec: SIGINT's default action, as a foreground command has. A test run
    launched in the background (`cmd &` in a script) starts every child with SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler: the SIGINT case hung for 120 s so in CI."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(what, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what.__doc__}")


def _done(store: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(store, mode="r")["done"][:])


@pytest.fixture
def clean(tmp_path, shortest_clips):
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": c.stem, "audio": str(c)} for c in shortest_clips[:ROWS]])
    subprocess.run(_cmd(manifest, tmp_path / "clean.zarr", "-q"), check=True, capture_output=True,
                   env=_env(tmp_path, stall=False), timeout=300)
    return manifest, _files(tmp_path / "clean.zarr")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_block_commits_the_finished_rows_and_a_rerun_gives_the_clean_bytes(clean, tmp_path, sig):
    manifest, clean_files = clean
    out, calls = tmp_path / "s.zarr", tmp_path / "calls"
    calls.unlink(missing_ok=True)
    proc = subprocess.Popen(_cmd(manifest, out), env=_env(tmp_path, stall=True), preexec_fn=_as_foreground,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def stalled():
            """the encoder's stalled call"""
            return calls.exists() and len(calls.read_text().split()) >= STALL_AT
        _wait_for(stalled)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "interrupted" in last and sig.name in last, err[-2000:]
    assert f"{STALL_AT - 1} of {ROWS} rows are done" in last
    assert int(_done(out).sum()) == STALL_AT - 1  # the block's finished rows, committed before exiting
    subprocess.run(_cmd(manifest, out, "-q"), check=True, capture_output=True, env=_env(tmp_path, stall=False),
                   timeout=300)
    assert _files(out) == clean_files


def test_commits_inside_a_block_every_commit_seconds_so_a_kill_keeps_finished_rows(clean, tmp_path):
    """--commit-seconds 0 commits after every batch: a SIGKILL (no chance to clean up) in the
    middle of the one block keeps the rows finished before it, and a re-run completes the store."""
    manifest, clean_files = clean
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen(_cmd(manifest, out, "-q", "--commit-seconds", "0"), env=_env(tmp_path, stall=True),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def committed():
            """the rows before the stalled call to be committed"""
            try:
                return int(_done(out).sum()) == STALL_AT - 1
            except Exception:  # not created yet
                return False
        _wait_for(committed)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert int(_done(out).sum()) == STALL_AT - 1
    subprocess.run(_cmd(manifest, out, "-q"), check=True, capture_output=True, env=_env(tmp_path, stall=False),
                   timeout=300)
    assert _files(out) == clean_files


def test_an_encoder_bug_keeps_its_traceback_and_is_reported_as_a_bug(small_manifest, tmp_path):
    r = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "buggy-fbank", "-q",
                                  "--out", str(tmp_path / "s.zarr")])
    assert isinstance(r.exception, TypeError), r.output
    assert any("this is a bug" in n for n in getattr(r.exception, "__notes__", [])), BUG_NOTE
    assert "encode" in [f.name for f in traceback.extract_tb(r.exception.__traceback__)]


@pytest.mark.parametrize("flag, value", [("--block-rows", "-4"), ("--block-rows", "0"), ("--processes", "-1"),
                                         ("--min-duration", "-1"), ("--batch-seconds", "0"), ("--max-batch", "0"),
                                         ("--workers", "0"), ("--commit-seconds", "-1")])
def test_an_option_out_of_its_range_is_refused_in_one_line(small_manifest, tmp_path, flag, value):
    r = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", flag, value,
                                  "--out", str(tmp_path / "s.zarr")])
    assert r.exit_code == 2 and f"Invalid value for '{flag}': {value}" in r.output, r.output
    assert not (tmp_path / "s.zarr").exists()


def test_ranges_and_choices_have_one_definition_that_the_cli_uses():
    cmd = main.commands["extract"]
    params = {p.name: p for p in cmd.params}
    for f in fields(ExtractOptions):
        if "min" in f.metadata:
            p = params[f.name]
            assert p.default == f.default and (p.type.min, p.type.min_open) == (f.metadata["min"], f.metadata["above"])
            with pytest.raises(ExtractError, match=f.name):
                ExtractOptions(**{f.name: f.metadata["min"] - 1})
        elif f.name in params:
            assert params[f.name].default == f.default, f.name
    assert params["block_rows"].default == layout.BLOCK_ROWS
    assert tuple(params["frames_dtype"].type.choices) == FRAME_DTYPES
    assert tuple(params["normalise"].type.choices) == NORMALISE_CHOICES


def test_a_store_with_a_nonsense_block_size_is_not_created(tmp_path):
    with pytest.raises(StoreError, match="block"):
        init_group(tmp_path / "s.zarr", ["a", "b"], 1, 4, None, block_rows=-4)


def test_a_clip_too_short_for_the_encoder_is_that_rows_clear_error(tmp_path, shortest_clips):
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "tiny.wav", rng.standard_normal(160).astype(np.float32) * 0.1, 16000)  # 0.01 s
    rows = [{"id": "tiny", "audio": "tiny.wav"}, {"id": shortest_clips[0].stem, "audio": str(shortest_clips[0])}]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    r = CliRunner().invoke(main, ["extract", str(manifest), "--encoder", "fbank", "--min-duration", "0", "-q",
                                  "--out", str(tmp_path / "s.zarr")])
    assert r.exit_code == 0, r.output
    assert "tiny.wav: too short for the fbank encoder (0.010 s gives no frames)" in r.output
    assert "AssertionError" not in r.output


def test_an_extraction_in_which_every_row_failed_is_not_a_success(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"not audio")
    (tmp_path / "b.wav").write_bytes(b"not audio either")
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav"}, {"id": "b", "audio": "b.wav"}])
    args = ["extract", str(manifest), "--encoder", "fbank", "-q", "--out", str(tmp_path / "s.zarr")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "every clip failed to extract, e.g." in r.output and "all 2 rows" in r.output and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: ")
    r = CliRunner().invoke(main, args + ["--allow-all-failed"])
    assert r.exit_code == 0, r.output
