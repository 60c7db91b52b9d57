"""The cross-rule matrix: train on one label-set rule, test on every rule (all-inclusive-rule paper, Tables 4–6).

Rows are training rules, columns test rules; a cell is the metric of the models trained on the
row's rule scored on the column's label set (its kept test utterances of each fold), with a 95%
bootstrap CI, averaged over folds and seeds (:func:`emostore.analysis.scoring.fold_mean`). The
diagonal is each model's ordinary score; off the diagonal, e.g. an MR-trained model is scored on
the AR test set, which includes the utterances MR excluded (runs predict every test utterance).

Which runs: those that differ only by the rule, i.e. share encoder, corpus, partition and setting
(:mod:`emostore.analysis.runs`). ``select="dev"`` (default) keeps the settings that won the dev-loss
selection for at least one training rule (the leaderboard's models); ``select="all"`` keeps every
setting trained on two or more rules. The label set of each (corpus, rule) is the one the table's
runs trained on; a corpus whose runs used two files for one rule needs ``label_sets`` to say which.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from emostore.analysis.formatting import html_table, markdown_table, with_ci
from emostore.analysis.runs import AnalysisError, NoData, done_runs, rule_order, select_best
from emostore.analysis.scoring import check_metric, fold_mean
from emostore.evaluate.files import LABELS

SELECT = ("dev", "all")
GROUP = ["encoder", "corpus", "partition", "setting"]


def label_sets(runs: pd.DataFrame, overrides: dict[str, str] | None = None) -> dict[tuple[str, str], str]:
    """(corpus, rule) -> label-set path: the one file the table's runs of that corpus and rule trained on."""
    overrides = overrides or {}
    out = {}
    for (corpus, rule), group in runs.groupby(["corpus", "rule"], sort=True):
        paths = sorted(set(group["labels"].dropna()))
        if rule in overrides:
            paths = [overrides[rule]]
        if len(paths) != 1:
            raise AnalysisError(f"corpus {corpus}, rule {rule}: the runs trained on {len(paths)} label sets "
                                f"({', '.join(paths)}); say which to test on (label_sets={{'{rule}': PATH}}, "
                                f"or --labels {rule}=PATH)")
        if not Path(paths[0]).exists():
            raise AnalysisError(f"corpus {corpus}, rule {rule}: label set {paths[0]} does not exist "
                                "(moved since the sweep? give its new path with --labels RULE=PATH)")
        out[(corpus, rule)] = paths[0]
    return out


def crossrule(results, metric: str = "macro_f1", n_boot: int = 1000, seed: int = 0, select: str = "dev",
              label_sets_by_rule: dict[str, str] | None = None) -> pd.DataFrame:
    """The cross-rule matrices in long form, one row per (model group, training rule, test rule).

    Columns: ``encoder``, ``corpus``, ``setting``, ``train_rule``, ``test_rule``, ``value``,
    ``ci_low``, ``ci_high``, ``folds``, ``runs``, ``n`` (test utterances, summed over folds),
    ``labels`` (the test label set). ``label_sets_by_rule`` overrides the label set of a rule.
    """
    check_metric(metric)
    if select not in SELECT:
        raise AnalysisError(f"unknown selection {select!r}; known: {', '.join(SELECT)}")
    runs = done_runs(results)
    rules = rule_order(runs["rule"].dropna())
    if len(rules) < 2:
        raise NoData(f"the cross-rule matrix needs runs on at least 2 label-set rules; the table has "
                            f"only {', '.join(rules) or 'none'}")
    if select == "dev":
        winners = select_best(runs, ["encoder", "corpus", "rule"])[GROUP].drop_duplicates()
        runs = runs.merge(winners, on=GROUP)
    sets = label_sets(runs, label_sets_by_rule)
    rows = []
    for key, group in runs.groupby(GROUP, sort=True, dropna=False):
        trained = rule_order(group["rule"].dropna())
        if len(trained) < 2:
            continue
        encoder, corpus, _, setting = key
        for tr in trained:
            for te in trained:
                labels = sets[(corpus, te)]
                est = fold_mean(group[group["rule"] == tr], metric, labels=labels, n_boot=n_boot, seed=seed)
                rows.append({"encoder": encoder, "corpus": corpus, "setting": setting, "train_rule": tr,
                             "test_rule": te, **est, "labels": labels})
    if not rows:
        raise NoData("no setting was trained on two or more rules with the same encoder, corpus and "
                            "partition, so there is no cross-rule comparison to make")
    out = pd.DataFrame(rows)
    out.attrs.update(metric=metric, n_boot=n_boot, seed=seed)
    return out


def matrices(cross: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """One (identity, matrix) per model group; the matrix has training rules as rows, test rules as
    columns and the metric's value in each cell."""
    out = []
    for key, group in cross.groupby(["encoder", "corpus", "setting"], sort=True):
        order = rule_order(group["train_rule"])
        m = group.pivot(index="train_rule", columns="test_rule", values="value").reindex(index=order, columns=order)
        m.index.name, m.columns.name = "train \\ test", None
        out.append((dict(zip(["encoder", "corpus", "setting"], key)), m))
    return out


def format_crossrule(cross: pd.DataFrame, fmt: str = "md", digits: int = 3) -> str:
    """Every matrix as Markdown or HTML (cells ``value [low, high]``), or the long table as CSV."""
    if fmt == "csv":
        return cross.to_csv(index=False)
    if fmt not in ("md", "html"):
        raise AnalysisError(f"unknown format {fmt!r}; known: md, csv, html")
    metric = cross.attrs.get("metric", "macro_f1")
    parts = []
    for ident, _ in matrices(cross):
        group = cross[(cross["encoder"] == ident["encoder"]) & (cross["corpus"] == ident["corpus"])
                      & (cross["setting"] == ident["setting"])]
        order = rule_order(group["train_rule"])
        cell = {(r.train_rule, r.test_rule): with_ci(r.value, r.ci_low, r.ci_high, digits)
                for r in group.itertuples()}
        header = ["train \\ test", *[t.upper() for t in order]]
        rows = [[tr.upper(), *[cell.get((tr, te), "–") for te in order]] for tr in order]
        title = f"{ident['encoder']} on {ident['corpus']} ({ident['setting']}): {LABELS[metric]}, 95% CI"
        if fmt == "md":
            parts.append(f"{title}\n\n{markdown_table(header, rows)}")
        else:
            parts.append(html_table(header, rows, caption=title, cls="crossrule"))
    return "\n".join(parts)
