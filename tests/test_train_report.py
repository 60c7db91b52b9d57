"""`train` says what it did: the test metrics of run.json with bootstrap CIs (equal to `evaluate`'s),
a warning when the kept epoch is the last one, and `--fold all` (one run per fold, then the mean).
`sweep --fold all` / ``fold = "all"`` expands to every fold of the partition."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.evaluate.files import evaluate_files
from emostore.evaluate.metrics import METRICS
from emostore.progress import INTERVAL_ENV
from emostore.sweep.config import expand

ROW = re.compile(r"^  (\w+) +(-?[\d.]+) +\[(-?[\d.]+), (-?[\d.]+)\] ", re.M)
MEAN_ROW = re.compile(r"^  (\w+) +(-?[\d.]+)  \(min", re.M)


def _train(fbank_fold, out, *extra, part=None, fold="f1", head="probe", env=None):
    args = ["train", "--store", fbank_fold["store"], "--labels", fbank_fold["labels"],
            "--partition", part or fbank_fold["part"], "--fold", fold, "--head", head, "--batch-size", "8",
            "--no-tensorboard", "--out", str(out), *extra]
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 0, r.output
    return r


def _rows(text: str) -> dict[str, tuple[float, float, float]]:
    return {k: (float(v), float(lo), float(hi)) for k, v, lo, hi in ROW.findall(text)}


def test_train_prints_run_json_test_metrics_with_the_cis_of_evaluate(fbank_fold, tmp_path):
    out = tmp_path / "r"
    r = _train(fbank_fold, out, "--epochs", "3", "--lr", "1e-2", "--quiet")
    rows = _rows(r.stdout)
    assert set(rows) == set(METRICS)
    rec = json.loads((out / "run.json").read_text())
    ev = evaluate_files(out / "predictions.jsonl", fbank_fold["labels"], ids=fbank_fold["fold"]["test"])
    for k, (value, lo, hi) in rows.items():
        assert value == pytest.approx(rec["test_metrics"][k], abs=5e-5)  # the run.json numbers
        assert (lo, hi) == pytest.approx((ev.metrics[k].ci_low, ev.metrics[k].ci_high), abs=5e-5)  # evaluate's CI
        assert lo <= value + 5e-5 and value <= hi + 5e-5
    assert f"test metrics on {rec['test_metrics']['n']} utterances" in r.stdout
    assert "macro_f1 is EMO-SUPERB's multi-label macro-F1" in r.stdout
    assert "macro_f1_single takes the argmax" in r.stdout
    assert "train probe f1" not in r.stderr  # --quiet: no progress


def test_warns_exactly_when_the_kept_epoch_is_the_last(fbank_fold, tmp_path):
    seen = set()
    for lr in ("1e-5", "1e-1"):  # a tiny lr: the dev loss still falls; a larger one: it turns up at the end
        out = tmp_path / lr
        r = _train(fbank_fold, out, "--epochs", "6", "--lr", lr, "-q", head="emobox")
        rec = json.loads((out / "run.json").read_text())
        last = rec["selected_epoch"] == 6
        seen.add(last)
        assert ("warning: the kept epoch is the last one (6 of 6)" in r.stderr) == last, r.stderr
    assert seen == {True, False}  # both cases were exercised


def test_train_fold_all_trains_each_fold_into_its_folder_prints_the_mean_and_epoch_lines(fbank_fold, tmp_path):
    fold = fbank_fold["fold"]
    part = tmp_path / "part.json"
    part.write_text(json.dumps({"f1": fold, "f2": {"train": fold["train"], "dev": fold["test"], "test": fold["dev"]}}))
    out = tmp_path / "all"
    r = _train(fbank_fold, out, "--epochs", "2", "--lr", "1e-2", part=str(part), fold="all",
               env={INTERVAL_ENV: "0"})  # not a terminal: plain lines, one per epoch
    for f in ("f1", "f2"):
        assert re.search(rf"^train probe {f}: 1/2 epoch \(50%\), [\d.]+ epoch/s, ETA \d+s, train loss [\d.]+, "
                         rf"dev loss [\d.]+ \(best epoch 1\)$", r.stderr, re.M), r.stderr
    recs = [json.loads((out / f / "run.json").read_text()) for f in ("f1", "f2")]
    assert [rec["config"]["fold"] for rec in recs] == ["f1", "f2"]
    assert "mean over 2 folds (f1, f2):" in r.stdout
    mean = {k: float(v) for k, v in MEAN_ROW.findall(r.stdout.split("mean over")[1])}
    for k in METRICS:
        assert mean[k] == pytest.approx(np.mean([rec["test_metrics"][k] for rec in recs]), abs=5e-5)


def test_sweep_fold_all_is_every_fold_of_the_partition(fbank_fold, tmp_path):
    fold = fbank_fold["fold"]
    part = tmp_path / "part.json"
    part.write_text(json.dumps({"a": fold, "b": fold, "c": fold}))
    spec = {"store": fbank_fold["store"], "labels": fbank_fold["labels"], "partition": str(part),
            "fold": "all", "head": ["probe", "weighted-sum"]}
    runs = expand(spec, stored_layers=lambda _: [0])
    assert sorted((r.config.head, r.config.fold) for r in runs) == sorted(
        (h, f) for h in ("probe", "weighted-sum") for f in "abc")
    named = expand({**spec, "fold": ["a", "c"]}, stored_layers=lambda _: [0])
    assert {r.run_id for r in named} < {r.run_id for r in runs}  # the same runs as naming the folds
