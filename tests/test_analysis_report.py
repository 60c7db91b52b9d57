"""Analysis of a sweep: leaderboard, cross-rule matrix, layer analysis, plots, the HTML report in a browser.

A real tiny sweep is trained once per module: fbank and Whisper tiny.en stores over 15 real EmoDB clips,
MR / PR / AR label sets, two speaker-disjoint folds, probe heads (one per Whisper layer) and
weighted-sum heads, plus one genuinely failed run; ``gather`` + ``write_results`` make the table.
Every number the analysis shows is checked against an independent computation
(``evaluate_files``, scikit-learn, the run files, hand-worked values).
"""

from __future__ import annotations

import html
import json
import re
from io import StringIO
import shutil
import struct
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import confusion_matrix as sk_confusion

from emostore import analysis
from emostore.analysis import plots
from emostore.analysis.runs import AnalysisError, NoData
from emostore.cli import main
from emostore.evaluate import EvaluationError, evaluate_files, paired_bootstrap, read_predictions
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.heads.config import TrainConfig
from emostore.labels.aggregate import aggregate_manifest, read_label_set, write_label_set
from emostore.manifests import load_manifest
from emostore.manifests.build import build_manifest
from emostore.manifests.records import write_manifest as write_utterances
from emostore.sweep.results import gather, load_results, write_results
from emostore.sweep.runner import run_one

from conftest import CREMA, CREMA_SOURCE, REPO, emodb_fold_rows, in_ci, need_data, write_manifest

RULES = ("mr", "pr", "ar")
N_BOOT = 200


# -- a real tiny sweep -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Runs over 15 real EmoDB clips (3 emotions, 5 speakers), folds f1 / f2 (dev and test speakers swapped)."""
    tmp = tmp_path_factory.mktemp("analysis")
    rows, f1 = emodb_fold_rows(per_train=1)
    mpath = write_manifest(tmp / "emodb.jsonl", rows)
    stores = {}
    for enc, name in (("fbank", "fbank"), ("whisper", "ct2-whisper")):
        stores[enc] = str(tmp / enc / "emodb.zarr")
        extract(load_manifest(mpath), stores[enc], ExtractOptions(encoder=name, frames=False,
                                                                  corpus="emodb"))
    labels = {}
    for rule in RULES:
        records, meta = aggregate_manifest(mpath, rule)
        labels[rule] = str(write_label_set(tmp / f"emodb.{rule}.jsonl", records, meta))
    f2 = {"train": f1["train"], "dev": f1["test"], "test": f1["dev"]}
    part = tmp / "folds.json"
    part.write_text(json.dumps({"f1": f1, "f2": f2}))
    runs = tmp / "sweep" / "runs"

    def train(name, store, rule, **kw):  # the sweep's own runner: run.json, or error.json on failure
        cfg = TrainConfig(**{"head": "probe", "epochs": 3, "lr": 1e-2, "batch_size": 8, **kw})
        spec = {"run_id": name, "store": stores[store], "labels": labels[rule], "partition": str(part),
                "config": asdict(cfg)}
        return run_one(spec, str(runs / name))

    for fold in ("f1", "f2"):
        for rule in RULES:
            train(f"fbank-probe-{rule}-{fold}", "fbank", rule, fold=fold)
            train(f"fbank-ws-{rule}-{fold}", "fbank", rule, fold=fold, head="weighted-sum")
            train(f"whisper-ws-{rule}-{fold}", "whisper", rule, fold=fold, head="weighted-sum", epochs=20)
        train(f"fbank-probe-slow-mr-{fold}", "fbank", "mr", fold=fold, lr=1e-3)
        for layer in range(5):
            train(f"whisper-probe-L{layer}-{fold}", "whisper", "mr", fold=fold, layer=layer)
    failed = train("fbank-probe-L7", "fbank", "mr", fold="f1", layer=7)  # a real failure: fbank has 1 layer
    write_results(gather(runs), tmp / "sweep" / "results.sqlite")
    return {"tmp": tmp, "dir": tmp / "sweep", "labels": labels, "part": str(part),
            "folds": {"f1": f1, "f2": f2}, "error": failed["error"]}


def _own_score(run_row, labels, folds, metric="macro_f1", n_boot=0):
    """evaluate_files of one run on ``labels`` over its fold's test ids (the independent reference)."""
    return evaluate_files(run_row["predictions"], labels, n_boot=n_boot, seed=0, ids=folds[run_row["fold"]]["test"])


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.slow
def test_fixture_table_is_real(sweep):
    df = load_results(sweep["dir"])
    assert (df["status"] == "done").sum() == 30 and (df["status"] == "failed").sum() == 1
    assert set(df.loc[df["status"] == "done", "encoder"]) == {"fbank", "whisper-tiny.en"}
    assert set(df["rule"].dropna()) == set(RULES)
    assert "layer 7" in sweep["error"] and (sweep["dir"] / "runs" / "fbank-probe-L7" / "error.json").exists()


# -- leaderboard: hand-worked ------------------------------------------------------------------


