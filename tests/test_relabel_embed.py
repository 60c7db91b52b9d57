"""Offline relabeling with the real all-MiniLM-L6-v2 encoder, the shared relabeling reader, and compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial.distance import jensenshannon

from emostore.cli import main
from emostore.labels.compare import compare, compare_files
from emostore.labels.embed import EmbedRelabeler, SentenceEncoder, class_terms, relabel_manifest
from emostore.labels.relabeled import Relabeling, meta_path, read_relabeling, relabel_row, write_relabeling
from emostore.labels.votes import EMO_SUPERB_CLASSES, ClassSet, count_votes

CLASSES = EMO_SUPERB_CLASSES
IDX = {c: i for i, c in enumerate(CLASSES)}


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(batch_size=8)


@pytest.fixture(scope="module")
def relabeler(encoder):
    return EmbedRelabeler(ClassSet(CLASSES), encoder)


def _row(id, ratings, description=()):
    return {"id": id, "ratings": list(ratings), "raters": [f"r{k}" for k in range(len(ratings))],
            "description": list(description)}


@pytest.mark.slow
def test_encoder_is_sentence_transformers_recipe(encoder):
    e = encoder.encode(["furious", "angry", "calm"])
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]  # furious is closer to angry than to calm
    # batch composition and order do not change a text's embedding
    again = encoder.encode(["calm", "a much longer sentence that forces padding in the batch", "furious"])
    assert np.allclose(again[0], e[2], atol=1e-5) and np.allclose(again[2], e[0], atol=1e-5)
    assert len(encoder.sha256) == 64


@pytest.mark.slow
def test_descriptions_move_probability(relabeler):
    even = ["angry", "neutral", "sad", "happy"]
    rows = [_row("a", even, ["sounds furious and yelling"]), _row("n", even, ["calm, flat voice"]),
            _row("plain", even)]
    out, counts = relabeler.relabel(rows)
    ref = np.array(out[2]["distribution"])
    angry, neutral = np.array(out[0]["distribution"]), np.array(out[1]["distribution"])
    assert angry[IDX["angry"]] > ref[IDX["angry"]] + 0.1 and angry.argmax() == IDX["angry"]
    assert neutral[IDX["neutral"]] > ref[IDX["neutral"]] + 0.1 and neutral.argmax() == IDX["neutral"]
    assert [r["source"] for r in out] == ["embed", "embed", "reference"]
    assert all(r["reason"] is None and abs(sum(r["distribution"]) - 1) < 1e-9 for r in out)
    assert counts == {"embed": 2, "reference": 1, "no_votes": 0, "descriptions": 2}


@pytest.mark.slow
def test_blend_arithmetic_and_reference_rows(relabeler, encoder):
    row = _row("x", ["sad", "sad", "neutral", "angry"], ["sobbing quietly", "very down, tearful"])
    bare = _row("y", ["fear", "surprise", "frustrated"], [" ", ""])  # blank descriptions = none
    novote = _row("z", ["other"], ["furious"])
    for weight in (0.25, 0.6):
        r = EmbedRelabeler(relabeler.cs, encoder, weight=weight, temperature=0.1)  # prototypes cached
        assert np.array_equal(r.prototypes, relabeler.prototypes)
        out, counts = r.relabel([row, bare, novote])
        # by hand: softmax(cos / T) per description, averaged, then blended
        ref = np.array([1, 2, 0, 0, 0, 1, 0, 0]) / 4
        e = encoder.encode(row["description"]).astype(np.float64)
        logits = e @ r.prototypes.T / 0.1
        p = np.exp(logits - logits.max(1, keepdims=True))
        desc = (p / p.sum(1, keepdims=True)).mean(0)
        assert np.allclose(out[0]["distribution"], (1 - weight) * ref + weight * desc, atol=1e-12)
        # no descriptions: the reference exactly; no in-class vote: null, as the LLM relabeler writes
        assert out[1]["distribution"] == list(count_votes(bare, relabeler.cs).shares())
        assert out[1]["source"] == "reference"
        assert out[2] == {"id": "z", "distribution": None, "reason": None, "source": "reference"}
        assert counts["no_votes"] == 1
    with pytest.raises(ValueError, match="weight"):
        EmbedRelabeler(relabeler.cs, encoder, weight=1.5)


def test_class_terms():
    t = class_terms(CLASSES)
    assert t["angry"][0] == "angry" and "furious" in t["angry"]
    assert "calm" in t["neutral"]
    assert "calm" not in class_terms(["neutral", "calm", "happy"])["neutral"]  # RAVDESS has both
    assert class_terms(["frustrated", "anger"]) == {"frustrated": ("frustrated",), "anger": class_terms(["anger"])["anger"]}
    assert "furious" in class_terms(["anger"])["anger"]


def _rel(ids, dists, classes=("a", "b", "c")):
    return Relabeling(list(ids), np.asarray(dists, dtype=np.float64), tuple(classes), path=None)


def test_compare_metrics_and_id_checks():
    a = _rel(["u1", "u2", "u3"], [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    # B in another class order and id order: aligned before comparing
    b = Relabeling(["u3", "u1", "u2"], np.array([[0.0, 0.5, 0.5], [0.1, 0.4, 0.5], [0.3, 0.3, 0.4]]),
                   ("c", "a", "b"))
    r = compare(a, b)
    bb = np.array([[0.4, 0.5, 0.1], [0.3, 0.4, 0.3], [0.5, 0.5, 0.0]])  # B as a's ids x (a, b, c)
    aa = a.distributions
    assert r["mean_shift"] == pytest.approx(dict(zip("abc", (bb - aa).mean(0))))
    js = [jensenshannon(x, y, base=2) ** 2 for x, y in zip(aa, bb)]
    assert r["js_mean"] == pytest.approx(np.mean(js)) and r["js_max"] == pytest.approx(max(js))
    assert r["js_max_id"] == "u3"
    # argmax: u1 a->b changed, u2 b->b same, u3 a->a (tie, first wins) same
    assert r["argmax_changed"] == pytest.approx(1 / 3)
    # binary > 1/3: u1 [1,0,0]->[1,1,0] changed, u2 [0,1,0]->[0,1,0] same, u3 [1,0,0]->[1,1,0] changed
    assert r["binary_changed"] == pytest.approx(2 / 3)
    assert compare(a, a)["js_max"] == 0 and compare(a, a)["argmax_changed"] == 0
    with pytest.raises(ValueError, match=r"1 ids missing from B: u3.*1 ids missing from A: u9"):
        compare(a, _rel(["u1", "u2", "u9"], aa))
    with pytest.raises(ValueError, match="different classes"):
        compare(a, _rel(a.ids, aa, ("a", "b", "d")))


def test_reader_accepts_label_sets_and_llm_rows(tmp_path):
    llm = tmp_path / "llm.jsonl"
    write_relabeling(llm, [relabel_row("u1", [0.5, 0.5], "llm", "both"), relabel_row("u2", None, "reference"),
                           {"id": "u3", "distribution": {"b": 0.25, "a": 0.75}, "reason": None, "source": "llm"}],
                     {"classes": ["a", "b"]})
    assert meta_path(llm).name == "llm.meta.json"
    r = read_relabeling(llm)
    assert r.ids == ["u1", "u3"] and r.classes == ("a", "b")
    assert np.allclose(r.distributions, [[0.5, 0.5], [0.75, 0.25]]) and r.reasons == ["both", None]
    ls = tmp_path / "mr.jsonl"  # a label set (emostore labels aggregate) and its x.meta.json
    ls.write_text("".join(json.dumps(o) + "\n" for o in [
        {"id": "u1", "train": [1.0, 0.0], "test": [1, 0], "excluded": None},
        {"id": "u2", "train": None, "test": None, "excluded": "tie for the most votes"},
        {"id": "u3", "train": [0.0, 1.0], "test": [0, 1], "excluded": None}]))
    (tmp_path / "mr.meta.json").write_text(json.dumps({"classes": ["a", "b"]}))
    s = read_relabeling(ls)
    assert s.ids == ["u1", "u3"] and s.classes == ("a", "b")
    assert compare_files(ls, llm)["argmax_changed"] == pytest.approx(0.5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "u1", "distribution": [0.7, 0.7]}) + "\n")
    with pytest.raises(ValueError, match="sum to 1"):
        read_relabeling(bad)


@pytest.mark.slow
def test_cli_round_trip(tmp_path):
    rows = [
        _row("u1", ["neutral", "neutral", "angry"], ["sounds furious and yelling", "really mad"]),
        _row("u2", ["sad", "neutral"], ["calm, flat voice"]),
        _row("u3", ["happy", "happy", "surprise"]),
        _row("u4", ["fear", "other"], ["scared and trembling"]),
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runner = CliRunner()
    out = tmp_path / "embed.jsonl"
    res = runner.invoke(main, ["relabel", "embed", str(manifest), "--out", str(out), "--method", "prototypes",
                                "--quiet"])
    assert res.exit_code == 0, res.output
    assert "4 utterances (3 embed, 1 reference" in res.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["id"] for w in written] == ["u1", "u2", "u3", "u4"]
    assert set(written[0]) == {"id", "distribution", "reason", "source"}
    u1 = written[0]["distribution"]
    assert u1[IDX["angry"]] > 1 / 3  # 1/3 of the votes, plus the descriptions' pull
    meta = json.loads((tmp_path / "embed.meta.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["temperature"] == 0.05
    assert meta["weights"] == {"reference": 0.75, "description": 0.25} and len(meta["model_sha256"]) == 64

    heavy = tmp_path / "heavy.jsonl"
    res = runner.invoke(main, ["relabel", "embed", str(manifest), "-o", str(heavy), "--weight", "0.5",
                               "--method", "prototypes", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["relabel", "compare", str(out), str(heavy), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["utterances"] == 4 and report["js_max"] > 0
    assert report["mean_shift"]["angry"] > 0  # more weight on "furious" descriptions
    res = runner.invoke(main, ["relabel", "compare", str(out), str(heavy)])
    assert res.exit_code == 0 and "JS divergence" in res.output

    short = tmp_path / "short.jsonl"
    short.write_text("".join(line + "\n" for line in out.read_text().splitlines()[:2]))
    res = runner.invoke(main, ["relabel", "compare", str(out), str(short)])
    assert res.exit_code == 1 and "2 ids missing from" in res.output and "u3, u4" in res.output
    res = runner.invoke(main, ["relabel", "embed", str(manifest), "-o", str(heavy), "--weight", "2"])
    assert res.exit_code == 2


@pytest.mark.slow
def test_relabel_manifest_is_deterministic(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(_row("u1", ["sad"], ["crying", "very down"])) + "\n")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    relabel_manifest(manifest, a, classes=["sad", "happy"])
    relabel_manifest(manifest, b, classes=["sad", "happy"])
    assert a.read_text() == b.read_text()
