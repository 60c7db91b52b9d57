"""Corpus adapters (IEMOCAP, MSP-IMPROV, MSP-Podcast, BIIC-NNIME) on small fixture trees in each
corpus's native layout and file format: per-rater votes, rater ids, descriptions, sessions,
speakers, durations, class maps, and errors that name the malformed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostore.manifests import load_manifest
from emostore.manifests.adapters.base import AdapterError, get_adapter
from emostore.manifests.records import write_manifest

SR = 16000


def _wav(path: Path, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    return path


def _by_id(rows):
    return {r.id: r for r in rows}


# ---------------------------------------------------------------- IEMOCAP

IEMOCAP_EVAL_S1 = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tNeutral;\t()
C-F1:\tFrustration; Anger;\t(raised voice)
A-E3:\tval 3; act 2; dom  2;\t()
A-F1:\tval 2; act 2; dom  2;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M003\tfru\t[2.0000, 3.5000, 3.5000]
C-E1:\tFrustration;\t()
C-E2:\tOther:annoyed;\t()
C-M1:\tAnger; Frustration;\t()
A-E1:\tval 2; act 4; dom  3;\t()
"""

IEMOCAP_EVAL_S2 = """[1.0000 - 2.5000]\tSes02M_script01_1_F010\thap\t[4.0000, 3.0000, 3.0000]
C-E1:\tHappiness;\t(laughing)
C-E4:\tExcited; Happiness;\t()
C-F2:\tHappiness;\t()
"""


def _iemocap_tree(root: Path) -> Path:
    ev1 = root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    ev1.parent.mkdir(parents=True)
    ev1.write_text(IEMOCAP_EVAL_S1)
    ev2 = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt"
    ev2.parent.mkdir(parents=True)
    ev2.write_text(IEMOCAP_EVAL_S2)
    for sess, utt in (("Session1", "Ses01F_impro01_F000"), ("Session1", "Ses01F_impro01_M003"),
                      ("Session2", "Ses02M_script01_1_F010")):
        _wav(root / sess / "sentences" / "wav" / utt.rsplit("_", 1)[0] / f"{utt}.wav")
    return root


def test_iemocap_rows_votes_and_round_trip(tmp_path):
    root = _iemocap_tree(tmp_path / "IEMOCAP")
    ad = get_adapter("iemocap")
    rows = ad.build(root)
    assert [r.id for r in rows] == ["Ses01F_impro01_F000", "Ses01F_impro01_M003", "Ses02M_script01_1_F010"]
    r = _by_id(rows)
    a, b, c = r["Ses01F_impro01_F000"], r["Ses01F_impro01_M003"], r["Ses02M_script01_1_F010"]
    assert (a.session, a.speaker, b.session, b.speaker, c.session, c.speaker) == (1, "Ses01F", 1, "Ses01M", 2, "Ses02F")
    assert a.ratings == ["neutral", "neutral", "frustration", "anger"]
    assert a.raters == ["C-E2", "C-E3", "C-F1", "C-F1"]
    assert a.description == ["raised voice"]
    assert b.ratings == ["frustration", "other", "anger", "frustration"]
    assert b.raters == ["C-E1", "C-E2", "C-M1", "C-M1"]
    assert b.description == ["annoyed"]
    assert c.ratings == ["happiness", "excited", "happiness", "happiness"]
    assert c.raters == ["C-E1", "C-E4", "C-E4", "C-F2"]
    assert a.duration == pytest.approx(8.2357 - 6.2901)
    assert c.duration == pytest.approx(1.5)
    assert (a.emotion, b.emotion, c.emotion) == ("neutral", "frustration", "happiness")
    assert b.extra == {"dialog": "Ses01F_impro01", "valence": 2.0, "arousal": 3.5, "dominance": 3.5}
    assert Path(a.audio).is_file()
    cm = ad.class_map
    assert [cm.map_label(x) for x in ("Frustration", "anger", "happiness", "other", "neutral state", "xxx")] == [
        "frustrated", "angry", "happy", "other", "neutral", None]
    # round trip through the manifest writer/loader keeps votes and raters intact
    m = load_manifest(write_manifest(rows, tmp_path / "out" / "iemocap.jsonl"))
    assert m.ids == [x.id for x in rows]
    row = m.rows[1]
    assert row["ratings"] == b.ratings and row["raters"] == b.raters and row["description"] == ["annoyed"]
    assert row["valence"] == 2.0 and row["session"] == 1 and row["speaker"] == "Ses01M"
    assert Path(row["audio"]).resolve() == Path(b.audio).resolve()


