"""The leaderboard: encoders × corpora (or corpus/rule conditions), EMO-SUPERB Table 2 layout.

One row per encoder, one column per condition (a corpus, or ``corpus/rule`` when the table holds
several label-set rules, plus any ``by`` columns such as ``head``), then ``Average`` and ``Rank``.

Ranking rule (it must never put a worse encoder first): only *complete* rows, those with a cell in
every condition, get an ``Average`` (mean over all conditions) and a ``Rank`` (of the average,
1 = best; ascending for the lower-is-better ``kld`` and ``jsd``). A row missing a cell is listed
below a rule line, unranked, with its ``Partial average`` over the cells it has and the number of
those cells: an average over fewer corpora is not comparable with the full one, and leaving the
row with "–" alone would read as "worse". The best value of every condition column is bold over
*all* rows, ranked or not, so an unranked row that wins a column shows it.

Model selection happens on dev, never on test: in each cell (encoder, condition) the setting
(head and hyper-parameters) with the lowest mean dev loss over its runs wins
(:func:`emostore.analysis.runs.select_best`), and only then is its test metric read. Settings of
different heads compete in one cell unless ``head`` is a condition column (``by``), so every cell
names the head that won it and, when it beat others, over how many settings (``best of k``): a
second line in HTML, ``[head, best of k]`` in Markdown, ``C head`` / ``C settings`` in CSV. A
cell shows the metric of that setting averaged over seeds within a fold, then over folds, with the
standard deviation across folds (sample std, ddof 1; undefined for one fold) and ``n``, the runs.

A sweep in progress (its table is live) has a leaderboard of the runs finished so far; the
board then says how many planned runs are still missing (``board.attrs["progress"]``, printed
above the Markdown and HTML tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emostore.analysis.formatting import Cell, RuleLine, html_table, markdown_table, with_spread
from emostore.analysis.runs import AnalysisError, done_runs, head_of, select_best, sort_keys
from emostore.analysis.scoring import check_metric, metric_values
from emostore.evaluate.files import LABELS
from emostore.evaluate.metrics import HIGHER_IS_BETTER
from emostore.evaluate.protocols import definition
from emostore.sweep.results import progress_note

CONDITION_COLUMNS = ("corpus", "rule", "head", "features", "preset")
FORMATS = ("md", "csv", "html")


def conditions_by(runs: pd.DataFrame, by: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The columns that make a condition: corpus, rule when several rules are present, then ``by``.

    Corpus and (with several rules) rule are always part of a condition: dev losses on different
    corpora or label sets are not comparable, so they never compete in one cell. ``by`` adds
    columns (e.g. ``head``: one column per head); the order is always that of CONDITION_COLUMNS.
    """
    by = list(by or [])
    bad = [c for c in by if c not in CONDITION_COLUMNS]
    if bad:
        raise AnalysisError(f"conditions can be made of {', '.join(CONDITION_COLUMNS)}; got {', '.join(bad)}")
    wanted = {"corpus", *by}
    if runs["rule"].nunique(dropna=True) > 1:
        wanted.add("rule")
    return [c for c in CONDITION_COLUMNS if c in wanted]


def leaderboard_cells(results, metric: str = "macro_f1", by=None, head: str | None = None,
                      rule: str | None = None) -> pd.DataFrame:
    """One row per (encoder, condition): the dev-selected setting and its test ``metric`` over folds.

    Columns: ``encoder``, ``condition``, the condition columns, ``setting``, ``head_used`` (the
    chosen setting's head, e.g. ``weighted-sum`` or ``probe L3``), ``mean_dev_loss``,
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
            "setting": cell["setting"].iloc[0], "head_used": head_of(cell.iloc[0].to_dict()),
            "mean_dev_loss": cell["mean_dev_loss"].iloc[0],
            "settings_compared": int(cell["settings_compared"].iloc[0]),
            "mean": float(per_fold.mean()), "std": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else np.nan,
            "n": len(cell), "folds": len(per_fold), "run_ids": " ".join(cell["run_id"]),
        })
    cells = pd.DataFrame(rows)
    order = _condition_order(cells, by)
    cells["_c"] = cells["condition"].map({c: i for i, c in enumerate(order)})
    cells = cells.sort_values(["encoder", "_c"]).drop(columns="_c").reset_index(drop=True)
    cells.attrs.update(metric=metric, conditions=order, corpora=sorted(cells["corpus"].astype(str).unique()))
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
    board = board_from_cells(cells)
    board.attrs["progress"] = progress_note(results)
    return board


def board_from_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The wide table of :func:`leaderboard` from :func:`leaderboard_cells`' long one.

    Per condition C: ``C``, ``C std``, ``C n``, ``C head``, ``C settings`` (how many settings the
    cell's dev selection compared); then ``Cells`` (conditions present),
    ``Average`` and ``Rank`` (complete rows only), ``Partial average`` (rows missing a cell: the
    mean over the cells they have). Ranked rows first by rank, then the unranked ones by cells
    present and partial average.
    """
    metric, conditions = cells.attrs["metric"], cells.attrs["conditions"]
    encoders = sorted(cells["encoder"].unique())
    board = pd.DataFrame(index=pd.Index(encoders, name="encoder"))
    for c in conditions:
        sub = cells[cells["condition"] == c].set_index("encoder")
        board[c] = sub["mean"].reindex(encoders)
        board[f"{c} std"] = sub["std"].reindex(encoders)
        board[f"{c} n"] = sub["n"].reindex(encoders).astype("Int64")
        board[f"{c} head"] = sub["head_used"].reindex(encoders)
        board[f"{c} settings"] = sub["settings_compared"].reindex(encoders).astype("Int64")
    means = board[conditions]
    complete = means.notna().all(axis=1)
    board["Cells"] = means.notna().sum(axis=1).astype(int)
    board["Average"] = means.mean(axis=1).where(complete)
    board["Partial average"] = means.mean(axis=1).where(~complete)
    higher = HIGHER_IS_BETTER[metric]
    board["Rank"] = board["Average"].rank(ascending=not higher, method="min").astype("Int64")
    sign = -1 if higher else 1
    order = board.assign(_ranked=~complete, _cells=-board["Cells"], _partial=sign * board["Partial average"])
    board = board.loc[order.sort_values(["_ranked", "Rank", "_cells", "_partial"], na_position="last",
                                        kind="stable").index]
    board.attrs.update(metric=metric, conditions=list(conditions), corpora=list(cells.attrs.get("corpora", [])))
    return board


