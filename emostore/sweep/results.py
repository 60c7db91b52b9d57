"""The sweep results table: one SQLite row per run, gathered from the runs' own files.

A run directory (what ``emostore train --out DIR`` writes) holds ``run.json`` when it finished or
``error.json`` when it failed; the table is rebuilt from those files, so it can never disagree with
them and a sweep killed half-way loses no finished run. SQLite is in the standard library and
pandas reads it (``pandas.read_sql``); :func:`load_results` does that for you.

Live: a sweep keeps the table current (:class:`LiveTable`): it is written when the sweep starts,
with the planned run ids in table ``plan``, again as runs finish (at most 5 % of the sweep's time goes to
rewriting it) and when the sweep ends, so ``leaderboard`` and
``report`` read a sweep in progress and say how many runs are still missing (:func:`missing_runs`).
Every write is a whole new file in a temporary name of its own, moved over the table with one
``os.replace``: a reader (``mode=ro``) sees the old table or the new one, never half of one, and
two processes writing at once never share a temporary file (the last rename wins, whole).

Columns of table ``runs`` (``COLUMNS``; NULL where a value does not apply or the run failed):

* identity: ``run_id`` (the run directory's name), ``status`` (``done`` | ``failed``), ``error``
* config: ``head``, ``layer`` (encoder layer number; NULL = last stored, or every layer for
  weighted-sum), ``hidden``, ``lr``, ``beta``, ``smoothing``, ``epochs``, ``warmup_epochs``,
  ``patience``, ``batch_size``, ``seed``, ``fold``, ``preset``, ``features`` (what was read: pooled | frames)
* inputs: ``store``, ``encoder``, ``corpus``, ``labels``, ``rule`` (the label set's rule: mr | pr | ar | ...),
  ``partition``
* outcome: ``dev_loss`` (the selected epoch's), ``selected_epoch``, ``epochs_run``, test metrics on the
  training label set's test targets (``macro_f1``, ``ua``, ``wa``, ``macro_f1_single``, ``kld``, ``jsd``),
  ``n_test``, ``seconds``
* files: ``out_dir``, ``predictions`` (path), ``layer_weights`` (path, weighted-sum only), ``config`` (JSON)
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from emostore.errors import EmostoreError

METRIC_COLUMNS = ("macro_f1", "ua", "wa", "macro_f1_single", "kld", "jsd")
CONFIG_COLUMNS = ("head", "layer", "hidden", "lr", "beta", "smoothing", "epochs", "warmup_epochs", "patience",
                  "batch_size", "seed", "fold", "preset", "features")
COLUMNS = (("run_id", "status", "error") + CONFIG_COLUMNS
           + ("store", "encoder", "corpus", "labels", "rule", "partition",
              "dev_loss", "selected_epoch", "epochs_run") + METRIC_COLUMNS
           + ("n_test", "seconds", "out_dir", "predictions", "layer_weights", "config"))
TABLE = "runs"
PLAN_TABLE = "plan"  # run_id of every run the sweep planned
RUNS_DIR = "runs"  # a sweep folder's run folders: OUT/runs/<run id>/
RESULTS_FILE = "results.sqlite"
RUN_FILE = "run.json"
ERROR_FILE = "error.json"


class ResultsError(EmostoreError, ValueError):
    """A results table or run directory is unreadable."""


def row_from_run_dir(run_dir: str | Path) -> dict | None:
    """The table row of one run directory (None if it holds neither run.json nor error.json)."""
    run_dir = Path(run_dir)
    row = dict.fromkeys(COLUMNS)
    row.update(run_id=run_dir.name, out_dir=str(run_dir))
    if (run_dir / RUN_FILE).exists():
        rec = _read_json(run_dir / RUN_FILE)
        cfg = rec.get("config", {})
        row.update({k: cfg.get(k) for k in CONFIG_COLUMNS})
        row.update(status="done", features=rec.get("features"), config=json.dumps(cfg, sort_keys=True))
        store, labels = rec.get("store", {}), rec.get("labels", {})
        row.update(store=store.get("path"), encoder=store.get("encoder"), corpus=store.get("corpus"),
                   labels=labels.get("path"), rule=labels.get("rule"),
                   partition=rec.get("partition", {}).get("path"))
        dev = rec.get("dev_losses") or []
        sel = rec.get("selected_epoch")
        row.update(selected_epoch=sel, epochs_run=len(dev), seconds=rec.get("seconds"),
                   dev_loss=dev[sel - 1] if sel and len(dev) >= sel else None)
        metrics = rec.get("test_metrics") or {}
        row.update({k: metrics.get(k) for k in METRIC_COLUMNS}, n_test=metrics.get("n"))
        if (run_dir / "predictions.jsonl").exists():
            row["predictions"] = str(run_dir / "predictions.jsonl")
        if (run_dir / "layer_weights.json").exists():
            row["layer_weights"] = str(run_dir / "layer_weights.json")
        return row
    if (run_dir / ERROR_FILE).exists():
        err = _read_json(run_dir / ERROR_FILE)
        cfg = err.get("config", {})
        row.update({k: cfg.get(k) for k in CONFIG_COLUMNS})
        row.update(status="failed", error=err.get("error"), config=json.dumps(cfg, sort_keys=True),
                   store=err.get("store"), labels=err.get("labels"), partition=err.get("partition"))
        return row
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None


def write_results(rows: list[dict], path: str | Path, planned: list[str] | None = None) -> Path:
    """(Re)write the SQLite table ``runs`` at ``path`` from ``rows``, and table ``plan`` from
    ``planned`` run ids when given; atomically (module docstring), safe with concurrent writers."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        con = sqlite3.connect(tmp)
        try:
            cols = ", ".join(f'"{c}"' for c in COLUMNS)
            con.execute(f"CREATE TABLE {TABLE} ({cols})")
            con.executemany(f"INSERT INTO {TABLE} VALUES ({', '.join('?' * len(COLUMNS))})",
                            [tuple(r.get(c) for c in COLUMNS) for r in rows])
            if planned is not None:
                con.execute(f"CREATE TABLE {PLAN_TABLE} (run_id TEXT PRIMARY KEY)")
                con.executemany(f"INSERT OR IGNORE INTO {PLAN_TABLE} VALUES (?)", [(r,) for r in planned])
            con.commit()
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _row_or_failure(run_dir: Path) -> dict | None:
    """:func:`row_from_run_dir`, with a damaged run folder as a failed row (not a lost table)."""
    try:
        return row_from_run_dir(run_dir)
    except ResultsError as exc:
        row = dict.fromkeys(COLUMNS)
        row.update(run_id=run_dir.name, out_dir=str(run_dir), status="failed", error=str(exc))
        return row