def test_iemocap_malformed_evaluation_names_file(tmp_path):
    root = _iemocap_tree(tmp_path / "IEMOCAP")
    bad = root / "Session2" / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt"
    bad.write_text(IEMOCAP_EVAL_S2.replace("[1.0000 - 2.5000]", "[1.0000 2.5000"))
    with pytest.raises(AdapterError, match=r"Ses02M_script01_1\.txt:1"):
        get_adapter("iemocap").build(root)
    bad.write_text(IEMOCAP_EVAL_S2.replace("C-E1:\tHappiness;\t(laughing)", "C-E1 Happiness laughing"))
    with pytest.raises(AdapterError, match=r"Ses02M_script01_1\.txt:2"):
        get_adapter("iemocap").build(root)
    with pytest.raises(AdapterError, match="Session"):
        get_adapter("iemocap").build(tmp_path)


# ---------------------------------------------------------------- MSP-IMPROV

IMPROV_EVAL = """UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:4.000000; V:2.000000; D:3.500000 ; N:3.000000;
rater-p01; Angry; Frustrated,Annoyed; A:4.000000; V:2.000000; D:4.000000; N:3.000000;
rater-p02; Other; Other-bored; A:3.000000; V:2.000000; D:3.000000; N:3.000000;
rater-p03; Angry; ; A:5.000000; V:1.000000; D:4.000000; N:3.000000;
rater-p03; Angry; ; A:5.000000; V:1.000000; D:4.000000; N:3.000000;

UTD-IMPROV-S03H-M06-R-MM01.avi; H; A:3.000000; V:4.000000; D:3.000000 ; N:4.000000;
rater-p04; Happy; Excited; A:3.000000; V:4.000000; D:3.000000; N:4.000000;
rater-p01; Neutral; A:3.000000; V:3.000000; D:3.000000; N:4.000000;
"""


