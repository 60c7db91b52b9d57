"""Corpus adapters -> manifests (real EmoDB and CREMA-D tables, RAVDESS/CSV fixtures) and `manifest check`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.manifests import load_manifest
from emostore.manifests.adapters.base import AdapterError, get_adapter
from emostore.manifests.check import check_manifest

from conftest import CREMA, CREMA_SOURCE, need_data, write_manifest, write_wav



@pytest.fixture(scope="module")
def crema() -> Path:
    """CREMA-D's rating tables (from EMOSTORE_TEST_DATA: a clone has none, so these tests skip)."""
    return need_data(CREMA / "tabulatedVotes.csv", CREMA_SOURCE).parent


@pytest.fixture(scope="module")
def crema_rows(crema):
    return get_adapter("crema-d").build(crema)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------- EmoDB (all 535 real clips)

def test_emodb_all_clips_speakers_and_class_counts(full_emodb_dir):
    rows = get_adapter("emodb").build(full_emodb_dir.parent)
    assert len(rows) == 535 and len({r.id for r in rows}) == 535
    assert sorted({r.speaker for r in rows}) == ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    assert Counter(r.extra["emotion_code"] for r in rows) == {
        "W": 127, "L": 81, "E": 46, "A": 69, "F": 71, "T": 62, "N": 79}
    assert Counter(r.emotion for r in rows) == {
        "anger": 127, "boredom": 81, "disgust": 46, "fear": 69, "happiness": 71, "sadness": 62, "neutral": 79}
    assert all(r.ratings == [] and r.session is None for r in rows)
    assert all(r.duration == pytest.approx(2.0) for r in rows)  # this copy: every clip is 2.0 s
    first = rows[0]
    assert (first.id, first.extra["text"], first.extra["version"], first.extra["sex"]) == ("03a01Fa", "a01", "a", "m")
    assert {r.extra["sex"] for r in rows if r.speaker == "08"} == {"f"}
    # the corpus's listening test: every selected clip was recognised by >= 80 % of listeners (the
    # README's naturalness >= 60 % rule does not hold for 42 of the 535 in the real table: min 45 %)
    assert min(r.extra["recognition"] for r in rows) >= 80
    assert sum(r.extra["naturalness"] < 60 for r in rows) == 42
    assert first.extra["recognition"] == 90.0 and first.extra["naturalness"] == 75.0  # decimal comma parsed
    cm = get_adapter("emodb").class_map
    assert cm.version == "1" and cm.source and cm.map_label("W") == "anger"


def test_emodb_cli_build_then_check_is_clean(full_emodb_dir, tmp_path):
    out = tmp_path / "emodb.jsonl"
    r = run("manifest", "build", "emodb", full_emodb_dir.parent, "--out", out)
    assert r.exit_code == 0, r.output
    assert "535 utterances" in r.output
    m = load_manifest(out)  # audio written relative to the manifest, resolves back
    assert len(m) == 535 and Path(m.audio_paths()[0]).is_file()
    r = run("manifest", "check", out)
    assert r.exit_code == 0, r.output
    assert "0 errors, 0 warnings" in r.output and "anger               127" in r.output


# ---------------------------------------------------------------- CREMA-D (real rating tables)

def test_crema_d_votes_sessions_and_labels(crema_rows):
    rows = crema_rows
    assert len(rows) == 7442 and len({r.speaker for r in rows}) == 91
    n = sum(len(r.ratings) for r in rows)
    assert n == 68568 and n / len(rows) == pytest.approx(9.2137, abs=1e-3)  # voice-only
    first = next(r for r in rows if r.id == "1001_IEO_NEU_XX")  # table row "100001": H 1, N 10
    assert Counter(first.ratings) == {"h": 1, "n": 10}
    assert first.raters == [f"v{i}" for i in range(11)]
    assert (first.emotion, first.extra["sentence"], first.extra["level"]) == ("neu", "IEO", "XX")
    assert first.audio is None and first.duration is None and first.extra["sex"] == "Male"
    by_actor = {r.speaker: r.session for r in rows}
    assert [by_actor[a] for a in ("1001", "1018", "1019", "1036", "1037", "1054", "1055", "1072", "1073", "1091")] \
        == [2, 2, 5, 5, 1, 1, 4, 4, 3, 3]
    assert Counter(r.emotion for r in rows)["neu"] == 1087
    cm = get_adapter("crema-d").class_map
    assert {cm.map_label(v) for r in rows for v in r.ratings} == set(cm.classes)


