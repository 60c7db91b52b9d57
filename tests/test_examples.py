"""The scripts in examples/ run on a real store, and what they compute agrees with a direct computation."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emostore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, *args) -> str:
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *map(str, args)], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_probe_curve_example_equals_a_probe_on_the_raw_pooled_rows(fbank_fold):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = _run("probe_curve", fbank_fold["store"])  # the manifest the store recorded
    curve = _load("probe_curve").probe_curve(fbank_fold["store"], fbank_fold["manifest"])
    assert out.splitlines() == [f"layer {k:2d}  UA {v:.3f}" for k, v in curve.items()]
    # the same probe on numpy rows matched to the conftest's own rows (not the store's metadata)
    fs = emostore.open_store(fbank_fold["store"])
    by_id = {r["id"]: r for r in fbank_fold["rows"]}
    y = [by_id[u]["emotion"] for u in fs.ids]
    groups = [by_id[u]["speaker"] for u in fs.ids]
    pred = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), fs.pooled(layer=0),
                             y, groups=groups, cv=GroupKFold(5))
    assert curve == {0: balanced_accuracy_score(y, pred)}
    assert curve[0] > 1 / 3  # fbank means carry some emotion (3 classes, chance 1/3)


def test_frames_head_example_trains_and_predicts_the_dev_part(fbank_fold):
    fb = fbank_fold
    out = _run("frames_head", fb["store"], fb["labels"], fb["part"], "f1", -1, 4)
    losses, ua, probs = _load("frames_head").train_head(fb["store"], fb["labels"], fb["part"], "f1", epochs=4)
    assert out.splitlines() == [f"epoch {e:2d}  train loss {v:.4f}" for e, v in enumerate(losses, 1)] + [f"dev UA {ua:.3f}"]
    assert losses[-1] < losses[0]  # it learns
    assert probs.shape == (len(fb["fold"]["dev"]), 3)
    np.testing.assert_allclose(probs.sum(1).numpy(), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def small_sweep(fbank_fold, tmp_path_factory):
    from emostore.sweep.config import expand
    from emostore.sweep.runner import run_sweep

    out = tmp_path_factory.mktemp("sweep")
    spec = {"store": fbank_fold["store"], "labels": fbank_fold["labels"], "partition": fbank_fold["part"],
            "fold": "f1", "head": ["probe", "weighted-sum"], "epochs": 2, "seed": [0, 1]}
    summary = run_sweep(expand(spec), out)
    assert summary.failed == 0
    return out


def test_results_plot_example_tables_the_runs_and_saves_a_figure(small_sweep, tmp_path):
    from emostore.sweep.results import gather

    png = tmp_path / "ua.png"
    out = _run("results_plot", small_sweep, png)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    table = _load("results_plot").ua_by_layer(small_sweep)
    rows = gather(small_sweep / "runs")  # the run folders' own files, not the SQLite table
    for head in ("probe", "weighted-sum"):
        want = np.mean([r["ua"] for r in rows if r["head"] == head])
        layer = -1 if head == "weighted-sum" else 0
        assert table.loc[layer, head] == pytest.approx(want)
    assert "probe" in out and "weighted-sum" in out