def _improv_tree(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Evalution.txt").write_text(IMPROV_EVAL)
    _wav(root / "session1" / "S01A" / "P" / "MSP-IMPROV-S01A-F01-P-FM01.wav", 0.5)
    _wav(root / "session6" / "S03H" / "R" / "MSP-IMPROV-S03H-M06-R-MM01.wav", 0.75)
    return root


def test_msp_improv_rows_votes(tmp_path):
    root = _improv_tree(tmp_path / "MSP-IMPROV")
    ad = get_adapter("msp-improv")
    rows = ad.build(root)
    assert [r.id for r in rows] == ["MSP-IMPROV-S01A-F01-P-FM01", "MSP-IMPROV-S03H-M06-R-MM01"]
    a, b = rows
    assert (a.session, a.speaker, b.session, b.speaker) == (1, "F01", 6, "M06")
    assert a.ratings == ["angry", "other", "angry"]  # the repeated rater-p03 line counts once
    assert a.raters == ["rater-p01", "rater-p02", "rater-p03"]
    assert a.extra["secondary"] == ["frustrated", "annoyed", "other"]
    assert a.extra["secondary_raters"] == ["rater-p01", "rater-p01", "rater-p02"]
    assert a.description == ["bored"]
    assert b.ratings == ["happy", "neutral"] and b.raters == ["rater-p04", "rater-p01"]
    assert b.extra["secondary"] == ["excited"] and b.description == []
    assert (a.emotion, b.emotion) == ("angry", "happy")
    assert a.duration == pytest.approx(0.5) and b.duration == pytest.approx(0.75)
    assert a.extra["sentence"] == "S01A" and a.extra["scenario"] == "P" and a.extra["arousal"] == 4.0
    cm = ad.class_map
    assert [cm.map_label(x) for x in ("Angry", "happy", "other", "frustrated")] == ["angry", "happy", "other", None]


def test_msp_improv_malformed_evaluation_names_file(tmp_path):
    root = _improv_tree(tmp_path / "MSP-IMPROV")
    (root / "Evalution.txt").write_text(IMPROV_EVAL.replace("rater-p02; Other; Other-bored; A:3.000000", "rater-p02 Other A=3"))
    with pytest.raises(AdapterError, match=r"Evalution\.txt:3"):
        get_adapter("msp-improv").build(root)


# ---------------------------------------------------------------- MSP-Podcast

CONSENSUS = """FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
MSP-PODCAST_0001_0008.wav,A,5.2,2.0,4.8,127,Female,Train
MSP-PODCAST_0002_0033.wav,N,4.0,4.0,4.0,Unknown,Male,Development
MSP-PODCAST_0003_0010.wav,H,4.5,5.5,4.0,3,Male,Test1
MSP-PODCAST_0004_0001.wav,X,4.0,4.0,4.0,88,Female,Test2
"""

DETAILED = """FileName,Annotation
MSP-PODCAST_0001_0008.wav,"WORKER00001; Angry; Frustrated,Annoyed; A:5.0; V:2.0; D:5.0;"
MSP-PODCAST_0001_0008.wav,"WORKER00007; Other-irritated; A:5.0; V:2.0; D:4.0;"
MSP-PODCAST_0001_0008.wav,"WORKER00002; Angry; Other-sarcastic; A:6.0; V:2.0; D:5.0;"
MSP-PODCAST_0002_0033.wav,"WORKER00001; Neutral; A:4.0; V:4.0; D:4.0;"
MSP-PODCAST_0002_0033.wav,"WORKER00003; Neutral; Concerned; A:4.0; V:4.0; D:4.0;"
MSP-PODCAST_0003_0010.wav,"WORKER00004; Happy; Amused; A:4.0; V:6.0; D:4.0;"
MSP-PODCAST_0004_0001.wav,"WORKER00004; Sad; A:3.0; V:3.0; D:4.0;"
MSP-PODCAST_0004_0001.wav,"WORKER00005; Contempt; A:5.0; V:3.0; D:4.0;"
"""


def _podcast_tree(root: Path) -> Path:
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "labels_consensus.csv").write_text(CONSENSUS)
    (root / "Labels" / "labels_detailed.csv").write_text(DETAILED)
    for i, name in enumerate(("0001_0008", "0002_0033", "0003_0010", "0004_0001")):
        _wav(root / "Audios" / f"MSP-PODCAST_{name}.wav", 0.5 + 0.25 * i)
    return root


def test_msp_podcast_rows_votes_split(tmp_path):
    root = _podcast_tree(tmp_path / "MSP-PODCAST")
    ad = get_adapter("msp-podcast")
    assert ad.has_official_split
    rows = ad.build(root)
    assert [r.id for r in rows] == ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0002_0033", "MSP-PODCAST_0003_0010",
                                    "MSP-PODCAST_0004_0001"]
    a, b, c, d = rows
    assert [r.extra["split"] for r in rows] == ["train", "dev", "test", None]
    assert d.extra["split_set"] == "Test2"
    assert (a.speaker, b.speaker, c.speaker) == ("127", None, "3")
    assert all(r.session is None for r in rows)
    assert a.ratings == ["angry", "other", "angry"]
    assert a.raters == ["WORKER00001", "WORKER00007", "WORKER00002"]
    assert a.description == ["irritated", "sarcastic"]
    assert a.extra["secondary"] == ["frustrated", "annoyed", "other"]
    assert a.extra["secondary_raters"] == ["WORKER00001", "WORKER00001", "WORKER00002"]
    assert b.ratings == ["neutral", "neutral"] and b.raters == ["WORKER00001", "WORKER00003"]
    assert (a.emotion, d.emotion) == ("angry", "xxx")
    assert [r.duration for r in rows] == pytest.approx([0.5, 0.75, 1.0, 1.25])
    assert a.extra["arousal"] == 5.2 and a.extra["gender"] == "Female"
    cm = ad.class_map
    assert [cm.map_label(x) for x in ("Contempt", "surprise", "other", "concerned")] == ["contempt", "surprise", "other", None]