def test_crema_d_other_modalities_are_selectable(crema):
    face = get_adapter("crema-d").build(crema, modality="face")
    assert len(face) == 7442 and sum(len(r.ratings) for r in face) != 68568
    with pytest.raises(AdapterError, match="modality"):
        get_adapter("crema-d").build(crema, modality="smell")


def test_crema_d_ratings_only_manifest_via_cli(crema, tmp_path):
    out = tmp_path / "m.jsonl"
    r = run("manifest", "build", "crema-d", crema, "--out", out)
    assert r.exit_code == 0, r.output
    with pytest.raises(Exception, match="no 'audio'"):
        load_manifest(out)
    m = load_manifest(out, require_audio=False)
    assert len(m) == 7442 and m.rows[0]["audio"] is None and m.rows[0]["session"] == 2
    r = run("manifest", "check", out)
    assert r.exit_code == 0, r.output  # no audio is a warning, not an error
    assert "without audio" in r.output and "9.21" in r.output


def test_crema_d_uses_audio_when_present(tmp_path):
    (tmp_path / "AudioWAV").mkdir()
    write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav", np.zeros(8000, np.float32), 16000)
    (tmp_path / "SentenceFilenames.csv").write_text('"Stimulus_Number","Filename"\n1,"1001_DFA_ANG_XX"\n2,"1040_ITS_SAD_HI"\n')
    rows = get_adapter("crema-d").build(tmp_path)
    assert rows[0].audio.endswith("AudioWAV/1001_DFA_ANG_XX.wav") and rows[0].duration == pytest.approx(0.5)
    assert rows[1].audio is None and rows[1].session == 1 and rows[1].ratings == []


# ---------------------------------------------------------------- RAVDESS (fixture tree)

def test_ravdess_fixture_tree(tmp_path):
    wave = np.zeros(1600, np.float32)
    for actor, names in {"01": ["03-01-05-01-02-01-01", "03-01-01-01-01-01-01"],
                         "12": ["03-02-06-02-01-02-12", "03-01-08-02-02-02-12"]}.items():
        d = tmp_path / f"Actor_{actor}"
        d.mkdir()
        for n in names:
            write_wav(d / f"{n}.wav", wave, 16000)
    rows = {r.id: r for r in get_adapter("ravdess").build(tmp_path)}
    assert len(rows) == 4
    r = rows["03-02-06-02-01-02-12"]
    assert (r.speaker, r.emotion, r.extra["channel"], r.extra["intensity"], r.extra["sex"]) == \
        ("12", "fearful", "song", "strong", "f")
    assert (r.extra["statement"], r.extra["repetition"], r.extra["modality"]) == ("01", 2, "audio-only")
    assert rows["03-01-05-01-02-01-01"].emotion == "angry" and rows["03-01-05-01-02-01-01"].extra["sex"] == "m"
    assert rows["03-01-08-02-02-02-12"].duration == pytest.approx(0.1)
    assert len(get_adapter("ravdess").build(tmp_path, channel="speech")) == 3
    write_wav(tmp_path / "Actor_01" / "03-01-09-01-01-01-01.wav", wave, 16000)
    with pytest.raises(AdapterError, match="unknown emotion code '09'"):
        get_adapter("ravdess").build(tmp_path)


# ---------------------------------------------------------------- generic CSV (fixture)