def _hand_table() -> pd.DataFrame:
    """A results table by hand: encoders A, B, C on corpora x, y; two settings for A on x."""
    rows = []

    def add(enc, corpus, fold, seed, lr, dev, f1, kld):
        rows.append({"run_id": f"{enc}-{corpus}-{fold}-{seed}-{lr}", "status": "done", "encoder": enc,
                     "store": f"/s/{corpus}-{enc}.zarr", "corpus": corpus, "labels": f"/l/{corpus}.mr.jsonl",
                     "rule": "mr", "head": "weighted-sum", "lr": lr, "fold": fold, "seed": seed,
                     "dev_loss": dev, "macro_f1": f1, "kld": kld})

    # A on x: setting lr=0.1 has the better test score but the worse dev loss -> lr=0.01 is chosen
    add("A", "x", "f1", 0, 0.1, 0.9, 0.99, 0.1)
    add("A", "x", "f2", 0, 0.1, 0.9, 0.99, 0.1)
    add("A", "x", "f1", 0, 0.01, 0.5, 0.50, 0.8)
    add("A", "x", "f1", 1, 0.01, 0.7, 0.60, 0.6)  # two seeds on f1: fold mean 0.55
    add("A", "x", "f2", 0, 0.01, 0.6, 0.45, 0.7)
    add("A", "y", "f1", 0, 0.01, 1.0, 0.30, 1.0)
    add("A", "y", "f2", 0, 0.01, 1.0, 0.40, 1.2)
    add("B", "x", "f1", 0, 0.01, 0.4, 0.70, 0.4)
    add("B", "x", "f2", 0, 0.01, 0.4, 0.50, 0.5)
    add("B", "y", "f1", 0, 0.01, 0.4, 0.35, 0.9)
    add("B", "y", "f2", 0, 0.01, 0.4, 0.35, 0.9)
    add("C", "x", "f1", 0, 0.01, 0.4, 0.80, 0.2)  # C has no run on y
    rows.append({"run_id": "broken", "status": "failed", "encoder": None, "store": "/s/x-C.zarr",
                 "labels": "/l/x.mr.jsonl", "error": "CUDA out of memory"})
    return pd.DataFrame(rows)


def _three_corpora() -> pd.DataFrame:
    """The hand table plus a third corpus z for A and B (a radar needs three corpora); A's z cell is won
    by an emobox setting, so the board's cells name two different heads."""
    t = _hand_table()
    extra = t[(t["corpus"] == "y") & t["encoder"].isin(["A", "B"])].assign(
        corpus="z", store=lambda d: d["store"].str.replace("/y-", "/z-"), labels="/l/z.mr.jsonl",
        run_id=lambda d: d["run_id"] + "-z")
    extra.loc[extra["encoder"] == "A", "head"] = "emobox"
    return pd.concat([t, extra], ignore_index=True)


def test_leaderboard_averages_and_ranks_by_hand():
    board = analysis.leaderboard(_hand_table(), "macro_f1")
    assert board.attrs["conditions"] == ["x", "y"]
    a, b, c = ({k: board.at[e, k] for k in board.columns} for e in "ABC")
    # A/x: dev-selected lr=0.01 (mean dev 0.6 < 0.9), fold means 0.55 and 0.45
    assert a["x"] == pytest.approx(0.50) and a["x std"] == pytest.approx(np.std([0.55, 0.45], ddof=1))
    assert a["x n"] == 3
    assert a["y"] == pytest.approx(0.35) and a["Average"] == pytest.approx((0.50 + 0.35) / 2)
    assert b["x"] == pytest.approx(0.60) and b["y"] == pytest.approx(0.35) and b["y std"] == 0.0
    assert b["Average"] == pytest.approx(0.475)
    assert c["x"] == pytest.approx(0.80) and np.isnan(c["x std"]) and c["x n"] == 1  # one fold: no spread
    assert np.isnan(c["y"]) and np.isnan(c["Average"]) and pd.isna(c["Rank"])  # incomplete row: not ranked
    assert (b["Rank"], a["Rank"]) == (1, 2) and list(board.index) == ["B", "A", "C"]
    cells = analysis.leaderboard_cells(_hand_table())
    chosen = cells.set_index(["encoder", "condition"]).loc[("A", "x")]
    assert "lr=0.01" in chosen["setting"] and chosen["settings_compared"] == 2
    assert chosen["mean_dev_loss"] == pytest.approx(0.6)


def test_lower_is_better_metric_ranks_ascending_and_formats():
    board = analysis.leaderboard(_hand_table(), "kld")
    # A: x = mean(0.7, 0.7) = 0.7, y = 1.1 -> 0.9; B: x 0.45, y 0.9 -> 0.675: B ranks first
    assert board.loc["A", "Average"] == pytest.approx(0.9) and board.loc["B", "Average"] == pytest.approx(0.675)
    assert board.loc["B", "Rank"] == 1 and board.loc["A", "Rank"] == 2
    md = analysis.format_leaderboard(board, "md")
    assert "lower is better" in md
    ws = "[weighted-sum]"  # every cell names the head of its setting
    assert f"| B | 0.450 ± 0.071 (n=2) {ws} | **0.900 ± 0.000 (n=2)** {ws} | **0.675** | 1 |" in md
    assert "| A | 0.700 ± 0.000 (n=3) [weighted-sum, best of 2] |" in md  # A/x: dev chose among 2 settings
    # C misses y: below the rule line, unranked, its partial average over its one cell; its x is the lowest: bold
    c_row = f"| C | **0.200 (n=1)** {ws} | – | 0.200 (of 1) | – |"
    assert md.index("| *not ranked: missing a cell") < md.index(c_row)
    back = pd.read_csv(StringIO(analysis.format_leaderboard(board, "csv")), index_col="encoder")
    pd.testing.assert_frame_equal(back[["x", "y", "Average"]], board[["x", "y", "Average"]].astype(float),
                                  check_names=False)
    html = analysis.format_leaderboard(board, "html")
    assert html.count("<tr>") == 4 and "<th>B</th>" in html


