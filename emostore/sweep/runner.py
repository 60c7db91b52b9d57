"""Run a sweep: every run in its own directory, in parallel, then one results table.

The unit of work is a *group* of runs trained together (:mod:`emostore.sweep.group`; with
``group=False``, ``--no-group``, a single run). Every run's inputs are checked first
(:func:`emostore.heads.preflight.check_runs`): a run that cannot start stops the sweep before
anything is written. Units execute one after another in this process (``jobs=1``), in a local
process pool (``jobs=N``), each with ``threads`` torch threads
(:class:`~emostore.heads.config.Execution`: default 1), or on a Dask cluster
(``scheduler="tcp://host:8786"``, through ``distributed.Client.get_executor``, one torch thread
per unit): every worker opens the shared store itself, by absolute path. A run directory whose
``run.json`` parses is finished and skipped on re-run; a run that raises writes ``error.json``
(error and traceback), a worker that dies is recorded the same way, and the sweep goes on. The
folder has one writer at a time and its table (:mod:`emostore.sweep.results`) is live: written at
the start, as runs finish and at the end, also after Ctrl-C (:mod:`emostore.sweep.folder`).
"""

from __future__ import annotations

import json
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from emostore.outputs import ensure_folder, write_json
from emostore.progress import as_factory
from emostore.heads.config import Execution
from emostore.sweep.config import RunSpec, SweepError
from emostore.sweep.folder import sweep_folder
from emostore.sweep.results import ERROR_FILE, RUN_FILE, RUNS_DIR


@dataclass
class SweepSummary:
    total: int
    skipped: int
    done: int
    failed: int
    seconds: float
    results: Path
    failures: dict[str, str] = field(default_factory=dict)


def record_error(spec: dict, run_dir: str | Path, exc: BaseException, what: str = "") -> dict:
    """Write a failed run's error.json (error, traceback, config, inputs); its outcome."""
    out = ensure_folder(run_dir)
    err = {"run_id": spec["run_id"], "error": f"{what}{type(exc).__name__}: {exc}",
           "traceback": "".join(traceback.format_exception(exc)), "config": spec["config"],
           "store": spec["store"], "labels": spec["labels"], "partition": spec["partition"]}
    write_json(out / ERROR_FILE, err)
    return {"run_id": spec["run_id"], "status": "failed", "error": err["error"]}


