"""The cross-rule matrix: train on one label-set rule, test on every rule (all-inclusive-rule paper, Tables 4–6).

Rows are training rules, columns test rules; a cell is the metric of the models trained on the
row's rule scored on the column's label set (its kept test utterances of each fold), with a 95%
bootstrap CI, averaged over folds and seeds (:func:`emostore.analysis.scoring.fold_mean`). The
diagonal is each model's ordinary score; off the diagonal, e.g. an MR-trained model is scored on
the AR test set, which includes the utterances MR excluded (runs predict every test utterance).

Which runs: those that differ only by the rule, i.e. share encoder, corpus, partition and setting
(:mod:`emostore.analysis.runs`). One head at a time: a matrix never mixes heads, and the dev-loss
selection is made per head (``select="dev"``, default: per encoder, corpus, head and training
rule, the setting with the lowest dev loss among that head's settings), so every head trained on
two or more rules gets its matrices; a head never hides another by winning the selection.
``select="all"`` keeps every setting trained on two or more rules; ``head`` keeps one head. The
label set of each (corpus, rule) is the one the table's runs trained on; a corpus whose runs used
two files for one rule needs ``label_sets`` to say which.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from emostore.analysis.formatting import html_table, markdown_table, with_ci
from emostore.analysis.runs import AnalysisError, NoData, done_runs, rule_order, select_best
from emostore.analysis.scoring import check_metric, fold_mean
from emostore.evaluate.bootstrap import DEFAULT_BOOT
from emostore.evaluate.protocols import definition

SELECT = ("dev", "all")
IDENTITY = ["encoder", "corpus", "head", "setting"]
GROUP = ["encoder", "corpus", "head", "partition", "setting"]
#: What a README-style sweep lacks when it trained on one rule: the commands that add the others.
MORE_RULES = ("make a label set per rule (emostore labels aggregate MANIFEST --rule pr --out CORPUS.pr.jsonl; "
              "likewise ar) and run the sweep again with one --labels per rule (emostore sweep ... --labels "
              "CORPUS.mr.jsonl --labels CORPUS.pr.jsonl --labels CORPUS.ar.jsonl --out SWEEP; finished runs "
              "are skipped)")


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


def crossrule(results, metric: str = "macro_f1", n_boot: int = DEFAULT_BOOT, seed: int = 0, select: str = "dev",
              label_sets_by_rule: dict[str, str] | None = None, head: str | None = None) -> pd.DataFrame:
    """The cross-rule matrices in long form, one row per (model group, training rule, test rule).

    Columns: ``encoder``, ``corpus``, ``head``, ``setting``, ``train_rule``, ``test_rule``, ``value``,
    ``ci_low``, ``ci_high``, ``folds``, ``runs``, ``n`` (test utterances, summed over folds),
    ``labels`` (the test label set). ``label_sets_by_rule`` overrides the label set of a rule.
    """
    check_metric(metric)
    if select not in SELECT:
        raise AnalysisError(f"unknown selection {select!r}; known: {', '.join(SELECT)}")
    runs = done_runs(results, head=head)
    runs = runs.assign(head=runs["head"].where(runs["head"].notna(), "?"))  # a matrix names its head
    rules = rule_order(runs["rule"].dropna())
    if len(rules) < 2:
        raise NoData(f"the cross-rule matrix needs runs on at least 2 label-set rules; the table has "
                     f"only {', '.join(rules) or 'none'}: {MORE_RULES}")
    if select == "dev":
        winners = select_best(runs, ["encoder", "corpus", "head", "rule"])[GROUP].drop_duplicates()
        runs = runs.merge(winners, on=GROUP)
    sets = label_sets(runs, label_sets_by_rule)
    rows = []
    for key, group in runs.groupby(GROUP, sort=True, dropna=False):
        trained = rule_order(group["rule"].dropna())
        if len(trained) < 2:
            continue
        encoder, corpus, head_name, _, setting = key
        for tr in trained:
            for te in trained:
                labels = sets[(corpus, te)]
                est = fold_mean(group[group["rule"] == tr], metric, labels=labels, n_boot=n_boot, seed=seed)
                rows.append({"encoder": encoder, "corpus": corpus, "head": head_name, "setting": setting,
                             "train_rule": tr,
                             "test_rule": te, **est, "labels": labels})
    if not rows:
        raise NoData("no setting was trained on two or more rules with the same encoder, corpus, head and "
                     f"partition, so there is no cross-rule comparison to make: {MORE_RULES}")
    out = pd.DataFrame(rows)
    out.attrs.update(metric=metric, n_boot=n_boot, seed=seed)
    return out


def matrices(cross: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """One (identity, matrix) per model group (encoder, corpus, head, setting: one head per matrix);
    the matrix has training rules as rows, test rules as columns and the metric's value in each cell."""
    out = []
    for key, group in cross.groupby(IDENTITY, sort=True):
        order = rule_order(group["train_rule"])
        m = group.pivot(index="train_rule", columns="test_rule", values="value").reindex(index=order, columns=order)
        m.index.name, m.columns.name = "train \\ test", None
        out.append((dict(zip(IDENTITY, key)), m))
    return out


def format_crossrule(cross: pd.DataFrame, fmt: str = "md", digits: int = 3) -> str:
    """Every matrix as Markdown or HTML (cells ``value [low, high]``), or the long table as CSV."""
    if fmt == "csv":
        return cross.to_csv(index=False)
    if fmt not in ("md", "html"):
        raise AnalysisError(f"unknown format {fmt!r}; known: md, csv, html")
    metric = cross.attrs.get("metric", "macro_f1")
    n_boot = cross.attrs.get("n_boot")
    note = (f"Rows: the rule the model was trained on; columns: the rule of the test label set (its kept test "
            f"utterances). {definition(metric)}; mean over folds and seeds"
            + (f", [95% bootstrap CI, {n_boot} replicates]" if n_boot else "") + ". –: not computed.")
    parts = []
    for ident, _ in matrices(cross):
        group = cross[(cross[IDENTITY] == pd.Series(ident)).all(axis=1)]
        order = rule_order(group["train_rule"])
        cell = {(r.train_rule, r.test_rule): with_ci(r.value, r.ci_low, r.ci_high, digits)
                for r in group.itertuples()}
        header = ["train \\ test", *[t.upper() for t in order]]
        rows = [[tr.upper(), *[cell.get((tr, te), "–") for te in order]] for tr in order]
        title = f"{ident['encoder']} on {ident['corpus']}, head {ident['head']} ({ident['setting']})"
        if fmt == "md":
            parts.append(f"**{title}**\n\n{markdown_table(header, rows, caption=note)}")
        else:
            parts.append(f"<h4>{html.escape(title)}</h4>\n" + html_table(header, rows, caption=note, cls="crossrule"))
    return "\n".join(parts)