def test_leaderboard_errors_name_the_problem():
    t = _hand_table()
    with pytest.raises(NoData, match="no finished run.*1 failed, e.g. broken: CUDA out of memory"):
        analysis.leaderboard(t[t["status"] == "failed"])
    two_rules = t.copy()
    two_rules.loc[0:3, "rule"] = "ar"
    # rules never compete in one cell: rule is part of every condition once several rules are present
    assert analysis.leaderboard(two_rules, by=["corpus"]).attrs["conditions"] == ["x/mr", "x/ar", "y/mr"]
    assert analysis.leaderboard(two_rules).attrs["conditions"] == ["x/mr", "x/ar", "y/mr"]
    with pytest.raises(AnalysisError, match="conditions can be made of corpus, rule, head.*got speaker"):
        analysis.leaderboard(t, by=["speaker"])
    with pytest.raises(AnalysisError, match="unknown metric 'f2'"):
        analysis.leaderboard(t, "f2")
    no_dev = t.assign(dev_loss=np.nan)
    with pytest.raises(AnalysisError, match="no run has a dev loss"):
        analysis.leaderboard(no_dev)
    assert issubclass(AnalysisError, ValueError)


# -- on the real sweep -------------------------------------------------------------------------


@pytest.mark.slow
def test_leaderboard_on_real_runs_reads_test_metrics_of_dev_selected_settings(sweep):
    cells = analysis.leaderboard_cells(sweep["dir"]).set_index(["encoder", "condition"])
    table = analysis.done_runs(sweep["dir"])
    fb = cells.loc[("fbank", "emodb/mr")]
    assert fb["settings_compared"] == 3  # probe lr 1e-2 vs 1e-3 vs weighted-sum, picked by dev loss
    dev = table[(table["encoder"] == "fbank") & (table["rule"] == "mr")].groupby("setting")["dev_loss"].mean()
    assert fb["setting"] == dev.idxmin()
    chosen = table[table["run_id"].isin(fb["run_ids"].split())]
    own = [_own_score(r, sweep["labels"]["mr"], sweep["folds"]).metrics["macro_f1"].value
           for r in chosen.to_dict("records")]
    assert fb["mean"] == pytest.approx(np.mean(own), abs=1e-12)  # run.json's test_metrics == evaluate_files


@pytest.mark.slow
def test_crossrule_diagonal_is_each_runs_own_evaluate_files_score(sweep):
    cross = analysis.crossrule(sweep["dir"], n_boot=N_BOOT)
    table = analysis.done_runs(sweep["dir"])
    assert set(cross["encoder"]) == {"fbank", "whisper-tiny.en"}
    for r in cross.itertuples():
        runs = table[(table["encoder"] == r.encoder) & (table["setting"] == r.setting) & (table["head"] == r.head)
                     & (table["rule"] == r.train_rule)]
        assert len(runs) == 2  # one per fold
        ref = [_own_score(x, sweep["labels"][r.test_rule], sweep["folds"]).metrics["macro_f1"].value
               for x in runs.to_dict("records")]
        assert r.value == pytest.approx(np.mean(ref), abs=1e-12) and r.folds == 2 and r.n == 6
        assert r.ci_low <= r.value + 1e-12 and r.value - 1e-12 <= r.ci_high
        if r.train_rule == r.test_rule:  # the diagonal is the table's own test metric
            assert r.value == pytest.approx(runs["macro_f1"].mean(), abs=1e-12)
    # one fold: the cell's CI is evaluate_files' own bootstrap CI, replicate for replicate
    one = analysis.crossrule(table[table["fold"] == "f1"], n_boot=N_BOOT)
    for r in one[one["train_rule"] == one["test_rule"]].itertuples():
        x = table[(table["setting"] == r.setting) & (table["rule"] == r.train_rule) & (table["fold"] == "f1")
                  & (table["encoder"] == r.encoder)]
        ev = _own_score(x.iloc[0].to_dict(), sweep["labels"][r.test_rule], sweep["folds"], n_boot=N_BOOT)
        m = ev.metrics["macro_f1"]
        assert (r.value, r.ci_low, r.ci_high) == pytest.approx((m.value, m.ci_low, m.ci_high), abs=1e-12)
    ((ident, m),) = [x for x in analysis.matrices(cross) if x[0]["encoder"] == "fbank" and x[0]["head"] == "probe"]
    assert list(m.index) == list(m.columns) == ["mr", "pr", "ar"]


@pytest.mark.slow
def test_crossrule_errors(sweep, tmp_path):
    table = analysis.done_runs(sweep["dir"])
    with pytest.raises(NoData, match="at least 2 label-set rules; the table has only mr"):
        analysis.crossrule(table[table["rule"] == "mr"])
    moved = table.copy()
    moved.loc[moved["rule"] == "ar", "labels"] = str(tmp_path / "gone.ar.jsonl")
    with pytest.raises(AnalysisError, match=r"rule ar: label set .*gone\.ar\.jsonl does not exist"):
        analysis.crossrule(moved, n_boot=0)
    # the override names the label set to use instead
    fixed = analysis.crossrule(moved, n_boot=0, label_sets_by_rule={"ar": sweep["labels"]["ar"]})
    assert set(fixed["test_rule"]) == set(RULES)


