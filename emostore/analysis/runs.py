"""The sweep results table as analysis input: loaded once, normalised, split into done and failed runs.

Every analysis reads the table that :mod:`emostore.sweep.results` builds (one row per run). This
module is the one place that knows how to read it, so the other modules agree on what a run's
*setting* is: its configuration without ``fold`` and ``seed`` (the columns of
:data:`~emostore.sweep.results.CONFIG_COLUMNS` that define a model, written ``head=probe layer=3
lr=0.01 ...``). Runs that share encoder, corpus, label set and setting are repetitions of one
model over folds and seeds, and are averaged together.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from emostore.sweep.results import COLUMNS, CONFIG_COLUMNS, load_results, progress_note
from emostore.errors import EmostoreError

#: Configuration columns that define a model; fold and seed only repeat it.
SETTING_COLUMNS = tuple(c for c in CONFIG_COLUMNS if c not in ("fold", "seed"))
#: Known label-set rules in display order (others follow alphabetically).
RULE_ORDER = ("mr", "pr", "ar")


class AnalysisError(EmostoreError, ValueError):
    """The results table cannot give what was asked (no finished run, a missing label set, ...)."""


class NoData(AnalysisError):
    """The table holds no run of the kind an analysis needs (no probe runs, a single rule, ...).

    A report leaves that section out with a note; a command stops with the message.
    """


def plain(v):
    """A cell value as JSON/str-friendly Python: NaN -> None, 3.0 -> 3."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):  # numpy scalar
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def setting_of(row) -> str:
    """``head=probe layer=3 lr=0.01 ...``: the non-null setting columns of one row, in column order."""
    parts = []
    for c in SETTING_COLUMNS:
        v = plain(row.get(c))
        if v is not None:
            parts.append(f"{c}={v}")
    return " ".join(parts)


def head_of(row) -> str:
    """The head a run trained, with the layer for a single-layer head: ``weighted-sum``, ``probe L3``."""
    head = plain(row.get("head"))
    if head is None:
        return "?"
    layer = plain(row.get("layer"))
    return f"{head} L{layer}" if layer is not None and head in ("probe", "emobox") else str(head)


def load_runs(results) -> pd.DataFrame:
    """Every row (done and failed) of a results table, with ``corpus``, ``rule`` and ``setting`` filled in.

    ``results``: a sweep directory, its ``results.sqlite``, or a DataFrame with the table's columns.
    A missing ``corpus`` falls back to the store path's stem (runs written before the store
    recorded its corpus), a missing ``rule`` to the label set's file stem.
    """
    if isinstance(results, pd.DataFrame):
        df = results.copy()
    elif isinstance(results, (str, Path)):
        df = load_results(results)
    else:
        raise AnalysisError(f"results must be a sweep directory, a results.sqlite or a DataFrame, "
                            f"not {type(results).__name__}")
    missing = [c for c in ("run_id", "status", "encoder", "store", "labels") if c not in df.columns]
    if missing:
        raise AnalysisError(f"not an emostore results table: missing column(s) {', '.join(missing)}")
    df = df.reindex(columns=list(dict.fromkeys([*COLUMNS, *df.columns])))
    df["corpus"] = [c if isinstance(c, str) and c else (Path(s).stem if isinstance(s, str) else None)
                    for c, s in zip(df["corpus"], df["store"])]
    df["rule"] = [r if isinstance(r, str) and r else (Path(p).stem if isinstance(p, str) else None)
                  for r, p in zip(df["rule"], df["labels"])]
    df["encoder"] = df["encoder"].where(df["encoder"].notna(), "unknown")
    df["setting"] = [setting_of(r) for r in df.to_dict("records")] if len(df) else pd.Series(dtype=object)
    return df.reset_index(drop=True)