def caption(metric: str, conditions: int | None = None, fmt: str = "md") -> str:
    """What the leaderboard's numbers and marks mean (printed under the table)."""
    count = f"{conditions} " if conditions else ""
    mark = "[head]" if fmt == "md" else "The line under a value"
    return (f"{definition(metric)}. Cell: mean ± std across folds (n = runs) of the setting with the lowest "
            f"dev loss in that cell, never chosen on test. {mark} = the head of that setting, 'best of k' = it "
            "won the dev selection over k settings (heads compete within a cell: cells of one row may come from "
            "different heads and selections of different breadth). Bold: the best value of the column over all "
            "rows. –: no finished run. "
            f"Average: mean over all {count}conditions; Rank: of the Average, only rows with every "
            "cell are ranked. Rows below the line miss a cell: not ranked; their Average is the partial mean "
            "over the k cells they have ('of k'), not comparable with the ranked averages: compare them "
            "column by column.")


def _head_note(head, settings) -> str | None:
    """``weighted-sum``, or ``emobox, best of 8`` where the cell's dev selection compared several settings."""
    if not isinstance(head, str):
        return None
    return head if pd.isna(settings) or settings <= 1 else f"{head}, best of {int(settings)}"


def _cells_text(board: pd.DataFrame, digits: int) -> tuple[list[str], list]:
    metric, conditions = board.attrs["metric"], board.attrs["conditions"]
    pick = max if HIGHER_IS_BETTER[metric] else min
    best = {col: pick(board[col].dropna()) for col in [*conditions, "Average"] if board[col].notna().any()}
    rows, ruled = [], False
    for enc, r in board.iterrows():
        if pd.isna(r["Average"]) and not ruled:
            rows.append(RuleLine("not ranked: missing a cell (Average = partial mean over the cells present)"))
            ruled = True
        row = [enc]
        for c in conditions:
            text = with_spread(r[c], r[f"{c} std"], r[f"{c} n"] if pd.notna(r[f"{c} n"]) else 0, digits)
            row.append(Cell(text, note=_head_note(r[f"{c} head"], r[f"{c} settings"]),
                            bold=c in best and r[c] == best[c]))
        if pd.notna(r["Average"]):
            row.append(Cell(f"{r['Average']:.{digits}f}", bold=r["Average"] == best["Average"]))
            row.append(str(int(r["Rank"])))
        else:
            partial = r["Partial average"]
            row.append("–" if pd.isna(partial) else f"{partial:.{digits}f} (of {int(r['Cells'])})")
            row.append("–")
        rows.append(row)
    return ["encoder", *conditions, "Average", "Rank"], rows


def format_leaderboard(board: pd.DataFrame, fmt: str = "md", digits: int = 3) -> str:
    """The leaderboard as Markdown (table + caption under it, best of each column in bold, the head
    of each cell in brackets), CSV (every number at full precision, ``metric`` first, ``C head`` per
    condition) or an HTML ``<table>`` (head as a second line in each cell, caption under it)."""
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    metric = board.attrs["metric"]
    if fmt == "csv":
        return _csv_frame(board).to_csv()
    header, rows = _cells_text(board, digits)
    text = caption(metric, len(board.attrs["conditions"]), fmt)
    if fmt == "md":
        return f"**{LABELS[metric]}**\n\n" + markdown_table(header, rows, caption=text)
    return html_table(header, rows, caption=text, cls="leaderboard")


def _csv_frame(board: pd.DataFrame) -> pd.DataFrame:
    metric = board.attrs["metric"]
    return board.assign(**{"metric": metric, "metric definition": definition(metric)})[
        ["metric", "metric definition", *board.columns]]


def format_leaderboards(boards: list[pd.DataFrame], fmt: str = "md", digits: int = 3) -> str:
    """Several leaderboards (one per metric of a protocol): Markdown / HTML one after the other, CSV
    as one table with the rows stacked (its ``metric`` column tells them apart)."""
    if fmt == "csv":
        return pd.concat([_csv_frame(b) for b in boards]).to_csv()
    text = "\n".join(format_leaderboard(b, fmt, digits) for b in boards)
    progress = boards[0].attrs.get("progress") if boards else None
    if progress:
        import html

        note = f"_Partial: {progress}._\n\n" if fmt == "md" else f'<p class="note">Partial: {html.escape(progress)}.</p>\n'
        text = note + text
    return text