@pytest.fixture(scope="module")
def crema(tmp_path_factory):
    """Real CREMA-D ratings: voice-only MR/PR/AR label sets, and per rule a predictor from the *face-only*
    raters of the same clips (their label set under that rule, smoothed; uniform where that rule
    excluded the clip): three predictors that differ only by the rule, on real disagreement."""
    need_data(CREMA, CREMA_SOURCE)
    tmp = tmp_path_factory.mktemp("crema")
    voice, face = tmp / "voice.jsonl", tmp / "face.jsonl"
    for path, modality in ((voice, "voice"), (face, "face")):  # actors 1001 and 1002 only: fast
        rows = build_manifest("crema-d", CREMA, tmp / "all.jsonl", modality=modality)
        write_utterances([u for u in rows if u.speaker in ("1001", "1002")], path)
    test_ids = [r["id"] for r in load_manifest(voice, require_audio=False).rows]
    part = tmp / "part.json"
    part.write_text(json.dumps({"f1": {"train": [], "dev": [], "test": test_ids}}))
    rows, labels = [], {}
    for rule in RULES:
        records, meta = aggregate_manifest(voice, rule)
        labels[rule] = str(write_label_set(tmp / f"voice.{rule}.jsonl", records, meta))
        fr, _ = aggregate_manifest(face, rule, smoothing=0.1)
        by_id = {r.id: r for r in fr}
        pred = tmp / f"face-{rule}.jsonl"
        pred.write_text("".join(json.dumps({"id": u, "probs": by_id[u].train if by_id[u].excluded is None
                                            else [1 / 6] * 6}) + "\n" for u in test_ids))
        rows.append({"run_id": f"face-{rule}", "status": "done", "encoder": "face raters", "corpus": "crema-d",
                     "store": None, "labels": labels[rule], "rule": rule, "head": "ratings", "fold": "f1",
                     "seed": 0, "dev_loss": 1.0, "partition": str(part), "predictions": str(pred)})
    return {"table": pd.DataFrame(rows), "labels": labels, "test": test_ids}


def test_crossrule_scores_each_row_on_every_rules_test_set_real_crema_d(crema):
    cross = analysis.crossrule(crema["table"], "macro_f1", n_boot=N_BOOT)
    assert len(cross) == 9
    for r in cross.itertuples():
        ev = evaluate_files(crema["table"].set_index("rule").loc[r.train_rule, "predictions"],
                            crema["labels"][r.test_rule], n_boot=N_BOOT, seed=0, ids=crema["test"])
        m = ev.metrics["macro_f1"]
        assert (r.value, r.ci_low, r.ci_high, r.n) == pytest.approx((m.value, m.ci_low, m.ci_high, ev.n), abs=1e-12)
    n = cross.drop_duplicates("test_rule").set_index("test_rule")["n"]
    assert n["mr"] < n["pr"] < n["ar"] == len(crema["test"])  # AR's test set holds what MR excluded
    ((_, m),) = analysis.matrices(cross)
    assert m.to_numpy().std(axis=0).min() > 0 and m.to_numpy().std(axis=1).min() > 0  # rows and columns differ
    md = analysis.format_crossrule(cross)
    assert "| train \\ test | MR | PR | AR |" in md
    assert sum(x.count("[") for x in md.splitlines() if x.startswith("| ")) == 9  # a CI in every cell


@pytest.mark.slow
def test_layer_weights_table_equals_the_json_files(sweep):
    w = analysis.layer_weights(sweep["dir"])
    table = analysis.done_runs(sweep["dir"])
    assert set(w["rule"]) == set(RULES) and set(w["encoder"]) == {"fbank", "whisper-tiny.en"}
    assert (w.loc[w["encoder"] == "fbank", "weight"] == 1.0).all()  # one layer: weight 1 by construction
    w = w[w["encoder"] == "whisper-tiny.en"]
    for (rule,), g in w.groupby(["rule"]):
        files = table[(table["head"] == "weighted-sum") & (table["rule"] == rule)
                      & (table["encoder"] == "whisper-tiny.en")]["layer_weights"]
        read = [json.loads(Path(p).read_text()) for p in files]
        assert len(read) == 2 and all(x["layers"] == [0, 1, 2, 3, 4] for x in read)
        assert g["layer"].tolist() == read[0]["layers"]
        np.testing.assert_allclose(g["weight"], np.mean([x["weights"] for x in read], axis=0), rtol=0, atol=1e-15)
        np.testing.assert_allclose(g["std"], np.std([x["weights"] for x in read], axis=0, ddof=1), atol=1e-15)
        assert g["weight"].sum() == pytest.approx(1.0)
    m = analysis.layer_weight_matrix(w)
    assert list(m.columns) == [0, 1, 2, 3, 4] and list(m.index) == ["mr", "pr", "ar"]  # only the rule varies
    np.testing.assert_allclose(m.loc["pr"], w[w["rule"] == "pr"]["weight"])


@pytest.mark.slow
def test_probe_curve_values_equal_evaluate_files_per_layer(sweep):
    curves = analysis.probe_curves(sweep["dir"], n_boot=N_BOOT)
    wc = curves[curves["encoder"] == "whisper-tiny.en"]
    assert wc["layer"].tolist() == [0, 1, 2, 3, 4]
    table = analysis.done_runs(sweep["dir"])
    for r in wc.itertuples():
        runs = table[table["run_id"].isin([f"whisper-probe-L{r.layer}-f1", f"whisper-probe-L{r.layer}-f2"])]
        ref = [_own_score(x, sweep["labels"]["mr"], sweep["folds"]).metrics["macro_f1"].value
               for x in runs.to_dict("records")]
        assert r.value == pytest.approx(np.mean(ref), abs=1e-12) and r.runs == 2 and r.folds == 2
    one = analysis.probe_curves(table[table["fold"] == "f2"], "ua", n_boot=N_BOOT)
    for r in one[one["encoder"] == "whisper-tiny.en"].itertuples():
        x = table[table["run_id"] == f"whisper-probe-L{r.layer}-f2"].iloc[0].to_dict()
        m = _own_score(x, sweep["labels"]["mr"], sweep["folds"], n_boot=N_BOOT).metrics["ua"]
        assert (r.value, r.ci_low, r.ci_high) == pytest.approx((m.value, m.ci_low, m.ci_high), abs=1e-12)
    fb = curves[curves["encoder"] == "fbank"]
    assert set(fb["layer"]) == {0}  # a probe without --layer read the store's last (only) layer


