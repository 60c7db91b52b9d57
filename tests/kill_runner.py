"""Run `emostore extract` killed before each of its store writes, then re-run it (for test_kill_points.py).

usage: python kill_runner.py WORKDIR MANIFEST [extract options...]

One process imports emostore (torch, transformers) once and forks a child per run, so dozens of
runs fit in seconds. Each child is the real CLI; ``EMOSTORE_TEST_KILL_AT=n`` (the writer's test
hook) makes it die with exit status 137, as if SIGKILLed, just before its n-th store write. The
parent itself never runs torch or zarr code, so forking is safe.

WORKDIR/clean.zarr is an uninterrupted run; the first JSON line printed is
``{"writes": W}``, the number of store writes that run made. Then for every n in 1..W:
WORKDIR/k{n}.zarr is killed at write n, gets the temporary files an interrupted write leaves,
is copied to WORKDIR/k{n}.killed (the state the kill left), and is re-run; one JSON line
``{"n", "killed", "rerun"}`` (exit statuses) per n.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

# Imported once here rather than in every child (imports are most of a child's time).
import dask.array  # noqa: F401
import soundfile  # noqa: F401
import soxr  # noqa: F401
import tqdm.auto  # noqa: F401
import transformers  # noqa: F401

import emostore.store  # noqa: F401
from emostore.cli import main
from emostore.extract import runner  # noqa: F401
from emostore.extract.encoders import load_encoder
from emostore.store import kill_hook

load_encoder("fbank", "cpu")  # imports torchaudio; runs no torch op


def _child(args: list[str], kill_at: int | None, count_to: str | None) -> None:
    if kill_at is not None:
        os.environ[kill_hook.KILL_AT_ENV] = str(kill_at)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        main(args, standalone_mode=False)
        code = 0
    except BaseException:
        code = 1
    if count_to:
        with open(count_to, "w") as fh:
            fh.write(str(kill_hook.KillBeforeWrite.writes))
    os._exit(code)


def _start(args: list[str], kill_at: int | None = None, count_to: str | None = None) -> int:
    pid = os.fork()
    if pid == 0:
        _child(args, kill_at, count_to)
    return pid


def _wait_all(pids: dict[int, int]) -> dict[int, int]:
    return {n: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for n, pid in pids.items()}


def _leave_partials(store: str) -> None:
    """What a kill inside zarr's write-then-rename leaves: a temporary file beside the target."""
    if os.path.isdir(store):
        for sub in ("", "frames/c/0/0"):
            if os.path.isdir(os.path.join(store, sub)):
                with open(os.path.join(store, sub, "zarr.0123456789abcdef.partial"), "wb") as fh:
                    fh.write(b'{"attributes": {')


def _batched(args_of, points: list[int], kill: bool, jobs: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, len(points), jobs):
        part = points[start:start + jobs]
        out.update(_wait_all({n: _start(args_of(n), n if kill else None) for n in part}))
    return out


def main_() -> None:
    work, manifest, *options = sys.argv[1:]
    base = ["extract", manifest, *options]
    clean_count = os.path.join(work, "clean.writes")
    _wait_all({0: _start(base + ["--out", os.path.join(work, "clean.zarr")], 10**9, clean_count)})
    writes = int(open(clean_count).read())
    print(json.dumps({"writes": writes}), flush=True)
    points = list(range(1, writes + 1))
    jobs = max(2, os.cpu_count() or 2)
    store = lambda n: os.path.join(work, f"k{n}.zarr")  # noqa: E731
    killed = _batched(lambda n: base + ["--out", store(n)], points, True, jobs)
    for n in points:
        _leave_partials(store(n))
        if os.path.isdir(store(n)):
            shutil.copytree(store(n), os.path.join(work, f"k{n}.killed"))
    rerun = _batched(lambda n: base + ["--out", store(n)], points, False, jobs)
    for n in points:
        print(json.dumps({"n": n, "killed": killed[n], "rerun": rerun[n]}), flush=True)


if __name__ == "__main__":
    main_()