def test_generic_csv_column_mapping(tmp_path):
    (tmp_path / "clips").mkdir()
    write_wav(tmp_path / "clips" / "a.wav", np.zeros(3200, np.float32), 16000)
    table = tmp_path / "table.csv"
    table.write_text("file,path,who,sess,emo,votes,notes,lang\n"
                     "u1,clips/a.wav,s1,2,Angry,angry;sad;Angry,loud voice,de\n"
                     "u2,,s2,,,,,en\n")
    out = tmp_path / "m.jsonl"
    r = run("manifest", "build", "csv", table, "--out", out, "--option", "id=file", "--option", "audio=path",
            "--option", "speaker=who", "--option", "session=sess", "--option", "label=emo",
            "--option", "ratings=votes", "--option", "description=notes")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    a, b = rows
    assert (a["id"], a["speaker"], a["session"], a["emotion"]) == ("u1", "s1", 2, "angry")
    assert a["ratings"] == ["angry", "sad", "angry"] and a["raters"] == ["r0", "r1", "r2"]
    assert a["description"] == ["loud voice"] and a["lang"] == "de" and a["corpus"] == "csv"
    assert (tmp_path / a["audio"]).resolve() == (tmp_path / "clips" / "a.wav").resolve()
    assert b["audio"] is None and b["ratings"] == [] and b["emotion"] is None
    r = run("manifest", "check", out)
    assert r.exit_code == 0, r.output
    assert "no ratings and no emotion" in r.output and "0.2 s" in r.output  # duration probed from the header
    r = run("manifest", "build", "csv", table, "--out", out, "--option", "id=file", "--option", "label=nope")
    assert r.exit_code == 1 and "no column(s) ['nope']" in r.output


# ---------------------------------------------------------------- manifest check catches broken manifests

@pytest.fixture
def good_row(tmp_path):
    write_wav(tmp_path / "ok.wav", np.zeros(1600, np.float32), 16000)
    return {"id": "ok", "audio": "ok.wav", "speaker": "s", "ratings": ["a"], "raters": ["r1"], "emotion": "ang"}


@pytest.mark.parametrize("broken, message", [
    ({"id": "x", "audio": "gone.wav", "emotion": "ang"}, "1 audio files missing: x (gone.wav)"),
    ({"id": "ok", "audio": "ok.wav", "emotion": "ang"}, "1 duplicate ids: ok"),
    ({"id": "x", "audio": "ok.wav", "duration": 0, "emotion": "ang"}, "1 rows with zero duration: x"),
    ({"id": "x", "audio": "ok.wav", "duration": -1.5, "emotion": "ang"}, "1 rows with negative duration: x (-1.5)"),
    ({"id": "x", "audio": "ok.wav", "ratings": ["a", "d"], "raters": ["r1"]}, "1 rows whose ratings and raters differ in length: x (2 ratings, 1 raters)"),
])
def test_check_catches_broken_manifest_through_the_cli(tmp_path, good_row, broken, message):
    path = write_manifest(tmp_path / "m.jsonl", [good_row, broken])
    r = run("manifest", "check", path)
    assert r.exit_code == 1, r.output
    assert f"error: {message}" in r.output and "NOT OK" in r.output
    assert run("manifest", "check", write_manifest(tmp_path / "g.jsonl", [good_row])).exit_code == 0


def test_check_reports_unknown_labels_and_empty_classes(tmp_path, good_row):
    rows = [good_row, {"id": "y", "audio": "ok.wav", "ratings": ["q"], "raters": ["r1"]}]
    rep = check_manifest(write_manifest(tmp_path / "m.jsonl", rows), corpus="crema-d")
    assert rep.ok and rep.unknown_labels == {"q": 1}
    assert rep.class_counts["angry"] == 1 and rep.class_counts["sad"] == 0
    assert any("classes with no utterance" in w for w in rep.warnings)
    assert rep.stats["total duration"] == "0.2 s"  # probed from the headers


def test_check_catches_unreadable_audio(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    rep = check_manifest(write_manifest(tmp_path / "m.jsonl", [{"id": "b", "audio": "bad.wav", "emotion": "x"}]))
    assert not rep.ok and "1 audio files unreadable: b" in rep.errors[0]


def test_classes_command_prints_the_class_map():
    r = run("manifest", "classes", "emodb")
    assert r.exit_code == 0
    assert "classes  anger, boredom, disgust, fear, happiness, sadness, neutral" in r.output
    assert "version  1" in r.output and "Burkhardt" in r.output
    r = run("manifest", "classes", "nope")
    assert r.exit_code == 1 and "unknown corpus 'nope'" in r.output