def run_one(spec: dict, run_dir: str, threads: int = 0) -> dict:
    """Train one run into ``run_dir``; never raises: a failure is written to error.json."""
    from emostore.heads.config import TrainConfig
    from emostore.heads.train import run

    t0 = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    out = Path(run_dir)
    ensure_folder(out)
    (out / ERROR_FILE).unlink(missing_ok=True)
    try:
        run(spec["store"], spec["labels"], spec["partition"], TrainConfig(**spec["config"]), out)
        return {"run_id": spec["run_id"], "status": "done", "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded, the sweep goes on
        return record_error(spec, out, exc)


def run_group_here(specs: list[dict], run_dirs: list[str], threads: int = 0) -> list[dict]:
    """A worker's entry point for one group (:func:`emostore.sweep.group.run_group`), error.json cleared first."""
    from emostore.sweep.group import run_group

    if threads:
        import torch

        torch.set_num_threads(threads)
    for d in run_dirs:
        (Path(d) / ERROR_FILE).unlink(missing_ok=True)
    return run_group(specs, run_dirs, threads)


@contextmanager
def executor(jobs: int, scheduler: str | None = None, threads: int = 1):
    """(executor, torch threads per unit of work, workers) for ``jobs`` local processes (``threads``
    each) or a Dask cluster at ``scheduler`` (one each)."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise SweepError("--scheduler needs Dask distributed: pip install 'emostore[cluster]'") from None
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        try:  # one torch thread per unit: a worker runs as many as it has threads
            workers = sum(client.nthreads().values()) or 1
            yield client.get_executor(pure=False), 1, workers
        finally:
            client.close()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            yield pool, threads, jobs


def _failure(spec: RunSpec, run_dir: Path, exc: BaseException) -> dict:
    """Record a run whose worker died (killed, lost, broken pool) the way run_one records errors."""
    return record_error(spec.to_json(), run_dir, exc, what="worker lost: ")


def _units(todo: list[RunSpec], group: bool, workers: int) -> list[list[RunSpec]]:
    """The units of work: groups (:func:`emostore.sweep.group.plan_groups`), or one run each."""
    if not group:
        return [[r] for r in todo]
    from emostore.sweep.group import plan_groups

    return plan_groups(todo, workers)


def _submit(pool, unit: list[RunSpec], runs_dir: Path, threads: int, group: bool):
    if not group:
        return pool.submit(run_one, unit[0].to_json(), str(runs_dir / unit[0].run_id), threads)
    return pool.submit(run_group_here, [r.to_json() for r in unit], [str(runs_dir / r.run_id) for r in unit], threads)


def _in_thread(unit: list[RunSpec], runs_dir: Path, threads: int = 0):
    """Yield a group's outcomes as its members finish, the group training in a helper thread."""
    import queue
    import threading

    from emostore.sweep.group import run_group

    q: queue.Queue = queue.Queue()
    specs, dirs = [r.to_json() for r in unit], [str(runs_dir / r.run_id) for r in unit]
    for d in dirs:
        (Path(d) / ERROR_FILE).unlink(missing_ok=True)
    def work():
        try:
            run_group(specs, dirs, threads, on_result=q.put)
        finally:
            q.put(None)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    while (o := q.get()) is not None:
        yield o
    t.join()


def _outcomes(todo: list[RunSpec], runs_dir: Path, jobs: int, scheduler: str | None, threads: int,
              group: bool = True):
    """Yield each run's result as it finishes; runs one unit at a time here when jobs == 1 or there is
    one unit of work (no worker process to start; Ctrl-C stops)."""
    if not scheduler and (jobs <= 1 or len(_units(todo, group, jobs)) <= 1):
        for unit in _units(todo, group, 1):
            if group:
                yield from _in_thread(unit, runs_dir, threads)
            else:
                yield run_one(unit[0].to_json(), str(runs_dir / unit[0].run_id), threads)
        return
    with executor(jobs, scheduler, threads) as (pool, threads, workers):
        futures = {_submit(pool, u, runs_dir, threads, group): u for u in _units(todo, group, workers)}
        for f in as_completed(futures):
            try:
                result = f.result()
            except Exception as exc:  # the worker process died or was lost: every run of its unit
                for r in futures[f]:
                    if not is_finished(runs_dir / r.run_id):
                        yield _failure(r, runs_dir / r.run_id, exc)
                continue
            yield from (result if group else [result])


def is_finished(run_dir: Path) -> bool:
    """A run is finished when its run.json is there and parses (it is written atomically, last)."""
    try:
        json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def run_sweep(runs: list[RunSpec], out: str | Path, jobs: int = 1, scheduler: str | None = None,
              progress=None, log=None, threads: int | None = None, group: bool = True) -> SweepSummary:
    """Run every run of ``runs`` not finished under ``out/runs``; keep ``out/results.sqlite`` current.

    ``group``: train runs that read the same features together (:mod:`emostore.sweep.group`; the
    default); False trains them one at a time (``--no-group``), the reference a group member equals.

    The table is written even when the sweep is interrupted (Ctrl-C) or a worker dies.
    ``progress``: a :class:`~emostore.progress.Progress` factory, one unit per run (default: quiet).
    ``threads``: torch threads per run (default :meth:`Execution.threads_per_run`).
    """
    from emostore.heads.preflight import check_runs

    t0 = time.perf_counter()
    per_run = Execution(jobs, threads).threads_per_run()
    out = Path(out).resolve()
    runs_dir = out / RUNS_DIR
    todo = [r for r in runs if not is_finished(runs_dir / r.run_id)]
    check_runs(todo)
    with sweep_folder(out, runs) as table:
        summary = _train_all(runs, todo, runs_dir, jobs, scheduler, per_run, table, progress, log, group)
    summary.seconds = time.perf_counter() - t0
    return summary


def _train_all(runs, todo, runs_dir, jobs, scheduler, threads, table, progress, log, group) -> SweepSummary:
    summary = SweepSummary(len(runs), len(runs) - len(todo), 0, 0, 0.0, table.path)
    if log and summary.skipped:
        log(f"{summary.skipped} of {len(runs)} runs already finished: skipped")
    bar = as_factory(progress)(len(todo), "sweep", "run")
    try:
        for res in _outcomes(todo, runs_dir, jobs, scheduler, threads, group):
            table.finished(res["run_id"])
            if res["status"] == "done":
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures[res["run_id"]] = res["error"]
                if log:
                    log(f"run {res['run_id']} failed: {res['error']}")
            bar.update(1, postfix=f"{summary.failed} failed")
    finally:
        bar.close()
    return summary
