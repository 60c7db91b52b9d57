"""Run a sweep: every run in its own directory, in parallel, then one results table.

Runs execute through a ``concurrent.futures`` executor: in this process (``jobs=1``), a local
process pool (``jobs=N``, each worker limited to its share of the CPU threads) or a Dask cluster
(``scheduler="tcp://host:8786"``, through ``distributed.Client.get_executor``): every worker
opens the shared store itself. A run directory with ``run.json`` is finished and skipped on
re-run; a run that raises writes ``error.json`` (error and traceback) and the sweep goes on.
The table (:mod:`emostore.sweep.results`) is rebuilt from the run directories at the end, and
``sweep.json`` records the expanded specification.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from emostore.sweep.config import RunSpec
from emostore.sweep.results import ERROR_FILE, RESULTS_FILE, RUN_FILE, gather, write_results

RUNS_DIR = "runs"


@dataclass
class SweepSummary:
    total: int
    skipped: int
    done: int
    failed: int
    seconds: float
    results: Path
    failures: dict[str, str] = field(default_factory=dict)


def run_one(spec: dict, run_dir: str, threads: int = 0) -> dict:
    """Train one run into ``run_dir``; never raises: a failure is written to error.json."""
    from emostore.heads.train import TrainConfig, run

    t0 = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ERROR_FILE).unlink(missing_ok=True)
    try:
        run(spec["store"], spec["labels"], spec["partition"], TrainConfig(**spec["config"]), out)
        return {"run_id": spec["run_id"], "status": "done", "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded, the sweep goes on
        err = {"run_id": spec["run_id"], "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc(), "config": spec["config"],
               "store": spec["store"], "labels": spec["labels"], "partition": spec["partition"]}
        (out / ERROR_FILE).write_text(json.dumps(err, indent=1) + "\n", encoding="utf-8")
        return {"run_id": spec["run_id"], "status": "failed", "error": err["error"]}


class _InProcess(Executor):
    """Runs each submission at once, in this process (jobs=1: simplest to debug, no pickling)."""

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future

        f = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            f.set_exception(exc)
        return f


@contextmanager
def executor(jobs: int = 1, scheduler: str | None = None):
    """The executor for ``jobs`` local processes, or a Dask cluster at ``scheduler``."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ValueError("--scheduler needs Dask distributed: pip install 'emostore[cluster]'") from None
        client = Client(scheduler)
        try:
            yield client.get_executor(pure=False), 0
        finally:
            client.close()
    elif jobs <= 1:
        yield _InProcess(), 0
    else:
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            yield pool, threads


def run_sweep(runs: list[RunSpec], out: str | Path, jobs: int = 1, scheduler: str | None = None,
              progress: bool = False, log=None) -> SweepSummary:
    """Run every run of ``runs`` not finished under ``out/runs``; write ``out/results.sqlite``."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    out = Path(out)
    runs_dir = out / RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps([r.to_json() for r in runs], indent=1) + "\n", encoding="utf-8")
    todo = [r for r in runs if not (runs_dir / r.run_id / RUN_FILE).exists()]
    summary = SweepSummary(len(runs), len(runs) - len(todo), 0, 0, 0.0, out / RESULTS_FILE)
    if log and summary.skipped:
        log(f"{summary.skipped} of {len(runs)} runs already finished: skipped")
    with executor(jobs, scheduler) as (pool, threads):
        futures = [pool.submit(run_one, r.to_json(), str(runs_dir / r.run_id), threads) for r in todo]
        bar = tqdm(total=len(futures), desc="sweep", unit="run", disable=not progress)
        for f in as_completed(futures):
            res = f.result()
            if res["status"] == "done":
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures[res["run_id"]] = res["error"]
                if log:
                    log(f"run {res['run_id']} failed: {res['error']}")
            bar.update(1)
            bar.set_postfix(failed=summary.failed)
        bar.close()
    write_results(gather(runs_dir), summary.results)
    summary.seconds = time.perf_counter() - t0
    return summary