def test_msp_podcast_balanced_reads_list(tmp_path):
    root = _podcast_tree(tmp_path / "MSP-PODCAST")
    (root / "Labels" / "balanced_list.txt").write_text("# balanced\nMSP-PODCAST_0003_0010.wav\nMSP-PODCAST_0001_0008\n")
    rows = get_adapter("msp-podcast-balanced").build(root)
    assert [r.id for r in rows] == ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0003_0010"]
    other = tmp_path / "list.txt"
    other.write_text("MSP-PODCAST_9999_0001.wav\n")
    with pytest.raises(AdapterError, match="MSP-PODCAST_9999_0001"):
        get_adapter("msp-podcast-balanced").build(root, balanced_list=other)


def test_msp_podcast_malformed_detailed_names_file(tmp_path):
    root = _podcast_tree(tmp_path / "MSP-PODCAST")
    (root / "Labels" / "labels_detailed.csv").write_text(DETAILED + 'MSP-PODCAST_0003_0010.wav,"A:4.0; V:4.0"\n')
    with pytest.raises(AdapterError, match=r"labels_detailed\.csv:10"):
        get_adapter("msp-podcast").build(root)


# ---------------------------------------------------------------- BIIC-NNIME

NNIME_VOTES = """FileName,Rater,Emotion,Description
angry_01_A_002.wav,R1,Angry,
angry_01_A_002.wav,R2,Frustrated,raising voice
angry_01_A_002.wav,R3,Angry,
angry_01_A_002.wav,R3,Disappointed,
happy_22_B_010.wav,R1,Happy,
happy_22_B_010.wav,R2,Joy,
happy_22_B_010.wav,R4,Other,giggling
sad_17_A_001.wav,R1,Other,
sad_17_A_001.wav,R2,Other,
sad_17_A_001.wav,R3,Other,
neutral_05_B_003.wav,R1,Neutral,
neutral_05_B_003.wav,R2,Neutral,
"""


def _nnime_tree(root: Path) -> Path:
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "annotations.csv").write_text(NNIME_VOTES)
    for name in ("angry_01_A_002", "happy_22_B_010", "sad_17_A_001", "neutral_05_B_003"):
        _wav(root / "Audios" / f"{name}.wav")
    return root


def test_nnime_rows_sessions_and_exclusion(tmp_path):
    from emostore.manifests.adapters.nnime import scan, session_of_dyad

    root = _nnime_tree(tmp_path / "NNIME")
    ad = get_adapter("nnime")
    rows = ad.build(root)
    assert [r.id for r in rows] == ["angry_01_A_002", "happy_22_B_010"]
    a, b = rows
    assert a.ratings == ["angry", "frustrated", "angry", "disappointed"]
    assert a.raters == ["R1", "R2", "R3", "R3"]
    assert a.description == ["raising voice"] and b.description == ["giggling"]
    assert (a.session, a.extra["dyad"], a.speaker) == (1, 1, "01A")
    assert (b.session, b.extra["dyad"], b.speaker) == (1, 22, "22B")
    assert a.duration == pytest.approx(0.5)
    _, excluded = scan(root)
    assert excluded == {"fewer_than_3_raters": 1, "all_other": 1}
    assert [session_of_dyad(d) for d in (1, 4, 5, 8, 9, 12, 13, 16, 17, 21, 22)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 1]
    cm = ad.class_map
    assert [cm.map_label(x) for x in ("Relax", "joy", "other", "calm")] == ["relax", "joy", "other", None]


def test_nnime_malformed_annotations_names_file(tmp_path):
    root = _nnime_tree(tmp_path / "NNIME")
    (root / "Labels" / "annotations.csv").write_text(NNIME_VOTES + "angry_01_A_002.wav,,Angry,\n")
    with pytest.raises(AdapterError, match=r"annotations\.csv:14"):
        get_adapter("nnime").build(root)