def gather(runs_dir: str | Path) -> list[dict]:
    """Rows of every run directory under ``runs_dir`` (sorted by run id; unreadable ones as failed)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    rows = [_row_or_failure(d) for d in sorted(runs_dir.iterdir()) if d.is_dir()]
    return [r for r in rows if r is not None]


class LiveTable:
    """A sweep folder's table kept current: read from its run folders once, then each finished run's
    row replaced and the table rewritten (atomically), and once more by :meth:`write` at the end
    (:func:`emostore.sweep.folder.sweep_folder` calls it on the way out).

    Each rewrite is the whole file, so rewriting it per finished run cost O(runs²): a 600-run sweep
    spent 38 s of its 214 s rewriting the table. So a rewrite waits until the time since the last
    one is at least that rewrite's duration / :attr:`MAX_SHARE`: rewriting takes at most that share
    of the sweep (a small table is still rewritten per run). A row not yet in the file is in its
    run folder, from which the next sweep rebuilds the table (:func:`gather`).
    """

    MAX_SHARE: float | None = 0.05  # None: rewrite per finished run

    def __init__(self, out: str | Path, planned: list[str]):
        self.out = Path(out)
        self.path = self.out / RESULTS_FILE
        self.planned = list(planned)
        self.rows = {r["run_id"]: r for r in gather(self.out / RUNS_DIR)}
        self.write()

    def finished(self, run_id: str) -> None:
        """Run ``run_id``'s folder is final (run.json or error.json written): its row goes in."""
        row = _row_or_failure(self.out / RUNS_DIR / run_id)
        if row is None:
            return
        self.rows[run_id] = row
        if self.MAX_SHARE is None or time.monotonic() - self.written >= self.took / self.MAX_SHARE:
            self.write()

    def write(self) -> Path:
        t = time.monotonic()
        path = write_results([self.rows[k] for k in sorted(self.rows)], self.path, self.planned)
        self.written = time.monotonic()
        self.took = self.written - t
        return path


def _results_file(path: str | Path) -> Path:
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def missing_runs(path: str | Path) -> tuple[int, list[str]] | None:
    """(planned runs, ids of those with no row yet) of a sweep's table; None without a plan
    (a table written by hand, or by an older sweep)."""
    path = _results_file(path)
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        planned = [r[0] for r in con.execute(f"SELECT run_id FROM {PLAN_TABLE}")]
        have = {r[0] for r in con.execute(f"SELECT run_id FROM {TABLE}")}
    except sqlite3.DatabaseError:  # no plan table
        return None
    finally:
        con.close()
    return len(planned), [r for r in planned if r not in have]


def progress_note(results) -> str | None:
    """``9 of 60 planned runs finished, 51 missing (...)`` for a sweep table with runs still missing;
    None when every planned run has a row, without a plan, or for a table that is no file."""
    if not isinstance(results, (str, Path)):
        return None
    got = missing_runs(results)
    if got is None or not got[1]:
        return None
    planned, missing = got
    return (f"{planned - len(missing)} of {planned} planned runs finished, {len(missing)} missing (the sweep is "
            "still running, or was stopped: run it again to finish)")


def load_results(path: str | Path):
    """The results table as a pandas DataFrame; ``path`` is the .sqlite file or the sweep directory."""
    import pandas as pd

    path = _results_file(path)
    if not path.exists():
        raise ResultsError(f"{path}: no results table (run `emostore sweep` first)")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return pd.read_sql(f"SELECT * FROM {TABLE}", con)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise ResultsError(f"{path}: not an emostore results table ({exc})") from None
    finally:
        con.close()
