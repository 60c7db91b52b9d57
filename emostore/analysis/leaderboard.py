"""The leaderboard: encoders × corpora (or corpus/rule conditions), EMO-SUPERB Table 2 layout.

One row per encoder, one column per condition (a corpus, or ``corpus/rule`` when the table holds
several label-set rules), then ``Average`` (the mean over the row's conditions; left empty when the
row misses one, since an average over different corpora would not be comparable) and ``Rank``
(of the average, 1 = best; ascending for the lower-is-better metrics ``kld`` and ``jsd``).

Model selection happens on dev, never on test: in each cell (encoder, condition) the setting
(head and hyper-parameters) with the lowest mean dev loss over its runs wins
(:func:`emostore.analysis.runs.select_best`), and only then is its test metric read. A cell shows
the metric of that setting averaged over seeds within a fold, then over folds, with the standard
deviation across folds (sample std, ddof 1; undefined for one fold) and ``n``, the number of runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emostore.analysis.formatting import Bold, html_table, markdown_table, with_spread
from emostore.analysis.runs import AnalysisError, done_runs, rule_order, select_best, sort_keys
from emostore.analysis.scoring import check_metric, metric_values
from emostore.evaluate.files import LABELS
from emostore.evaluate.metrics import HIGHER_IS_BETTER

CONDITION_COLUMNS = ("corpus", "rule", "head", "features", "preset")
FORMATS = ("md", "csv", "html")


def conditions_by(runs: pd.DataFrame, by: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The columns that make a condition: ``by``, or corpus (+ rule when several rules are present)."""
    several_rules = runs["rule"].nunique(dropna=True) > 1
    if by is None:
        return ["corpus", "rule"] if several_rules else ["corpus"]
    by = list(by)
    bad = [c for c in by if c not in CONDITION_COLUMNS]
    if bad or not by:
        raise AnalysisError(f"conditions can be made of {', '.join(CONDITION_COLUMNS)}; "
                            f"got {', '.join(bad) or 'nothing'}")
    if several_rules and "rule" not in by:
        raise AnalysisError(f"the runs use several label-set rules ({', '.join(rule_order(runs['rule'].dropna()))}); "
                            "dev losses on different label sets are not comparable: add rule to the conditions "
                            "or keep one rule")
    return by


def leaderboard_cells(results, metric: str = "macro_f1", by=None, head: str | None = None,
                      rule: str | None = None) -> pd.DataFrame:
    """One row per (encoder, condition): the dev-selected setting and its test ``metric`` over folds.

    Columns: ``encoder``, ``condition``, the condition columns, ``setting``, ``mean_dev_loss``,
    ``settings_compared``, ``mean``, ``std`` (across fold means), ``n`` (runs), ``folds``, ``run_ids``.
    """
    check_metric(metric)
    runs = done_runs(results, head=head, rule=rule)
    by = conditions_by(runs, by)
    selected = select_best(runs, ["encoder", *by])
    selected["value"] = metric_values(selected, metric).to_numpy()
    rows = []
    for key, cell in selected.groupby(["encoder", *by], sort=False, dropna=False):
        per_fold = cell.groupby("fold", sort=True, dropna=False)["value"].mean()
        rows.append({
            "encoder": key[0], "condition": "/".join(str(k) for k in key[1:]),
            **dict(zip(by, key[1:])),
            "setting": cell["setting"].iloc[0], "mean_dev_loss": cell["mean_dev_loss"].iloc[0],
            "settings_compared": int(cell["settings_compared"].iloc[0]),
            "mean": float(per_fold.mean()), "std": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else np.nan,
            "n": len(cell), "folds": len(per_fold), "run_ids": " ".join(cell["run_id"]),
        })
    cells = pd.DataFrame(rows)
    order = _condition_order(cells, by)
    cells["_c"] = cells["condition"].map({c: i for i, c in enumerate(order)})
    cells = cells.sort_values(["encoder", "_c"]).drop(columns="_c").reset_index(drop=True)
    cells.attrs.update(metric=metric, conditions=order)
    return cells