@pytest.mark.slow
def test_confusion_matrix_matches_sklearn(sweep):
    table = analysis.done_runs(sweep["dir"])
    runs = table[table["run_id"].str.startswith("whisper-probe-L4-")]
    cm = analysis.confusion_matrix(runs)
    records, meta = read_label_set(sweep["labels"]["mr"])
    by_id = {r.id: r for r in records}
    true, pred = [], []
    for r in runs.to_dict("records"):
        probs = read_predictions(r["predictions"])
        for u in sweep["folds"][r["fold"]]["test"]:
            true.append(int(np.argmax(by_id[u].train)))
            pred.append(int(np.argmax(probs[u])))
    expected = sk_confusion(true, pred, labels=range(len(meta["classes"])))
    np.testing.assert_array_equal(cm.to_numpy(), expected)
    assert list(cm.index) == list(cm.columns) == meta["classes"] and cm.to_numpy().sum() == 6


@pytest.mark.slow
def test_learning_curves_come_from_run_json(sweep):
    table = analysis.done_runs(sweep["dir"])
    one = table[table["run_id"] == "whisper-ws-ar-f2"]
    lc = analysis.learning_curves(one)
    rec = json.loads((Path(one["out_dir"].iloc[0]) / "run.json").read_text())
    assert lc["dev_loss"].tolist() == rec["dev_losses"] and lc["train_loss"].tolist() == rec["train_losses"]
    assert lc.loc[lc["selected"], "epoch"].tolist() == [rec["selected_epoch"]]


@pytest.mark.slow
def test_evaluate_files_restricted_to_ids(sweep):
    pred = analysis.done_runs(sweep["dir"]).iloc[0]["predictions"]
    with pytest.raises(EvaluationError, match="have no prediction"):
        evaluate_files(pred, sweep["labels"]["mr"], n_boot=0)  # the corpus-wide label set
    with pytest.raises(EvaluationError, match="1 requested id"):
        evaluate_files(pred, sweep["labels"]["mr"], n_boot=0, ids=["nope"])


# -- plots -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_plots_write_png_and_svg_of_the_stated_size(sweep, tmp_path):
    board = analysis.leaderboard(_three_corpora())
    w = analysis.layer_weights(sweep["dir"])
    w = w[w["encoder"] == "whisper-tiny.en"]
    curves = analysis.probe_curves(sweep["dir"], n_boot=50)
    table = analysis.done_runs(sweep["dir"])
    runs = table[table["run_id"].str.startswith("whisper-probe-L2-")]
    drawn = {
        "radar": plots.radar_chart(board, tmp_path / "radar"),
        "confusion": plots.confusion_plot(analysis.confusion_matrix(runs), tmp_path / "cm", "L2"),
        "layer_weights": plots.layer_weights_plot(w, tmp_path / "lw"),
        "layer_heatmap": plots.layer_heatmap(analysis.layer_weight_matrix(w), tmp_path / "hm"),
        "probe_curves": plots.probe_curves_plot(curves, tmp_path / "pc"),
        "learning_curves": plots.learning_curves_plot(analysis.learning_curves(runs), tmp_path / "lc"),
    }
    for kind, (png, svg) in drawn.items():
        width, height = plots.SIZES[kind]
        assert _png_size(png) == (round(width * plots.DPI), round(height * plots.DPI)), kind
        assert png.stat().st_size > 5000  # drawn, not blank
        assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    # one corpus with three rules is 3 conditions but not 3 corpora: no radar
    with pytest.raises(NoData, match="at least 3 corpora and this leaderboard has 1 \\(emodb\\)"):
        plots.radar_chart(analysis.leaderboard(sweep["dir"]), tmp_path / "r1")


