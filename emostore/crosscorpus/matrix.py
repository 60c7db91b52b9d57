"""The cross-corpus matrix (EmoBox Table 5): rows = training corpus, columns = test corpus.

Read from a results table: a run is cross-corpus when its store carries the ``cross`` record
(:mod:`emostore.crosscorpus.pair`). Per encoder, head, training and test corpus, the setting with
the lowest mean dev loss (dev = the training corpus's split, never the test set) is scored with
:func:`emostore.analysis.scoring.fold_mean`: its value averaged over seeds, a 95 % percentile
bootstrap CI over the test clips. The diagonal (A -> A) is intra-corpus, on A's balanced set with
those clips held out of training, for reference.
"""

from __future__ import annotations

import functools

import pandas as pd

from emostore.analysis.formatting import html_table, markdown_table, with_ci
from emostore.analysis.runs import NoData, done_runs, head_of, select_best
from emostore.analysis.scoring import fold_mean

METRICS = (("ua", "UA"), ("wa", "WA"), ("macro_f1_single", "macro-F1"))


@functools.lru_cache(maxsize=None)
def cross_record(store: str) -> dict | None:
    """The ``cross`` record of a pair's store (None for any other store)."""
    import zarr

    try:
        return zarr.open_group(store, mode="r").attrs.get("cross")
    except Exception:  # noqa: BLE001 - a store that is gone or not ours: not a cross-corpus run
        return None


def cross_runs(results) -> pd.DataFrame:
    """The finished cross-corpus runs, with ``train_corpus``, ``test_corpus`` and ``head_label``."""
    runs = done_runs(results)
    recs = [cross_record(s) if isinstance(s, str) else None for s in runs["store"]]
    keep = [r is not None for r in recs]
    if not any(keep):
        raise NoData("no cross-corpus run in the results table (sweep with `cross = \"A->B\"`, see emostore.lab.inputs)")
    runs = runs[keep].copy()
    runs["train_corpus"] = [r["train"] for r in recs if r is not None]
    runs["test_corpus"] = [r["test"] for r in recs if r is not None]
    runs["head_label"] = [head_of(r) for r in runs.to_dict("records")]
    return runs.reset_index(drop=True)


def cross_matrix(results, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long table: encoder, head, train, test, metric, value, ci_low, ci_high, n, setting, settings_compared."""
    runs = cross_runs(results)
    best = select_best(runs, ["encoder", "head_label", "train_corpus", "test_corpus"])
    rows = []
    for (enc, head, tr, te), group in best.groupby(["encoder", "head_label", "train_corpus", "test_corpus"], sort=True):
        for m, _ in METRICS:
            est = fold_mean(group, m, n_boot=n_boot, seed=seed)
            rows.append({"encoder": enc, "head": head, "train": tr, "test": te, "metric": m, **est,
                         "setting": group["setting"].iloc[0],
                         "settings_compared": int(group["settings_compared"].iloc[0])})
    return pd.DataFrame(rows)


def format_matrix(long: pd.DataFrame, fmt: str = "md", digits: int = 1) -> str:
    """One train x test table per encoder, head and metric (percent, 95 % CI); ``fmt``: md | html | csv."""
    if fmt == "csv":
        return long.to_csv(index=False)
    names = dict(METRICS)
    out = []
    for (enc, head, m), t in long.groupby(["encoder", "head", "metric"], sort=False):
        corpora = sorted(set(t["train"]) | set(t["test"]))
        tests = [c for c in corpora if c in set(t["test"])]
        cells = {(r["train"], r["test"]): with_ci(100 * r["value"], 100 * r["ci_low"], 100 * r["ci_high"], digits)
                 for r in t.to_dict("records")}
        body = [[f"train {tr}", *[cells.get((tr, te), "–") for te in tests]]
                for tr in corpora if tr in set(t["train"])]
        caption = (f"{enc}, {head}: {names[m]} % on the test corpus's balanced set, 95 % bootstrap CI; "
                   "diagonal = intra-corpus")
        header = ["", *[f"test {te}" for te in tests]]
        out.append(markdown_table(header, body, caption) if fmt == "md" else html_table(header, body, caption))
    return "\n".join(out)
