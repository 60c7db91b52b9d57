"""A kill at any store write, during creation or a block, leaves a store that a re-run completes exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, write_manifest

pytestmark = pytest.mark.slow  # real models, clusters or killed subprocesses: see README's development notes

KILLED = 137


def _files(store: Path) -> dict[str, bytes]:
    """Every file of a store but the lock, by relative path."""
    return {p.relative_to(store).as_posix(): p.read_bytes()
            for p in sorted(store.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.mark.timeout(900)  # its subprocess has 600 s of its own
def test_kill_before_every_store_write_then_rerun_gives_the_clean_store_byte_for_byte(tmp_path, shortest_clips):
    rows = [{"id": c.stem, "audio": str(c)} for c in shortest_clips[:4]]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "kill_runner.py"), str(tmp_path), str(manifest),
         "--encoder", "fbank", "--block-rows", "2"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    head, *lines = [json.loads(line) for line in proc.stdout.splitlines()]
    # creation writes 10 objects, the two blocks the rest (23 in all): kills land all over creation and both blocks
    assert head["writes"] >= 20
    clean = _files(tmp_path / "clean.zarr")
    root_attrs = json.loads(clean["zarr.json"])["attributes"]
    assert len(lines) == head["writes"]
    for run in lines:
        n = run["n"]
        assert run["killed"] == KILLED, f"run killed at write {n} was not killed"
        killed = tmp_path / f"k{n}.killed"
        if (killed / "zarr.json").exists():  # the root is written once, with every attribute
            assert json.loads((killed / "zarr.json").read_text())["attributes"] == root_attrs, n
        assert run["rerun"] == 0, f"re-run after a kill at write {n} failed"
        assert _files(tmp_path / f"k{n}.zarr") == clean, f"re-run after a kill at write {n} differs"
