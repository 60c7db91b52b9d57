"""EmoBox's cross-corpus track on the real corpora: the shipped balanced sets, the class mapping, emostore's
built EmoDB set, train-A/test-B pairs as sweep grid points (FBANK stores of EmoDB and a RAVDESS subset),
the matrix agreeing with sklearn, and the fingerprint check."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from conftest import EMODB, need_full_emodb, needs_ravdess
from emostore.crosscorpus.balanced import build_balanced, published, published_corpora
from emostore.crosscorpus.classes import CrossCorpusError, class_mapping, shared_labels
from emostore.crosscorpus.matrix import cross_matrix, format_matrix
from emostore.crosscorpus.pair import Side, prepare
from emostore.lab.plan import extract_plan, read_plan
from emostore.manifests import emobox_lists
from emostore.manifests.adapters.base import get_adapter
from emostore.store.reader import open as open_store
from emostore.sweep.config import expand
from emostore.sweep.runner import run_sweep



def test_the_shipped_track2_sets_are_emobox_balanced_sets():
    assert published_corpora() == ["iemocap", "meld", "ravdess", "savee"]
    for c in published_corpora():
        s = published(c)
        assert len(s.ids) == 240 and s.per_class() == {"angry": 60, "happy": 60, "neutral": 60, "sad": 60}
    rav = published("ravdess")
    assert rav.ids[0] == "03-01-03-01-01-02-15" and rav.source["commit"].startswith("08280f2")
    cells = Counter((rav.speakers[i], rav.labels[i]) for i in rav.ids)
    assert len({s for s, _ in cells}) == 20 and set(cells.values()) == {3}  # 20 actors x 4 classes x 3 clips
    assert set(rav.ids) <= emobox_lists.shipped("ravdess").ids()  # the same clips as EmoBox's fold lists
    for i in rav.ids:  # the label and actor EmoBox publishes are the file name's
        assert i.split("-")[6] == rav.speakers[i]
        assert get_adapter("ravdess").class_map.map_label(i.split("-")[2]) == rav.labels[i]
    assert published("emodb") is None


def test_class_mapping_is_explicit():
    assert class_mapping("emodb") == {"anger": "angry", "happiness": "happy", "neutral": "neutral", "sadness": "sad"}
    assert class_mapping("ravdess") == {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry"}
    with pytest.raises(CrossCorpusError, match="csv: none of its classes"):
        class_mapping("csv")


def test_emostores_built_emodb_set_is_balanced_per_speaker_and_class():
    rows = [u.to_json() for u in get_adapter("emodb").build(need_full_emodb().parent)]  # the corpus's counts
    labels, left_out = shared_labels("emodb", rows)
    assert left_out == {"boredom": 81, "disgust": 46, "fear": 69} and len(labels) == 339
    speakers = {r["id"]: r["speaker"] for r in rows}
    s = build_balanced("emodb", labels, speakers)
    # EmoDB's fewest clips per (speaker, class): 10 and 12 have 3 and 2 of some class, the rest >= 4;
    # 4 clips x 8 speakers = 32 per class is the largest balanced set (k=5 allows 6 speakers: 30)
    assert s.per_class() == {"angry": 32, "happy": 32, "neutral": 32, "sad": 32}
    cells = Counter((s.speakers[i], s.labels[i]) for i in s.ids)
    assert set(cells.values()) == {4} and sorted({sp for sp, _ in cells}) == ["03", "08", "09", "11", "13", "14", "15", "16"]
    assert "emostore" in s.source["kind"] and "not EmoBox" in s.source["kind"]
    assert build_balanced("emodb", labels, speakers).ids == s.ids  # deterministic


@pytest.fixture(scope="module")
def fbank_lab(tmp_path_factory, ravdess_dir):
    """A lab of FBANK stores: all of EmoDB, and RAVDESS's published balanced set plus all of Actor_24."""
    root = tmp_path_factory.mktemp("cross")
    rav = root / "ravdess"
    keep = set(published("ravdess").ids)
    for f in sorted(ravdess_dir.rglob("*.flac")):
        if f.stem in keep or f.parent.name == "Actor_24":
            (rav / f.parent.name).mkdir(parents=True, exist_ok=True)
            (rav / f.parent.name / f.name).symlink_to(f)
    plan = root / "plan.json"
    plan.write_text(json.dumps({"corpora": {"emodb": {"adapter": "emodb", "root": str(EMODB.parent)},
                                            "ravdess": {"adapter": "ravdess", "root": str(rav)}},
                                "encoders": {"fbank": {"encoder": "fbank", "frames": False}}}))
    out = extract_plan(read_plan(plan), str(root / "lab"))
    assert [(s.corpus, s.rows, s.failed) for s in out] == [("emodb", 535, 0), ("ravdess", 300, 0)]
    return root