def _condition_order(cells: pd.DataFrame, by: list[str]) -> list[str]:
    keys = sort_keys(cells[by].drop_duplicates(), by)
    return ["/".join(str(v) for v in r) for r in keys.itertuples(index=False)]


def leaderboard(results, metric: str = "macro_f1", by=None, head: str | None = None,
                rule: str | None = None) -> pd.DataFrame:
    """The wide leaderboard (module doc): index ``encoder``; per condition C the columns ``C``
    (mean), ``C std``, ``C n``; then ``Average`` and ``Rank``. Rows are sorted by rank.

    ``by``: the condition columns (default: corpus, plus rule when the table has several rules);
    ``head`` / ``rule``: keep only runs of that head / label-set rule.
    """
    cells = leaderboard_cells(results, metric, by, head, rule)
    return board_from_cells(cells)


def board_from_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The wide table of :func:`leaderboard` from :func:`leaderboard_cells`' long one."""
    metric, conditions = cells.attrs["metric"], cells.attrs["conditions"]
    encoders = sorted(cells["encoder"].unique())
    board = pd.DataFrame(index=pd.Index(encoders, name="encoder"))
    for c in conditions:
        sub = cells[cells["condition"] == c].set_index("encoder")
        board[c] = sub["mean"].reindex(encoders)
        board[f"{c} std"] = sub["std"].reindex(encoders)
        board[f"{c} n"] = sub["n"].reindex(encoders).astype("Int64")
    means = board[conditions]
    board["Average"] = means.mean(axis=1).where(means.notna().all(axis=1))
    board["Rank"] = board["Average"].rank(ascending=not HIGHER_IS_BETTER[metric], method="min").astype("Int64")
    board = board.sort_values(["Rank", "Average"], na_position="last", kind="stable")
    board.attrs.update(metric=metric, conditions=list(conditions))
    return board


def caption(metric: str) -> str:
    arrow = "higher is better" if HIGHER_IS_BETTER[metric] else "lower is better"
    return (f"{LABELS[metric]} ({arrow}): mean ± std across folds (n = runs) of the setting with the lowest "
            "dev loss per cell; Average over conditions, Rank of the average.")


def _cells_text(board: pd.DataFrame, digits: int) -> tuple[list[str], list[list[str]]]:
    metric, conditions = board.attrs["metric"], board.attrs["conditions"]
    best = {}
    for col in [*conditions, "Average"]:
        v = board[col].dropna()
        if len(v):
            best[col] = v.max() if HIGHER_IS_BETTER[metric] else v.min()
    rows = []
    for enc, r in board.iterrows():
        row = [enc]
        for c in conditions:
            text = with_spread(r[c], r[f"{c} std"], r[f"{c} n"] if pd.notna(r[f"{c} n"]) else 0, digits)
            row.append(Bold(text) if c in best and r[c] == best[c] else text)
        avg = "–" if pd.isna(r["Average"]) else f"{r['Average']:.{digits}f}"
        row.append(Bold(avg) if "Average" in best and r["Average"] == best["Average"] else avg)
        row.append("–" if pd.isna(r["Rank"]) else str(int(r["Rank"])))
        rows.append(row)
    return ["encoder", *conditions, "Average", "Rank"], rows


def format_leaderboard(board: pd.DataFrame, fmt: str = "md", digits: int = 3) -> str:
    """The leaderboard as Markdown (caption + table, best of each column in bold), CSV (every number,
    full precision) or an HTML ``<table>``."""
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "csv":
        return board.to_csv()
    header, rows = _cells_text(board, digits)
    if fmt == "md":
        return caption(board.attrs["metric"]) + "\n\n" + markdown_table(header, rows)
    return html_table(header, rows, caption=caption(board.attrs["metric"]), cls="leaderboard")
