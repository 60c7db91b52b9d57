"""Evaluation metrics and divergences vs scikit-learn / scipy, hand-worked cases, bootstrap CIs, the paired test, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from sklearn.metrics import accuracy_score, f1_score, recall_score

from emostore.cli import main
from emostore.evaluate import (
    EPS,
    EvaluationError,
    bootstrap_ci,
    compute_metrics,
    evaluate_arrays,
    evaluate_files,
    paired_bootstrap,
    score_utterances,
)
from emostore.labels.aggregate import share_positive
from emostore.labels.compare import js_divergence


def random_case(rng, n, c):
    probs = rng.dirichlet(np.full(c, 0.7), n)
    votes = np.stack([rng.multinomial(5, rng.dirichlet(np.ones(c))) for _ in range(n)])  # 5 raters each
    target = votes / votes.sum(1, keepdims=True)
    test = (votes * c > votes.sum(1, keepdims=True)).astype(int)
    return probs, target, test


# --- agreement with scikit-learn / scipy on random cases ---------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_metrics_match_sklearn_and_scipy(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(5, 300)), int(rng.integers(2, 9))
    probs, target, test = random_case(rng, n, c)
    probs = probs * rng.uniform(0.5, 3.0, (n, 1))  # unnormalised scores are read as shares
    m = evaluate_arrays(probs, target, test)
    p = probs / probs.sum(1, keepdims=True)
    y, yhat = target.argmax(1), p.argmax(1)
    assert m["macro_f1"] == pytest.approx(f1_score(test, share_positive(p), average="macro", zero_division=0))
    labels = list(range(c))
    assert m["ua"] == pytest.approx(recall_score(y, yhat, labels=labels, average="macro", zero_division=np.nan))
    assert m["wa"] == pytest.approx(accuracy_score(y, yhat))
    assert m["macro_f1_single"] == pytest.approx(f1_score(y, yhat, average="macro", zero_division=0))
    q = (p + EPS) / (1 + c * EPS)
    assert m["kld"] == pytest.approx(np.mean([entropy(t, qq) for t, qq in zip(target, q)]))
    assert m["jsd"] == pytest.approx(np.mean([jensenshannon(pp, t, base=2) ** 2 for pp, t in zip(p, target)]),
                                     abs=1e-12)
    if set(y) == set(range(c)):  # every class in truth: UA is plain sklearn macro recall
        assert m["ua"] == pytest.approx(recall_score(y, yhat, average="macro"))


@pytest.mark.parametrize("zd", [0.0, 1.0, np.nan])
def test_multilabel_zero_division_matches_sklearn(zd):
    rng = np.random.default_rng(11)
    probs, target, test = random_case(rng, 30, 5)
    probs[:, -1], test[:, -1] = 0.0, 0  # the last class: absent from truth and prediction
    probs /= probs.sum(1, keepdims=True)
    s = score_utterances(probs, target, test)
    ml_pred = share_positive(probs)
    assert ((test.sum(0) == 0) & (ml_pred.sum(0) == 0)).any()
    assert compute_metrics(s, zd)["macro_f1"] == pytest.approx(
        f1_score(test, ml_pred, average="macro", zero_division=zd))


# --- hand-worked examples -------------------------------------------------------------------

def test_js_divergence_by_hand_and_scipy():
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    # M = (.75, .25); JSD = H(M) - (H(P) + H(Q)) / 2 = H(.75, .25) - 1/2
    h_m = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert js_divergence(p, q) == pytest.approx(h_m - 0.5, abs=1e-12)
    assert js_divergence(p, np.array([0.0, 1.0])) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(5), 20), rng.dirichlet(np.ones(5), 20)
    ref = np.array([jensenshannon(x, y, base=2) ** 2 for x, y in zip(a, b)])
    assert np.allclose(js_divergence(a, b), ref, atol=1e-12)


def test_strict_one_over_c_threshold_hand_worked():
    # C = 4, so the threshold is 0.25; a share of exactly 0.25 is negative
    probs = [[0.25, 0.25, 0.25, 0.25],  # nothing positive
             [0.5, 0.25, 0.25, 0.0],  # class 0 only
             [0.26, 0.26, 0.24, 0.24]]  # classes 0 and 1
    test = [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0]]
    target = [[1, 0, 0, 0], [1, 0, 0, 0], [0.5, 0, 0.5, 0]]
    m = evaluate_arrays(probs, target, test)
    # class 0: TP 2, FN 1 -> 4/5; class 1: FP 1 -> 0; class 2: FN 1 -> 0;
    # class 3: absent from truth and prediction -> zero_division = 0
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 0 + 0) / 4)
    assert evaluate_arrays(probs, target, test, zero_division=np.nan)["macro_f1"] == pytest.approx(0.8 / 3)
    assert evaluate_arrays(probs, target, test, zero_division=1.0)["macro_f1"] == pytest.approx(1.8 / 4)
    # single-label: truth argmax 0, 0, 0 (tie 0/2 -> first class); predictions 0, 0, 0 (ties -> first)
    assert (m["ua"], m["wa"], m["macro_f1_single"]) == (1.0, 1.0, 1.0)
    assert score_utterances(probs, target, test).ties.tolist() == [False, False, True]


def test_single_label_hand_worked_and_absent_class():
    # truth classes 0, 0, 1, 1; predicted 0, 1, 1, 1; class 2 absent from truth and prediction
    target = np.eye(3)[[0, 0, 1, 1]]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.3, 0.4, 0.3]])
    m = evaluate_arrays(probs, target, target.astype(int))
    assert m["wa"] == pytest.approx(3 / 4)
    assert m["ua"] == pytest.approx((1 / 2 + 1) / 2)  # class 2 has no recall: left out
    # F1: class 0 = 2*1/(2+0+1) = 2/3, class 1 = 2*2/(4+1+0) = 4/5; class 2 not counted
    assert m["macro_f1_single"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    # multi-label view of the same: binarised preds 100, 010, 010, 010 (0.4 > 1/3, 0.3 < 1/3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)


def test_divergences_hand_worked():
    target = [[0.5, 0.5, 0.0]]
    m = evaluate_arrays([[0.5, 0.5, 0.0]], target, [[1, 1, 0]])
    assert m["kld"] == pytest.approx(0.0, abs=1e-6) and m["jsd"] == pytest.approx(0.0, abs=1e-12)
    # disjoint supports: JSD = 1 bit; KL is finite thanks to the epsilon: ln(0.5 / q) with q ~ 1e-7
    m = evaluate_arrays([[0.0, 0.0, 1.0]], target, [[1, 1, 0]])
    assert m["jsd"] == pytest.approx(1.0)
    assert m["kld"] == pytest.approx(np.log(0.5 * (1 + 3 * EPS) / EPS))


def test_bad_predictions_refused():
    with pytest.raises(EvaluationError, match="negative"):
        evaluate_arrays([[-1.0, 2.0]], [[1.0, 0.0]], [[1, 0]])
    with pytest.raises(EvaluationError, match="sums to 0"):
        evaluate_arrays([[0.0, 0.0]], [[1.0, 0.0]], [[1, 0]])


# --- bootstrap ------------------------------------------------------------------------------

def test_bootstrap_ci_contains_estimate_narrows_and_is_seeded():
    rng = np.random.default_rng(3)
    widths = {}
    for n in (60, 2000):
        probs, target, test = random_case(rng, n, 4)
        probs = 0.6 * probs + 0.4 * target  # informative predictions
        s = score_utterances(probs, target, test)
        est = bootstrap_ci(s, n_boot=400, seed=1)
        for k, e in est.items():
            assert e.ci_low <= e.value <= e.ci_high, k
        widths[n] = {k: e.ci_high - e.ci_low for k, e in est.items()}
        again = bootstrap_ci(s, n_boot=400, seed=1)
        assert all(again[k].ci_low == est[k].ci_low for k in est)
    for k in widths[60]:
        assert widths[2000][k] < widths[60][k] / 2, k
    assert bootstrap_ci(s, n_boot=0)["wa"].ci_low is None


def test_paired_bootstrap_clear_winner_and_identical_runs():
    rng = np.random.default_rng(5)
    probs, target, test = random_case(rng, 400, 4)
    good = score_utterances(0.2 * probs + 0.8 * target, target, test)
    bad = score_utterances(probs, target, test)
    for metric in ("macro_f1", "ua", "wa", "kld", "jsd"):
        r = paired_bootstrap(good, bad, metric, n_boot=500, seed=0)
        assert r.delta > 0 and r.p_value < 0.01 and r.ci_low > 0, (metric, r)
        assert paired_bootstrap(bad, good, metric, n_boot=500, seed=0).p_value > 0.99
    same = paired_bootstrap(bad, bad, "macro_f1", n_boot=500, seed=0)
    assert same.p_value == pytest.approx(0.5, abs=1 / 501) and same.delta == 0.0  # (1 + 250) / 501
    # two equally good but different runs: no evidence either way
    other = score_utterances(rng.permutation(probs), target, test)
    r = paired_bootstrap(bad, other, "wa", n_boot=500, seed=0)
    assert 0.02 < r.p_value < 0.98


def test_paired_p_value_is_never_below_one_over_b_plus_one_and_prints_as_that_bound():
    from emostore.evaluate.bootstrap import format_p

    rng = np.random.default_rng(5)
    probs, target, test = random_case(rng, 400, 4)
    perfect, bad = score_utterances(target, target, test), score_utterances(probs, target, test)
    r = paired_bootstrap(perfect, bad, "ua", n_boot=999, seed=0)  # A better in every replicate
    assert r.p_value == pytest.approx(1 / 1000, rel=1e-12)
    assert format_p(r.p_value, 999) == "p <= 1/(B+1) = 0.001 (B = 999: A better in every replicate)"
    assert format_p(0.0123, 999) == "p = 0.0123"
    assert "0.0000" not in format_p(r.p_value, 99999)


# --- files and CLI ----------------------------------------------------------------------------

@pytest.fixture
def label_set(tmp_path):
    """AR label set over 40 rated utterances (2 excluded: no in-class rating, no rating)."""
    rng = np.random.default_rng(9)
    classes = ["ang", "hap", "neu", "sad"]
    rows = []
    for i in range(40):
        k = rng.integers(0, 4)
        ratings = [classes[k] if rng.random() < 0.6 else classes[rng.integers(0, 4)] for _ in range(5)]
        rows.append({"id": f"u{i:02d}", "ratings": ratings})
    rows.append({"id": "x_other", "ratings": ["other", "other"]})
    rows.append({"id": "x_none", "ratings": []})
    manifest = tmp_path / "ratings.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ar.jsonl"
    res = CliRunner().invoke(main, ["labels", "aggregate", str(manifest), "--rule", "ar",
                                    "--classes", ",".join(classes), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, rows, classes


def write_preds(path, ids_probs):
    path.write_text("".join(json.dumps({"id": i, "probs": list(map(float, p))}) + "\n" for i, p in ids_probs))
    return path


def test_cli_evaluate_end_to_end(label_set, tmp_path):
    out, rows, classes = label_set
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    kept = [r for r in recs if r["excluded"] is None]
    rng = np.random.default_rng(1)
    preds = [(r["id"], 0.5 * np.asarray(r["train"]) + 0.5 * rng.dirichlet(np.ones(4))) for r in kept]
    preds.append(("x_other", [1, 0, 0, 0]))  # prediction for an excluded row: ignored
    pred = write_preds(tmp_path / "pred.jsonl", preds)
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", str(pred), "--labels", str(out), "--json", "--n-boot", "200",
                               "--seed", "3"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert (got["n"], got["excluded"], got["classes"]) == (40, 2, classes)
    expected = evaluate_arrays(np.array([p for _, p in preds[:-1]]), [r["train"] for r in kept],
                               [r["test"] for r in kept])
    for k in ("macro_f1", "ua", "wa", "kld", "jsd"):
        v = got[k]
        assert set(v) == {"value", "ci_low", "ci_high"}
        assert v["value"] == pytest.approx(expected[k])
        assert v["ci_low"] <= v["value"] <= v["ci_high"]
    # same seed -> same CIs; the Python API agrees
    assert json.loads(runner.invoke(main, ["evaluate", str(pred), "--labels", str(out), "--json",
                                           "--n-boot", "200", "--seed", "3"]).output) == got
    ev = evaluate_files(pred, out, n_boot=200, seed=3)
    assert ev.metrics["jsd"].ci_high == pytest.approx(got["jsd"]["ci_high"])
    table = runner.invoke(main, ["evaluate", str(pred), "--labels", str(out), "--n-boot", "50"])
    assert table.exit_code == 0 and "macro-F1" in table.output and "95% CI" in table.output
    assert "40 utterances scored, 2 excluded" in table.output


def test_cli_evaluate_missing_ids_is_one_clear_error(label_set, tmp_path):
    out, rows, _ = label_set
    pred = write_preds(tmp_path / "pred.jsonl", [(r["id"], [1, 0, 0, 0]) for r in rows[10:40]])
    res = CliRunner().invoke(main, ["evaluate", str(pred), "--labels", str(out), "--json"])
    assert res.exit_code == 1
    msg = res.output.strip()
    assert msg.count("\n") == 0 and "Traceback" not in msg
    assert "10 of 40 labelled ids have no prediction: u00, u01, u02, u03, u04 and 5 more" in msg
    bad = write_preds(tmp_path / "bad.jsonl", [(r["id"], [1, 0, 0]) for r in rows[:40]])
    res = CliRunner().invoke(main, ["evaluate", str(bad), "--labels", str(out)])
    assert res.exit_code == 1 and "3 probabilities for 4 classes" in res.output