# -- commands ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_leaderboard_crossrule_layers_compare(sweep, tmp_path):
    cli = CliRunner()
    res = cli.invoke(main, ["leaderboard", str(sweep["dir"]), "--metric", "macro_f1", "--format", "csv"])
    assert res.exit_code == 0, res.output
    board = analysis.leaderboard(sweep["dir"], "macro_f1")
    back = pd.read_csv(StringIO(res.output), index_col="encoder")
    np.testing.assert_allclose(back["Average"], board["Average"], rtol=1e-12)
    out = tmp_path / "lb.html"
    assert cli.invoke(main, ["leaderboard", str(sweep["dir"] / "results.sqlite"), "-o", str(out)]).exit_code == 0
    assert out.read_text().startswith('<table class="leaderboard">')

    res = cli.invoke(main, ["crossrule", str(sweep["dir"]), "--n-boot", "50", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(StringIO(res.output))) == 27  # 3 (encoder, head) models × 3 × 3
    res = cli.invoke(main, ["crossrule", str(sweep["dir"]), "--labels", "ar"])
    assert res.exit_code == 1 and "Error: --labels takes RULE=PATH, got 'ar'" in res.output

    res = cli.invoke(main, ["layers", str(sweep["dir"]), "--n-boot", "50", "--out", str(tmp_path / "layers")])
    assert res.exit_code == 0, res.output
    for name in ("layers.csv", "layer_matrix.csv", "probes.csv", "layer-weights-whisper-tiny.en.png",
                 "probe-curves.svg"):
        assert (tmp_path / "layers" / name).stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "layers" / "layers.csv"),
                                  analysis.layer_weights(sweep["dir"]), check_dtype=False)

    table = analysis.done_runs(sweep["dir"])
    a, b = (table.set_index("run_id").loc[f"whisper-probe-L{k}-f1", "predictions"] for k in (4, 0))
    args = ["compare", a, b, "--labels", sweep["labels"]["mr"], "--n-boot", "300", "--seed", "5"]
    res = cli.invoke(main, args)
    assert res.exit_code == 1 and "add the partition and fold" in res.output  # label set covers the corpus
    res = cli.invoke(main, [*args, "--partition", sweep["part"], "--fold", "f1", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    ids = sweep["folds"]["f1"]["test"]
    ref = paired_bootstrap(evaluate_files(a, sweep["labels"]["mr"], 0, ids=ids).scores,
                           evaluate_files(b, sweep["labels"]["mr"], 0, ids=ids).scores, "ua", 300, 5)
    assert got["metric"] == "ua"  # a single-label label set: UA by default
    assert got["p_value"] == ref.p_value and got["delta"] == pytest.approx(ref.delta) and got["n"] == 3
    res = cli.invoke(main, [*args[:-4], "--metric", "nope", "--partition", sweep["part"], "--fold", "f1"])
    assert res.exit_code == 1 and "unknown metric 'nope'" in res.output


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.slow
def test_report_cli_end_to_end_in_headless_chromium(sweep, tmp_path):
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["report", str(sweep["dir"]), "--out", str(out), "--n-boot", "100"])
    assert res.exit_code == 0, res.output
    for name in ("index.html", "leaderboard.md", "leaderboard.csv", "crossrule.csv", "layers.csv", "probes.csv",
                 "summary.json"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == {"done": 30, "failed": 1} and summary["rules"] == list(RULES)
    assert summary["crossrule_matrices"] == 3 and summary["layer_weights"] == 6
    assert summary["metric"] == "ua" and summary["protocol"] == "emobox"  # EmoDB's label sets are single-label
    assert [r["encoder"] for r in summary["leaderboard"]] == list(analysis.leaderboard(sweep["dir"], "ua").index)
    # the layer tables are the ones `emostore layers` writes (one writer); single-layer fbank is in the
    # weights table but gets no heat-map row
    layers = tmp_path / "layers"
    assert CliRunner().invoke(main, ["layers", str(sweep["dir"]), "--n-boot", "100", "--out", str(layers)]).exit_code == 0
    for name in ("layers.csv", "layer_matrix.csv", "probes.csv"):
        assert (layers / name).read_text() == (out / name).read_text(), name
    assert "fbank" in (out / "layers.csv").read_text() and "fbank" not in (out / "layer_matrix.csv").read_text()
    page = (out / "index.html").read_text()
    assert not re.search(r"(https?:)?//[a-z]", page.replace("file://", ""))  # no network URL
    assert "<script src" not in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) >= 6 and all(not s.startswith("/") and (out / s).is_file() for s in srcs)
    assert html.escape(sweep["error"]) in page  # the failed run with its error

    exe = _chromium()
    if exe is None:
        why = "no chromium binary (apt-get install -y chromium): the page was checked as text only"
        if in_ci():
            pytest.fail(f"CI=true runs every test: {why}", pytrace=False)
        pytest.skip(why)
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]
    dom = subprocess.run([*common, "--dump-dom", (out / "index.html").as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    body = re.search(r"<body ([^>]*)>", dom).group(1)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert total == len(srcs) and loaded == total  # every figure decoded in the browser
    board = re.search(r'<table class="leaderboard">.*?</table>', dom, re.S).group(0)
    for enc in ("fbank", "whisper-tiny.en"):
        assert re.search(rf"<tr><th>{re.escape(enc)}</th>(<td>.*?</td>){{5}}</tr>", board), enc
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,2000", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert _png_size(shot) == (1280, 2000)


def test_evaluate_does_not_import_analysis():
    """emostore.analysis builds on emostore.evaluate, never the other way round (no import cycle)."""
    code = ("import sys, emostore.evaluate as e, emostore.labels.compare\n"
            "print('emostore.analysis' in sys.modules, hasattr(e, 'layer_weights'))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert p.stdout.split() == ["False", "False"]


# -- a leaderboard that cannot mislead: missing cells, heads, protocols --------------------------


@pytest.fixture(scope="module")
def missing_cell(sweep):
    """The real sweep with one encoder's cells dropped where it does not win: that encoder is then better on
    every cell it has, and incomplete (as a sweep whose last run never finished)."""
    table = analysis.done_runs(sweep["dir"])
    full = analysis.leaderboard(table)
    conds = full.attrs["conditions"]
    wins = {e: [c for c in conds if full.at[e, c] > full.drop(index=e)[c].max()] for e in full.index}
    better = max(wins, key=lambda e: len(wins[e]))
    assert wins[better], f"fixture needs an encoder that strictly wins a cell: {full[conds]}"
    drop = [c for c in conds if c not in wins[better]] or conds[-1:]
    rules = [c.split("/")[1] for c in drop]
    kept = table[~((table["encoder"] == better) & table["rule"].isin(rules))]
    other = next(e for e in full.index if e != better)
    return {"table": kept, "better": better, "other": other, "dropped": drop,
            "shared": [c for c in conds if c not in drop]}


@pytest.mark.slow
def test_incomplete_row_is_never_ranked_above_or_below_and_shows_its_partial_average(missing_cell):
    """The issue's case: Whisper missing a cell used to print "– | –" under FBANK's Rank 1."""
    mc = missing_cell
    board = analysis.leaderboard(mc["table"])
    better, other = board.loc[mc["better"]], board.loc[mc["other"]]
    assert list(board.index) == [mc["other"], mc["better"]]  # ranked rows first, then below the line
    assert other["Rank"] == 1 and other["Cells"] == 3 and pd.isna(other["Partial average"])
    assert pd.isna(better["Rank"]) and pd.isna(better["Average"]) and better["Cells"] == len(mc["shared"])
    assert better["Partial average"] == pytest.approx(np.mean([better[c] for c in mc["shared"]]), abs=1e-12)
    # the incomplete encoder beats the ranked one on every shared cell, and the table shows it
    assert all(better[c] > other[c] for c in mc["shared"])
    md = analysis.format_leaderboard(board, "md")
    lines = md.splitlines()
    rule_at = next(i for i, x in enumerate(lines) if x.startswith("| *not ranked: missing a cell"))
    assert lines[rule_at - 1].startswith(f"| {mc['other']} |") and lines[rule_at + 1].startswith(f"| {mc['better']} |")
    row = lines[rule_at + 1].split(" | ")
    assert row[-2] == f"{better['Partial average']:.3f} (of {len(mc['shared'])})" and row[-1] == "– |"
    assert sum(cell.startswith("**") for cell in row[1:-2]) == len(mc["shared"])  # its cells are bold
    html_text = analysis.format_leaderboard(board, "html")
    assert html_text.index('<tbody class="below-rule">') < html_text.index(f"<th>{mc['better']}</th>")
    assert html_text.index(f"<th>{mc['other']}</th>") < html_text.index('<tbody class="below-rule">')
    back = pd.read_csv(StringIO(analysis.format_leaderboard(board, "csv")), index_col="encoder")
    assert back.loc[mc["better"], "Partial average"] == pytest.approx(better["Partial average"])
    assert np.isnan(back.loc[mc["better"], "Rank"]) and back.loc[mc["other"], "Rank"] == 1


@pytest.mark.slow
def test_every_cell_names_the_head_that_won_it_in_md_csv_and_html(sweep):
    cells = analysis.leaderboard_cells(sweep["dir"])
    table = analysis.done_runs(sweep["dir"]).set_index("run_id")
    for r in cells.itertuples():  # the head is the chosen runs' own head
        heads = set(table.loc[r.run_ids.split(), "head"])
        assert heads == {r.head_used.split(" ")[0]} and r.head_used.startswith(r.setting.split()[0][5:])
    board = analysis.board_from_cells(cells)
    md = analysis.format_leaderboard(board, "md")
    csv = pd.read_csv(StringIO(analysis.format_leaderboard(board, "csv")), index_col="encoder")
    html_text = analysis.format_leaderboard(board, "html")
    for r in cells.itertuples():
        assert csv.loc[r.encoder, f"{r.condition} head"] == r.head_used
        assert csv.loc[r.encoder, f"{r.condition} settings"] == r.settings_compared
        note = r.head_used + (f", best of {r.settings_compared}" if r.settings_compared > 1 else "")
        row = next(x for x in md.splitlines() if x.startswith(f"| {r.encoder} |"))
        assert f"[{note}]" in row
        html_row = re.search(rf"<tr><th>{re.escape(r.encoder)}</th>.*?</tr>", html_text, re.S).group(0)
        assert f'<br><span class="note">{note}</span>' in html_row
    assert cells["settings_compared"].max() > 1 and cells["head_used"].nunique() > 1  # the case worth marking
    assert "[head] = the head of that setting, 'best of k'" in md
    assert "The line under a value = the head of that setting" in html_text


@pytest.mark.slow
def test_report_and_leaderboard_split_by_head(sweep, tmp_path):
    res = CliRunner().invoke(main, ["leaderboard", str(sweep["dir"]), "--by", "head", "--metric", "ua", "--format", "csv"])
    assert res.exit_code == 0, res.output
    back = pd.read_csv(StringIO(res.output), index_col="encoder")
    assert {"emodb/mr/probe", "emodb/mr/weighted-sum", "emodb/ar/weighted-sum"} <= set(back.columns)
    assert back.loc["whisper-tiny.en", "emodb/mr/probe head"].startswith("probe L")  # the best probe layer
    out = tmp_path / "by-head"
    res = CliRunner().invoke(main, ["report", str(sweep["dir"]), "--out", str(out), "--by", "head", "--n-boot", "20"])
    assert res.exit_code == 0, res.output
    cells = pd.read_csv(out / "leaderboard_cells.csv")
    assert (cells["head"] == cells["head_used"].str.split(" ").str[0]).all()  # one head per column
    assert json.loads((out / "summary.json").read_text())["by"] == ["head"]
    assert "emodb/mr/weighted-sum" in (out / "leaderboard.md").read_text()


@pytest.mark.slow
def test_crossrule_compares_one_head_at_a_time(sweep):
    cross = analysis.crossrule(sweep["dir"], n_boot=0)
    table = analysis.done_runs(sweep["dir"])
    assert set(map(tuple, cross[["encoder", "head"]].drop_duplicates().to_numpy())) == {
        ("fbank", "probe"), ("fbank", "weighted-sum"), ("whisper-tiny.en", "weighted-sum")}
    for ident, m in analysis.matrices(cross):
        assert ident["setting"].startswith(f"head={ident['head']} ") and list(m.index) == list(RULES)
    # dev selection per head: fbank's probe matrices are the probe settings that won some training rule
    # among probe settings only, and were trained on two or more rules
    probe = table[(table["encoder"] == "fbank") & (table["head"] == "probe")]
    won = {g.groupby("setting")["dev_loss"].mean().idxmin() for _, g in probe.groupby("rule")}
    expected = {x for x in won if probe.loc[probe["setting"] == x, "rule"].nunique() >= 2}
    got = set(cross.loc[(cross["encoder"] == "fbank") & (cross["head"] == "probe"), "setting"])
    assert expected and got == expected
    assert set(analysis.crossrule(sweep["dir"], n_boot=0, head="probe")["head"]) == {"probe"}
    md = analysis.format_crossrule(cross)
    assert md.count("**fbank on emodb, head probe (head=probe") == 1 and "EMO-SUPERB" in md


@pytest.mark.slow
def test_crossrule_on_one_rule_says_which_commands_add_rules(sweep):
    one = analysis.done_runs(sweep["dir"], rule="mr")
    with pytest.raises(NoData, match=r"only mr: make a label set per rule \(emostore labels aggregate MANIFEST "
                                     r"--rule pr .*one --labels per rule"):
        analysis.crossrule(one)
    res = CliRunner().invoke(main, ["crossrule", str(sweep["dir"]), "--head", "no-such-head"])
    assert res.exit_code == 1 and "no finished run in the results table with head=no-such-head" in res.output


@pytest.mark.slow
def test_layer_weight_figures_are_per_encoder_and_skip_single_layer_encoders(sweep, tmp_path):
    w = analysis.layer_weights(sweep["dir"])
    figures, single = plots.layer_weights_plots(w, tmp_path / "lw")
    assert single == ["fbank"] and list(figures) == ["whisper-tiny.en"]
    png, svg = figures["whisper-tiny.en"]
    assert png.name == "lw-whisper-tiny.en.png" and _png_size(png) == (800, 400)
    with pytest.raises(AnalysisError, match="one layer-weight figure per encoder; got fbank, whisper-tiny.en"):
        plots.layer_weights_plot(w, tmp_path / "both")


@pytest.mark.slow
def test_protocol_picks_the_metrics_and_every_table_names_its_definition(sweep):
    from emostore.evaluate.metrics import METRICS
    from emostore.evaluate.protocols import DEFINITIONS, PROTOCOLS, pick_metrics, protocol_for_labels

    assert set(DEFINITIONS) == set(METRICS) and all(m in METRICS for ms in PROTOCOLS.values() for m in ms)
    assert pick_metrics() == ("macro_f1",) and pick_metrics(protocol="emobox") == ("ua", "wa", "macro_f1_single")
    assert pick_metrics("kld", "emobox") == ("kld",)
    with pytest.raises(EvaluationError, match="unknown protocol 'superb'; known: emo-superb, emobox"):
        pick_metrics(protocol="superb")
    cli = CliRunner()
    res = cli.invoke(main, ["leaderboard", str(sweep["dir"]), "--protocol", "emobox", "--format", "csv"])
    assert res.exit_code == 0, res.output
    back = pd.read_csv(StringIO(res.output))
    assert list(dict.fromkeys(back["metric"])) == ["ua", "wa", "macro_f1_single"] and len(back) == 6
    for m in ("ua", "wa", "macro_f1_single"):
        ref = analysis.leaderboard(sweep["dir"], m)
        got = back[back["metric"] == m].set_index("encoder")["emodb/mr"]
        np.testing.assert_allclose(got.loc[ref.index], ref["emodb/mr"], rtol=1e-12)
    # without --protocol the label sets decide: EmoDB's are single-label, so EmoBox's UA leads
    assert cli.invoke(main, ["leaderboard", str(sweep["dir"])]).output == \
        cli.invoke(main, ["leaderboard", str(sweep["dir"]), "--protocol", "emobox"]).output
    assert protocol_for_labels(sweep["labels"].values()) == "emobox"
    md = cli.invoke(main, ["leaderboard", str(sweep["dir"]), "--protocol", "emo-superb"]).output
    assert md.startswith("**macro-F1 (multi-label, share > 1/C)**")
    assert "macro-F1, multi-label (EMO-SUPERB): a class is on where its share > 1/C" in md
    md = cli.invoke(main, ["leaderboard", str(sweep["dir"]), "--protocol", "emobox"]).output
    assert md.count("(EmoBox)") >= 3 and "single-label (EmoBox): argmax prediction" in md
    # the two F1s are different numbers on the same runs: a label matters
    a, b = analysis.leaderboard(sweep["dir"], "macro_f1"), analysis.leaderboard(sweep["dir"], "macro_f1_single")
    assert not np.allclose(a["emodb/mr"], b.loc[a.index, "emodb/mr"])


@pytest.mark.slow
def test_report_on_a_sweep_with_a_missing_cell_captions_every_table(missing_cell, tmp_path):
    out = tmp_path / "report"
    analysis.write_report(missing_cell["table"], out, n_boot=20, protocol="emobox")
    page = (out / "index.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] == ["ua", "wa", "macro_f1_single"]
    rows = {r["encoder"]: r for r in summary["leaderboard"]}
    assert rows[missing_cell["better"]]["rank"] is None and rows[missing_cell["better"]]["partial_average"] > 0
    assert rows[missing_cell["other"]]["rank"] == 1
    tables = re.findall(r"<table.*?</table>", page, re.S)
    assert len(tables) >= 8 and all("<caption>" in t for t in tables)  # every table explains itself
    assert "caption { caption-side: bottom;" in page
    board = tables[0]
    assert all(k in board for k in ("Bold: the best value", "–: no finished run", "Rank: of the Average"))
    assert page.count('<table class="leaderboard">') == 3 and page.count('<tbody class="below-rule">') == 3
    assert "no radar chart: it needs at least 3 corpora and this leaderboard has 1 (emodb)" in page
    assert "fbank: a single layer, whose weight is 1 by construction; no layer-weight figure or heat-map row" in page
    assert (out / "plots" / "layer-weights-whisper-tiny.en.png").is_file()
    assert not (out / "plots" / "radar.png").exists()
