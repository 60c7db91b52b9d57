"""Label aggregation (MR / PR / AR), smoothing, the 1/C threshold, label-set files, loss stats."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from emostore.cli import main
from emostore.labels.aggregate import (
    NO_IN_CLASS,
    NO_MAJORITY,
    NO_RATINGS,
    TIE,
    LabelRecord,
    LabelSetError,
    aggregate_rows,
    aggregate_votes,
    decide,
    read_label_set,
    share_positive,
    smooth,
    write_label_set,
)
from emostore.labels.stats import loss_table, rule_loss
from emostore.labels.votes import ClassSet, class_set, count_votes

from conftest import CREMA, CREMA_SOURCE, need_data

ABC = ClassSet(("a", "b", "c"))


def rec(ratings, rule, cs=ABC, **kw) -> LabelRecord:
    return aggregate_votes(count_votes({"id": "u", "ratings": ratings}, cs), rule, **kw)


# --- hand-worked examples -------------------------------------------------------------------

def test_mr_needs_more_than_half_of_all_ratings():
    r = rec(["a", "a", "a", "b", "c"], "mr")  # 3/5 > 1/2
    assert (r.train, r.test, r.excluded) == ([1.0, 0.0, 0.0], [1, 0, 0], None)
    assert rec(["a", "a", "b", "b"], "mr").excluded == NO_MAJORITY  # exactly half, tie
    assert rec(["a", "a", "b", "c"], "mr").excluded == NO_MAJORITY  # exactly half, no tie
    # "other" ratings count in the denominator: 2 of 4 ratings is not a majority ...
    assert rec(["a", "a", "x", "y"], "mr").excluded == NO_MAJORITY
    # ... though 2 of the 2 in-class ratings would be
    assert rec(["a", "a", "x"], "mr").train == [1.0, 0.0, 0.0]


def test_pr_most_votes_tie_excluded_other_does_not_compete():
    assert rec(["a", "a", "b", "c"], "pr").train == [1.0, 0.0, 0.0]
    assert rec(["a", "a", "b", "b", "c"], "pr").excluded == TIE
    assert rec(["b", "x", "x", "x"], "pr").train == [0.0, 1.0, 0.0]  # 3 "other" do not beat b
    assert rec(["a", "b", "c"], "pr").excluded == TIE
    assert rec(["c"], "pr").test == [0, 0, 1]


def test_ar_distribution_and_threshold():
    r = rec(["a", "a", "b", "x"], "ar")  # x -> other: dropped from the distribution
    assert r.excluded is None
    assert r.train == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert r.test == [1, 0, 0]  # b has exactly 1/3 = 1/C: NOT positive
    r = rec(["a", "a", "b", "b", "c"], "ar")  # 0.4, 0.4, 0.2 -> a and b positive
    assert r.test == [1, 1, 0]
    assert rec(["a", "b", "c"], "ar").test == [0, 0, 0]  # all exactly 1/C


def test_edges_excluded_by_every_rule():
    for rule in ("mr", "pr", "ar"):
        assert rec([], rule).excluded == NO_RATINGS
        assert rec(["x", "other"], rule).excluded == NO_IN_CLASS
        r = rec(["x"], rule)
        assert r.train is None and r.test is None


def test_soft_variants_and_smoothing():
    r = rec(["a", "a", "a", "b"], "mr", soft=True)
    assert r.train == pytest.approx([0.75, 0.25, 0.0]) and r.test == [1, 0, 0]
    assert rec(["a", "a", "b", "b"], "mr", soft=True).excluded == NO_MAJORITY  # soft keeps MR's set
    r = rec(["a", "a", "a", "b"], "pr", smoothing=0.05)
    assert r.train == pytest.approx([0.95 + 0.05 / 3, 0.05 / 3, 0.05 / 3])
    assert sum(r.train) == pytest.approx(1.0)
    r = rec(["a", "b"], "ar", smoothing=0.3)
    assert r.train == pytest.approx([0.5 * 0.7 + 0.1, 0.5 * 0.7 + 0.1, 0.1])
    assert r.test == [1, 1, 0]  # smoothing never touches test targets
    assert smooth(np.array([0.0, 1.0]), 0.0).tolist() == [0.0, 1.0]
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(LabelSetError):
            smooth(np.array([1.0, 0.0]), bad)


def test_test_mode_share_for_mr_pr():
    r = rec(["a", "a", "a", "b", "b"], "mr", test="share")  # 0.6, 0.4 over C=3 -> both > 1/3
    assert r.train == [1.0, 0.0, 0.0] and r.test == [1, 1, 0]
    assert rec(["a", "a", "a", "b", "b"], "mr").test == [1, 0, 0]


def test_share_positive_threshold_is_strict():
    assert share_positive(np.array([1 / 3, 1 / 3, 1 / 3])).tolist() == [0, 0, 0]
    assert share_positive(np.array([0.25, 0.25, 0.25, 0.25])).tolist() == [0, 0, 0, 0]
    assert share_positive(np.array([0.34, 0.33, 0.33])).tolist() == [1, 0, 0]
    assert share_positive(np.array([[0.2, 0.8], [0.5, 0.5]])).tolist() == [[0, 1], [0, 0]]


def test_class_map_raw_labels_and_explicit_classes():
    rows = [{"id": "1", "corpus": "crema-d", "ratings": ["a", "a", "n", "N"]}]
    cs = class_set(rows)
    assert cs.classes == ("angry", "disgust", "fear", "happy", "neutral", "sad")
    assert aggregate_rows(rows, cs, "pr")[0].excluded == TIE
    cs2 = class_set(rows, ["angry", "sad"])  # neutral now falls outside C -> "other"
    r = aggregate_rows(rows, cs2, "mr")[0]
    assert r.excluded == NO_MAJORITY  # 2 of 4 ratings
    assert aggregate_rows(rows, cs2, "ar")[0].train == [1.0, 0.0]
    no_map = [{"id": "1", "ratings": ["Sad", "happy"]}, {"id": "2", "emotion": "sad"}]
    cs3 = class_set(no_map)
    assert cs3.classes == ("happy", "sad")
    assert [r.train for r in aggregate_rows(no_map, cs3, "pr")] == [None, [0.0, 1.0]]


# --- loss statistics ------------------------------------------------------------------------

def test_loss_table_hand_worked():
    rows = [
        {"id": "1", "ratings": ["a", "a", "a", "b"]},  # MR/PR keep a (lose 1); AR loses 0
        {"id": "2", "ratings": ["a", "a", "b", "b"]},  # MR, PR exclude (lose 4); AR 0
        {"id": "3", "ratings": ["a", "a", "b", "x"]},  # MR excl (4); PR keeps a (lose 2); AR loses x
        {"id": "4", "ratings": ["x", "y"]},  # all exclude (2)
    ]
    mr, pr, ar = loss_table(rows, ABC)
    assert (mr.excluded, mr.lost_ratings, mr.ratings) == (3, 1 + 4 + 4 + 2, 14)
    assert (pr.excluded, pr.lost_ratings) == (2, 1 + 4 + 2 + 2)
    assert (ar.excluded, ar.lost_ratings) == (1, 1 + 2)
    assert mr.data_loss == 0.75 and pr.rating_loss == pytest.approx(9 / 14)
    assert mr.reasons == {NO_MAJORITY: 2, NO_IN_CLASS: 1}


# --- properties -----------------------------------------------------------------------------

def in_class_counts(ratings):
    return [ratings.count(c) for c in "abcd"]


LABELS = st.sampled_from(["a", "b", "c", "d", "x"])  # C = a..d, x is "other"
C4 = ClassSet(("a", "b", "c", "d"))
RULE_KW = st.sampled_from([
    ("mr", {}), ("pr", {}), ("ar", {}), ("mr", {"soft": True}), ("pr", {"soft": True, "smoothing": 0.05}),
    ("ar", {"smoothing": 0.1}), ("mr", {"test": "share"}),
])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(LABELS, max_size=15), RULE_KW)
def test_property_targets_are_valid(ratings, rule_kw):
    rule, kw = rule_kw
    r = rec(ratings, rule, C4, **kw)
    if r.excluded is None:
        assert len(r.train) == 4 and len(r.test) == 4
        assert sum(r.train) == pytest.approx(1.0) and min(r.train) >= 0
        assert set(r.test) <= {0, 1}
        if rule == "ar" or kw.get("test") == "share":  # no positive only when all shares are 1/C
            in_class = [ratings.count(c) for c in "abcd"]
            assert (sum(r.test) == 0) == (len(set(in_class)) == 1)
        else:
            assert sum(r.test) == 1 and r.test.index(1) == int(np.argmax(in_class_counts(ratings)))
    else:
        assert r.train is None and r.test is None


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(LABELS, max_size=15), st.randoms(use_true_random=False))
def test_property_rules(ratings, rnd):
    v = count_votes({"id": "u", "ratings": ratings}, C4)
    ar = decide(v, "ar")[1]
    assert (ar is None) == (v.counts.sum() > 0)  # AR never excludes a row with an in-class vote
    mr, pr = decide(v, "mr"), decide(v, "pr")
    if mr[1] is None:  # MR-kept => PR-kept, same class
        assert pr == mr
    shuffled = list(ratings)
    rnd.shuffle(shuffled)
    for rule in ("mr", "pr", "ar"):  # permuting raters changes nothing
        assert rec(shuffled, rule, C4, soft=rule == "pr") == rec(ratings, rule, C4, soft=rule == "pr")


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(st.lists(LABELS, max_size=8), min_size=1, max_size=10))
def test_property_losses_ordered(table):
    rows = [{"id": str(i), "ratings": r} for i, r in enumerate(table)]
    mr, pr, ar = loss_table(rows, C4)
    assert mr.excluded >= pr.excluded >= ar.excluded
    assert mr.lost_ratings >= pr.lost_ratings >= ar.lost_ratings
    assert ar.lost_ratings == sum(r.count("x") for r in table)


# --- files ----------------------------------------------------------------------------------

def test_label_set_round_trip(tmp_path):
    rows = [{"id": f"u{i}", "ratings": r} for i, r in enumerate(
        [["a", "a", "b"], ["a", "b"], ["c", "c", "c", "x"], [], ["b", "b", "a", "a", "c", "c", "c"]])]
    for rule in ("mr", "pr", "ar"):
        records = aggregate_rows(rows, ABC, rule, smoothing=0.05, soft=rule == "pr")
        out = write_label_set(tmp_path / f"{rule}.jsonl", records, {"rule": rule, "classes": list("abc")})
        back, meta = read_label_set(out)
        assert back == records
        assert meta["format"] == "emostore-labelset/1" and meta["classes"] == ["a", "b", "c"]
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert [list(x) for x in lines] == [["id", "train", "test", "excluded"]] * len(rows)
        assert (tmp_path / f"{rule}.meta.json").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "u", "train": [1.0]}\n')
    with pytest.raises(LabelSetError):
        read_label_set(bad)


# --- CLI on the real CREMA-D voice-only ratings ----------------------------------------------

@pytest.fixture(scope="module")
def crema_manifest(tmp_path_factory) -> Path:
    need_data(CREMA, CREMA_SOURCE)
    out = tmp_path_factory.mktemp("crema") / "crema.jsonl"
    res = CliRunner().invoke(main, ["manifest", "build", "crema-d", str(CREMA), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_cli_stats_and_aggregate_on_crema_d(crema_manifest, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["labels", "stats", str(crema_manifest), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert stats["classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad"]
    mr, pr, ar = (stats["rules"][k] for k in ("mr", "pr", "ar"))
    assert mr["utterances"] == 7442 and mr["ratings"] == ar["ratings"] > 60000
    assert mr["data_loss"] > pr["data_loss"] > ar["data_loss"] == 0.0
    assert mr["rating_loss"] > pr["rating_loss"] > ar["rating_loss"] == 0.0  # CREMA-D has no "other"
    res = runner.invoke(main, ["labels", "stats", str(crema_manifest)])
    assert res.exit_code == 0 and "MR" in res.output and "26.40%" in res.output

    counts = {}
    for rule in ("mr", "pr", "ar"):
        out = tmp_path / f"{rule}.jsonl"
        args = ["labels", "aggregate", str(crema_manifest), "--rule", rule, "--smoothing", "0.05", "--out", str(out)]
        res = runner.invoke(main, args)
        assert res.exit_code == 0, res.output
        records, meta = read_label_set(out)
        assert len(records) == 7442 and meta["rule"] == rule and meta["smoothing"] == 0.05
        assert meta["class_map"] == {"corpus": "crema-d", "version": "1"}
        kept = [r for r in records if r.excluded is None]
        assert all(abs(sum(r.train) - 1) < 1e-9 and min(r.train) >= 0.05 / 6 - 1e-12 for r in kept)
        counts[rule] = {r.id for r in kept}
        assert len(records) - len(kept) == stats["rules"][rule]["excluded"]
    assert counts["mr"] <= counts["pr"] <= counts["ar"]

    res = runner.invoke(main, ["labels", "aggregate", str(crema_manifest), "--rule", "pr", "--soft",
                               "--classes", "angry,sad", "--out", str(tmp_path / "soft.jsonl")])
    assert res.exit_code == 0, res.output
    records, meta = read_label_set(tmp_path / "soft.jsonl")
    assert meta["classes"] == ["angry", "sad"] and meta["soft"] is True
    assert any(r.excluded == NO_IN_CLASS for r in records)


def test_cli_misuse_is_one_line(crema_manifest, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["labels", "aggregate", str(crema_manifest), "--rule", "ar", "--smoothing", "1.5",
                               "--out", str(tmp_path / "x.jsonl")])
    assert res.exit_code != 0 and "smoothing" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["labels", "stats", str(crema_manifest), "--classes", "a,a"])
    assert res.exit_code != 0 and "twice" in res.output