@needs_ravdess
def test_cross_corpus_pairs_run_as_sweep_grid_points(fbank_lab, tmp_path):
    spec = {"lab": str(fbank_lab / "lab"), "encoder": "fbank", "cross_dir": str(tmp_path / "cross"),
            "cross": ["emodb->ravdess", "ravdess->emodb", "emodb->emodb", "ravdess->ravdess"],
            "head": "probe", "epochs": 3, "seed": 0}
    runs = expand(spec)
    assert len(runs) == 4 and {r.config.fold for r in runs} == {"cross"}
    rec = {(r["train"], r["test"]): r for r in
           (json.loads((Path(x.store).parent / "cross.json").read_text()) for x in runs)}
    pub = published("ravdess").ids
    e2r = rec[("emodb", "ravdess")]
    assert e2r["left_out"] == {"emodb": {"boredom": 81, "disgust": 46, "fear": 69},
                               "ravdess": {"calm": 8, "disgust": 8, "fearful": 8, "surprised": 8}}
    assert e2r["sizes"] == {"train": 271, "dev": 68, "test": 240}  # all 339 EmoDB clips of the shared classes
    assert e2r["test_set"]["kind"] == "EmoBox's published balanced test set"
    part = json.loads(Path(runs[0].partition).read_text())["cross"]
    assert part["test"] == [f"ravdess:{i}" for i in pub]
    r2r = rec[("ravdess", "ravdess")]  # the diagonal trains on what the balanced set leaves: Actor_24's 28
    assert r2r["sizes"]["train"] + r2r["sizes"]["dev"] == 28 and r2r["train_set"]["held_out_test_clips"] == 240
    assert rec[("ravdess", "emodb")]["sizes"]["test"] == 128
    assert rec[("ravdess", "emodb")]["test_set"]["kind"].startswith("emostore's")

    derived = open_store(runs[0].store)  # rows copied unchanged from the corpora's stores
    src = open_store(str(fbank_lab / "lab" / "emodb" / "fbank.zarr"))
    i = derived.ids.tolist().index("emodb:03a01Wa")
    np.testing.assert_array_equal(derived.pooled(rows=[i]), src.pooled(rows=[src.index("03a01Wa")]))
    labels = {json.loads(line)["id"]: json.loads(line)["train"] for line in Path(runs[0].labels).read_text().splitlines()}
    assert labels["emodb:03a01Wa"] == [1.0, 0.0, 0.0, 0.0]  # W = Wut = anger -> angry

    summary = run_sweep(runs, tmp_path / "sweep", jobs=1)
    assert (summary.done, summary.failed) == (4, 0)
    assert len(expand(spec)) == 4 and run_sweep(expand(spec), tmp_path / "sweep").skipped == 4  # resumable

    long = cross_matrix(tmp_path / "sweep", n_boot=50)
    ua = long[long["metric"] == "ua"].set_index(["train", "test"])["value"]
    assert sorted(ua.index) == [("emodb", "emodb"), ("emodb", "ravdess"), ("ravdess", "emodb"), ("ravdess", "ravdess")]
    for run in runs:  # the matrix's UA is sklearn's balanced accuracy of the run's argmax predictions
        rec_ = json.loads((Path(run.store).parent / "cross.json").read_text())
        pred = [json.loads(x) for x in (tmp_path / "sweep" / "runs" / run.run_id / "predictions.jsonl").read_text().splitlines()]
        y_true = [int(np.argmax(labels_of(run.labels)[p["id"]])) for p in pred]
        y_pred = [int(np.argmax(p["probs"])) for p in pred]
        assert ua[(rec_["train"], rec_["test"])] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    text = format_matrix(long)
    assert "| train emodb |" in text and "test ravdess" in text and "diagonal = intra-corpus" in text

    from emostore.analysis.report import write_report

    write_report(tmp_path / "sweep", tmp_path / "report", n_boot=20)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Cross-corpus matrix" in page and "<th>train ravdess</th>" in page and "Lab catalog" in page


def labels_of(path: str) -> dict:
    return {json.loads(line)["id"]: json.loads(line)["test"] for line in Path(path).read_text().splitlines()}


@needs_ravdess
def test_stores_of_different_encoders_are_refused_in_one_line(fbank_lab, tmp_path):
    from emostore.extract.runner import ExtractOptions, extract
    from emostore.manifests import load_manifest

    man = load_manifest(fbank_lab / "lab" / "ravdess" / "manifest.jsonl")
    (tmp_path / "ravdess").mkdir()
    sub = tmp_path / "ravdess" / "manifest.jsonl"
    sub.write_text("".join(json.dumps(r) + "\n" for r in man.rows[:2]))
    extract(load_manifest(sub), str(tmp_path / "ravdess" / "whisper.zarr"), ExtractOptions(encoder="ct2-whisper", frames=False))
    with pytest.raises(CrossCorpusError, match=r"come from different extractions \(encoder: .*fbank.* vs .*whisper.*; "
                                               r"layers: \[0\] vs \[0, 1, 2, 3, 4\]\)"):
        prepare(Side("emodb", str(fbank_lab / "lab" / "emodb" / "fbank.zarr")),
                Side("ravdess", str(tmp_path / "ravdess" / "whisper.zarr")), tmp_path / "pair")