def done_runs(results, **where) -> pd.DataFrame:
    """The finished runs (``status == "done"``), optionally only those whose columns equal ``where``.

    Raises :class:`AnalysisError` when none is left, naming the first failures if there are any.
    """
    df = load_runs(results)
    done = df[df["status"] == "done"]
    for col, value in where.items():
        if value is not None:
            done = done[done[col] == value]
    if done.empty:
        failed = df[df["status"] == "failed"]
        what = " and ".join(f"{k}={v}" for k, v in where.items() if v is not None)
        why = ""
        if len(failed):
            why = f" ({len(failed)} failed, e.g. {failed['run_id'].iloc[0]}: {failed['error'].iloc[0]})"
        progress = progress_note(results)
        why += f"; {progress}" if progress else ""
        raise NoData(f"no finished run in the results table{' with ' + what if what else ''}{why}")
    return done.reset_index(drop=True)


def failed_runs(results) -> pd.DataFrame:
    """The failed runs: ``run_id``, ``head``, ``fold``, ``seed``, ``store``, ``labels``, ``error``."""
    df = load_runs(results)
    cols = ["run_id", "head", "fold", "seed", "store", "labels", "error"]
    return df.loc[df["status"] == "failed", cols].reset_index(drop=True)


def rule_order(rules) -> list[str]:
    """Rules in display order: MR, PR, AR first, then the others alphabetically."""
    rules = set(rules)
    return [r for r in RULE_ORDER if r in rules] + sorted(rules - set(RULE_ORDER))


def sort_keys(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``df`` sorted by ``keys`` (stable), rules in :func:`rule_order` rather than alphabetically."""
    if df.empty:
        return df
    rank = {r: i for i, r in enumerate(rule_order(df["rule"].dropna()))} if "rule" in keys else {}
    order = df.assign(_rule=df["rule"].map(rank)) if rank else df
    cols = [("_rule" if k == "rule" and rank else k) for k in keys]
    return order.sort_values(cols, kind="stable").drop(columns=["_rule"], errors="ignore").reset_index(drop=True)


def select_best(runs: pd.DataFrame, by: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Per group of ``by``, the runs (every fold and seed) of the setting with the lowest mean dev loss.

    Model selection looks at dev losses only, never at test metrics: the test part stays an
    unbiased estimate of the chosen model. Ties keep the setting that sorts first. Adds the
    columns ``mean_dev_loss`` (the winner's) and ``settings_compared``.
    """
    by = list(by)
    if runs.empty:
        raise AnalysisError("no run to select from")
    out = []
    for key, group in runs.groupby(by, dropna=False, sort=True):
        dev = group.groupby("setting", sort=True)["dev_loss"].mean()
        if dev.isna().all():
            label = ", ".join(f"{c}={v}" for c, v in zip(by, key if isinstance(key, tuple) else (key,)))
            raise AnalysisError(f"{label}: no run has a dev loss, so no setting can be selected")
        best = dev.idxmin()  # NaN means are skipped
        chosen = group[group["setting"] == best].copy()
        chosen["mean_dev_loss"] = float(dev[best])
        chosen["settings_compared"] = int(dev.notna().sum())
        out.append(chosen)
    return pd.concat(out, ignore_index=True)


def learning_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run and epoch: ``train_loss``, ``dev_loss`` and ``selected`` (the kept epoch), from run.json."""
    rows = []
    for run in runs.to_dict("records"):
        rec = Path(str(run.get("out_dir"))) / "run.json"
        try:
            obj = json.loads(rec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AnalysisError(f"run {run.get('run_id')}: cannot read {rec} ({exc})") from None
        train, dev = obj.get("train_losses") or [], obj.get("dev_losses") or []
        sel = obj.get("selected_epoch")
        for e in range(1, max(len(train), len(dev)) + 1):
            rows.append({"run_id": run.get("run_id"), "fold": run.get("fold"), "seed": plain(run.get("seed")),
                         "epoch": e, "train_loss": train[e - 1] if e <= len(train) else np.nan,
                         "dev_loss": dev[e - 1] if e <= len(dev) else np.nan, "selected": e == sel})
    if not rows:
        raise AnalysisError("no epoch recorded in these runs")
    return pd.DataFrame(rows)
