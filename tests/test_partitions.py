"""Partition rules: EMO-SUPERB session tables, EmoBox speaker rules, official splits, leakage check."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.manifests import load_manifest
from emostore.manifests.partitions import (
    Partition,
    PartitionError,
    check_leakage,
    make_partition,
    meta_path,
    read_partition,
    write_partition,
)

from conftest import emodb_clips

EMOTIONS = ("neu", "ang", "hap", "sad")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(uid, speaker, session=None, emotion="neu", **extra):
    return {"id": uid, "speaker": speaker, "session": session, "emotion": emotion, "ratings": [], "raters": [], **extra}


def load(path: Path) -> list[dict]:
    return load_manifest(path, require_audio=False).rows


def sessions_of(ids, by_id, key="session"):
    return {by_id[i][key] for i in ids}


# ----------------------------------------------------------------------------- synthetic corpora


@pytest.fixture
def iemocap(tmp_path) -> Path:
    rows = [row(f"Ses0{s}{g}_impro01_{g}{k:03d}", f"Ses0{s}{g}", s, EMOTIONS[k % 4])
            for s in range(1, 6) for g in "FM" for k in range(4)]
    return write_jsonl(tmp_path / "iemocap.jsonl", rows)


@pytest.fixture
def msp_improv(tmp_path) -> Path:
    rows = [row(f"MSP-IMPROV-S{s:02d}{g}-{k}", f"{g}{s:02d}", s, EMOTIONS[k % 4])
            for s in range(1, 7) for g in "FM" for k in range(3)]
    return write_jsonl(tmp_path / "msp-improv.jsonl", rows)


CREMA_RANGES = {1: (1037, 1054), 2: (1001, 1018), 3: (1073, 1091), 4: (1055, 1072), 5: (1019, 1036)}


def crema_session(actor: int) -> int:
    return next(s for s, (lo, hi) in CREMA_RANGES.items() if lo <= actor <= hi)


def crema_rows(with_session: bool) -> list[dict]:
    return [row(f"{a}_IEO_ANG_HI_{k}", str(a), crema_session(a) if with_session else None, EMOTIONS[k])
            for a in range(1001, 1092) for k in range(2)]


@pytest.fixture
def nnime(tmp_path) -> Path:
    # five sessions, each several dyads of two speakers
    rows = [row(f"nnime_s{s}_d{d}_{p}_{k}", f"S{s}D{d}{p}", s, EMOTIONS[k % 4])
            for s in range(1, 6) for d in range(3) for p in "AB" for k in range(2)]
    return write_jsonl(tmp_path / "nnime.jsonl", rows)


@pytest.fixture
def msp_podcast(tmp_path) -> Path:
    rows = []
    for k in range(40):
        split = ["Train", "Development", "Test1", "Test2"][k % 4]
        rows.append(row(f"MSP-PODCAST_{k:04d}", f"spk{k % 4}_{k % 3}", None, EMOTIONS[k % 4], split=split))
    rows.append(row("MSP-PODCAST_unknown_train", "Unknown", None, "neu", split="Train"))
    rows.append(row("MSP-PODCAST_unknown_test", None, None, "neu", split="Test1"))
    # the msp-podcast adapter's form: normalised split, extra test sets as split None + split_set
    rows += [row(f"MSP-PODCAST_a{k}", f"spk9_{raw}", None, "sad", split=s, split_set=raw)
             for k, (s, raw) in enumerate([("train", "Train"), ("dev", "Development"), ("test", "Test1"),
                                           (None, "Test2"), (None, "Test2")])]
    return write_jsonl(tmp_path / "msp-podcast.jsonl", rows)


def synthetic(speakers: dict[str, int], tmp_path: Path, name: str) -> Path:
    """`speakers`: speaker -> utterances per emotion."""
    rows = [row(f"{spk}_{emo}_{k}", spk, None, emo) for spk, n in speakers.items() for emo in EMOTIONS for k in range(n)]
    return write_jsonl(tmp_path / f"{name}.jsonl", rows)


def emodb_rows() -> list[dict]:
    """EmoDB rows from file names `SSTTTEV.wav` (speaker SS, emotion letter E), not via the adapter."""
    files = emodb_clips()  # the full corpus, or the bundled subset (same speakers and emotions)
    return [row(p.stem, p.name[:2], None, p.name[5]) for p in files]


# ----------------------------------------------------------------------------- EMO-SUPERB tables

IEMOCAP_TABLE = [((1, 2, 3), (4,), (5,)), ((2, 3, 4), (5,), (1,)), ((3, 4, 5), (1,), (2,)),
                 ((1, 4, 5), (2,), (3,)), ((1, 2, 5), (3,), (4,))]
MSP_IMPROV_TABLE = [((1, 2, 3, 4), (5,), (6,)), ((1, 2, 3, 6), (4,), (5,)), ((1, 2, 5, 6), (3,), (4,)),
                    ((1, 4, 5, 6), (2,), (3,)), ((3, 4, 5, 6), (1,), (2,)), ((2, 3, 4, 5), (6,), (1,))]


def assert_table(p: Partition, rows: list[dict], table, session_of):
    by_id = {r["id"]: r for r in rows}
    assert list(p.folds) == [f"fold{k}" for k in range(1, len(table) + 1)]
    for (name, fold), expected in zip(p.folds.items(), table):
        got = tuple(tuple(sorted({session_of(by_id[i]) for i in fold[part]})) for part in ("train", "dev", "test"))
        assert got == expected, name
        # every utterance of the listed sessions, nothing else
        n_expected = sum(1 for r in rows if session_of(r) in set().union(*map(set, expected)))
        assert sum(len(fold[part]) for part in ("train", "dev", "test")) == n_expected


def test_emo_superb_iemocap_table_and_fold5_erratum(iemocap):
    rows = load(iemocap)
    p = make_partition("iemocap", rows, "emo-superb-paper")
    assert_table(p, rows, IEMOCAP_TABLE, lambda r: r["session"])
    by_id = {r["id"]: r for r in rows}
    assert {by_id[i]["speaker"] for i in p.folds["fold1"]["test"]} == {"Ses05F", "Ses05M"}
    assert {by_id[i]["speaker"] for i in p.folds["fold5"]["train"]} == {"Ses01F", "Ses01M", "Ses02F", "Ses02M",
                                                                        "Ses05F", "Ses05M"}
    assert p.speaker_independent and p.meta["rule"] == "emo-superb-paper" and p.meta["seed"] is None
    check_leakage(p, rows)
    # the paper's printed fold 5 (train 1, 2, 4; test 4) puts its test utterances into train
    paper = {name: dict(f) for name, f in p.folds.items()}
    paper["fold5"] = {"train": [r["id"] for r in rows if r["session"] in (1, 2, 4)],
                      "dev": [r["id"] for r in rows if r["session"] == 3],
                      "test": [r["id"] for r in rows if r["session"] == 4]}
    with pytest.raises(PartitionError, match=r"fold 'fold5': id 'Ses04.*appears more than once \(train and test\)"):
        check_leakage(paper, rows)
    # ... and even with the duplicates removed from train, its speakers would leak
    paper["fold5"]["train"] = [r["id"] for r in rows if r["session"] in (1, 2)] + paper["fold5"]["test"][:1]
    paper["fold5"]["test"] = paper["fold5"]["test"][1:]
    with pytest.raises(PartitionError, match=r"fold 'fold5' leaks speakers between train and test: Ses04F"):
        check_leakage(paper, rows)


def test_emo_superb_iemocap_session_from_speaker(tmp_path):
    rows = [row(f"Ses0{s}F_x_{k}", f"Ses0{s}F", None, "neu") for s in range(1, 6) for k in range(2)]
    p = make_partition("IEMOCAP", load(write_jsonl(tmp_path / "m.jsonl", rows)), "emo-superb-paper")
    assert_table(p, rows, IEMOCAP_TABLE, lambda r: int(r["speaker"][4]))


def test_emo_superb_msp_improv_table(msp_improv):
    rows = load(msp_improv)
    p = make_partition("msp-improv", rows, "emo-superb-paper")
    assert_table(p, rows, MSP_IMPROV_TABLE, lambda r: r["session"])
    by_id = {r["id"]: r for r in rows}
    assert {by_id[i]["speaker"] for i in p.folds["fold6"]["test"]} == {"F01", "M01"}
    assert p.speaker_independent
    check_leakage(p, rows)


@pytest.mark.parametrize("with_session", [True, False])
def test_emo_superb_crema_d_actor_ranges(tmp_path, with_session):
    rows = load(write_jsonl(tmp_path / "crema.jsonl", crema_rows(with_session)))
    p = make_partition("crema-d", rows, "emo-superb-paper")
    actor = lambda r: int(r["speaker"])  # noqa: E731
    assert_table(p, rows, IEMOCAP_TABLE, lambda r: crema_session(actor(r)))
    by_id = {r["id"]: r for r in rows}
    for (name, fold), (train, dev, test) in zip(p.folds.items(), IEMOCAP_TABLE):
        for part, sessions in zip(("train", "dev", "test"), (train, dev, test)):
            expected = {a for s in sessions for a in range(CREMA_RANGES[s][0], CREMA_RANGES[s][1] + 1)}
            assert {actor(by_id[i]) for i in fold[part]} == expected, (name, part)
    assert p.speaker_independent
    check_leakage(p, rows)


def test_emo_superb_crema_d_wrong_session_refused(tmp_path):
    rows = crema_rows(True)
    rows[0]["session"] = 3  # actor 1001 is in session 2
    with pytest.raises(PartitionError, match="1001"):
        make_partition("crema-d", load(write_jsonl(tmp_path / "c.jsonl", rows)), "emo-superb-paper")


def test_emo_superb_nnime_rotation(nnime):
    rows = load(nnime)
    p = make_partition("nnime", rows, "emo-superb-paper")
    assert_table(p, rows, IEMOCAP_TABLE, lambda r: r["session"])
    assert p.speaker_independent  # dyads do not cross sessions here
    check_leakage(p, rows)
    # a speaker recurring in two sessions: still the session table, flagged not speaker-independent
    rows[0]["speaker"] = next(r["speaker"] for r in rows if r["session"] == 2)
    p = make_partition("nnime", rows, "emo-superb-paper")
    assert not p.speaker_independent and "session-independent" in p.meta["note"]
    assert_table(p, rows, IEMOCAP_TABLE, lambda r: r["session"])


def test_emo_superb_msp_podcast_official_sets(msp_podcast):
    rows = load(msp_podcast)
    for corpus in ("msp-podcast", "msp-podcast-balanced"):
        p = make_partition(corpus, rows, "emo-superb-paper")
        assert list(p.folds) == ["official"]
        fold = p.folds["official"]
        by_id = {r["id"]: r for r in rows}
        assert {by_id[i].get("split_set", by_id[i]["split"]) for i in fold["dev"]} == {"Development"}
        assert {by_id[i].get("split_set", by_id[i]["split"]) for i in fold["test"]} == {"Test1"}
        assert {by_id[i]["split"] for i in fold["train"]} == {"Train", "train"}
        assert len(fold["train"]) == 12 and len(fold["dev"]) == 11 and len(fold["test"]) == 12
        assert p.meta["excluded"] == {"split 'Test2'": 12}
        assert p.speaker_independent  # "Unknown" speakers are not compared
        check_leakage(p, rows)


def test_emo_superb_unknown_corpus_and_missing_session(tmp_path):
    rows = load(write_jsonl(tmp_path / "m.jsonl", [row("a", "x", 1), row("b", "y", None)]))
    with pytest.raises(PartitionError, match="no partition for corpus 'emodb'"):
        make_partition("emodb", rows, "emo-superb-paper")
    with pytest.raises(PartitionError, match="1 rows have no session"):
        make_partition("nnime", rows, "emo-superb-paper")


# ----------------------------------------------------------------------------- EmoBox


def test_emobox_emodb_four_speaker_disjoint_folds():
    rows = emodb_rows()
    assert len({r["speaker"] for r in rows}) == 10
    p = make_partition("emodb", rows, "emobox-rule", seed=0)
    assert list(p.folds) == ["fold1", "fold2", "fold3", "fold4"]
    assert p.speaker_independent and p.meta["scheme"] == "4 speaker-disjoint folds"
    by_id = {r["id"]: r for r in rows}
    spk = lambda ids: {by_id[i]["speaker"] for i in ids}  # noqa: E731
    test_speakers = [spk(f["test"]) for f in p.folds.values()]
    assert sorted(s for group in test_speakers for s in group) == sorted({r["speaker"] for r in rows})
    tested = Counter(i for f in p.folds.values() for i in f["test"])
    assert set(tested) == set(by_id) and set(tested.values()) == {1}  # each utterance tested exactly once
    sizes = [len(f["test"]) for f in p.folds.values()]
    assert max(sizes) - min(sizes) <= 15  # balanced by utterance count (535 / 4 ≈ 134; bundled 135 / 4 ≈ 34)
    for f in p.folds.values():
        assert len(f["train"]) + len(f["dev"]) + len(f["test"]) == len(rows)
        assert not spk(f["dev"]) & spk(f["train"])  # dev speaker-disjoint from train
        share = len(f["dev"]) / (len(f["dev"]) + len(f["train"]))
        assert 0.10 <= share <= 0.30
    check_leakage(p, rows)
    assert make_partition("emodb", rows, "emobox-rule", seed=0).to_json() == p.to_json()  # deterministic


def test_emobox_five_speakers_loso(tmp_path):
    rows = load(synthetic({f"s{k}": 5 for k in range(5)}, tmp_path, "five"))
    p = make_partition("five", rows, "emobox-rule", seed=3)
    assert p.meta["scheme"] == "leave-one-speaker-out" and p.speaker_independent
    by_id = {r["id"]: r for r in rows}
    assert [{by_id[i]["speaker"] for i in f["test"]} for f in p.folds.values()] == [{f"s{k}"} for k in range(5)]
    for f in p.folds.values():
        assert len(f["test"]) == 20 and len(f["dev"]) == 20 and len(f["train"]) == 60  # one dev speaker = 25%
        assert not {by_id[i]["speaker"] for i in f["dev"]} & {by_id[i]["speaker"] for i in f["train"]}
    check_leakage(p, rows)


def test_emobox_two_speakers_speaker_dependent(tmp_path):
    counts = {"a": 7, "b": 6}  # per emotion per speaker: 13 per emotion, 25% = 3.25
    rows = load(synthetic(counts, tmp_path, "two"))
    p = make_partition("two", rows, "emobox-rule", seed=1)
    assert list(p.folds) == ["fold1"] and not p.speaker_independent
    assert p.meta["scheme"] == "speaker-dependent" and "2 speakers" in p.meta["reason"]
    fold = p.folds["fold1"]
    by_id = {r["id"]: r for r in rows}
    per_emotion = Counter(r["emotion"] for r in rows)
    test_emotion = Counter(by_id[i]["emotion"] for i in fold["test"])
    for emo, n in per_emotion.items():
        assert abs(test_emotion[emo] - 0.25 * n) <= 1
    assert sorted(fold["train"] + fold["dev"] + fold["test"]) == sorted(by_id)
    dev_emotion = Counter(by_id[i]["emotion"] for i in fold["dev"])
    for emo, n in per_emotion.items():
        assert abs(dev_emotion[emo] - 0.2 * (n - test_emotion[emo])) <= 1
    check_leakage(p, rows, speaker_independent=False)
    with pytest.raises(PartitionError, match="leaks speakers"):
        check_leakage(p, rows, speaker_independent=True)
    again = make_partition("two", rows, "emobox-rule", seed=1)
    assert again.to_json() == p.to_json()
    assert make_partition("two", rows, "emobox-rule", seed=2).to_json() != p.to_json()


def test_emobox_unbalanced_speakers_fall_back(tmp_path):
    rows = load(synthetic({"big": 40, "s1": 3, "s2": 3, "s3": 3, "s4": 3}, tmp_path, "unbal"))
    p = make_partition("unbal", rows, "emobox-rule")
    assert p.meta["scheme"] == "speaker-dependent" and "big" in p.meta["reason"]
    # LOSO range with a 10x spread between largest and smallest speaker
    rows = load(synthetic({"s1": 22, "s2": 20, "s3": 20, "s4": 2}, tmp_path, "spread"))
    p = make_partition("spread", rows, "emobox-rule")
    assert p.meta["scheme"] == "speaker-dependent" and "10" in p.meta["reason"]


def test_emobox_keeps_official_split(msp_podcast):
    rows = load(msp_podcast)
    p = make_partition("msp-podcast", rows, "emobox-rule", seed=0)
    assert p.meta["scheme"] == "official split" and list(p.folds) == ["official"]
    assert p.to_json() == make_partition("msp-podcast", rows, "official").to_json()


def test_official_rule(tmp_path, msp_podcast):
    rows = load(msp_podcast)
    p = make_partition("msp-podcast", rows, "official")
    assert p.meta["rule"] == "official" and len(p.folds["official"]["dev"]) == 11
    # no dev set: 20% of train held out (here by speakers)
    no_dev = [row(f"u{k}", f"s{k % 5}", None, EMOTIONS[k % 4], split="train" if k < 40 else "test") for k in range(50)]
    p = make_partition("x", load(write_jsonl(tmp_path / "nodev.jsonl", no_dev)), "official")
    f = p.folds["official"]
    assert len(f["test"]) == 10 and len(f["dev"]) + len(f["train"]) == 40 and f["dev"]
    leaky = [row(f"u{k}", f"s{k % 3}", None, "neu", split="train" if k < 8 else "test") for k in range(12)]
    p = make_partition("x", load(write_jsonl(tmp_path / "leaky.jsonl", leaky)), "official")
    assert not p.speaker_independent and "shares speakers" in p.meta["note"]
    with pytest.raises(PartitionError, match="no official `split`"):
        make_partition("x", load(synthetic({"a": 1}, tmp_path, "nosplit")), "official")


# ----------------------------------------------------------------------------- leakage check


def test_leakage_check_refuses_leaks_duplicates_and_unknown_ids(tmp_path):
    rows = load(synthetic({"alice": 2, "bob": 2, "carol": 2}, tmp_path, "leak"))
    ids = {s: [r["id"] for r in rows if r["speaker"] == s] for s in ("alice", "bob", "carol")}
    good = {"f1": {"train": ids["alice"], "dev": ids["bob"], "test": ids["carol"]}}
    check_leakage(good, rows)
    leaking = {"f1": {"train": ids["alice"], "dev": ids["bob"], "test": ids["carol"]},
               "f2": {"train": ids["alice"][:4] + ids["carol"][:2], "dev": ids["bob"][:4],
                      "test": ids["alice"][4:] + ids["bob"][4:] + ids["carol"][2:]}}
    with pytest.raises(PartitionError) as err:
        check_leakage(leaking, rows)
    msg = str(err.value)
    assert "'f2'" in msg and "alice" in msg and "carol" in msg and "bob" not in msg
    dev_leak = {"f1": {"train": ids["alice"], "dev": ids["bob"] + ids["carol"][:1], "test": ids["carol"][1:]}}
    with pytest.raises(PartitionError, match="'f1' leaks speakers between dev and test: carol"):
        check_leakage(dev_leak, rows)
    check_leakage(leaking, rows, speaker_independent=False)  # speaker-dependent: overlap allowed
    dup = {"f1": {"train": ids["alice"], "dev": ids["alice"][:1], "test": ids["carol"]}}
    with pytest.raises(PartitionError, match="appears more than once"):
        check_leakage(dup, rows, speaker_independent=False)
    ghost = {"f1": {"train": ids["alice"] + ["nope"], "dev": [], "test": ids["carol"]}}
    with pytest.raises(PartitionError, match="not in the manifest: 'nope'"):
        check_leakage(ghost, rows)
    with pytest.raises(PartitionError, match="fold .f1.: dev is missing"):
        check_leakage({"f1": {"train": [], "test": []}}, rows)


def test_write_read_round_trip(tmp_path, iemocap):
    p = make_partition("iemocap", load_manifest(iemocap, require_audio=False), "emo-superb-paper")
    out = write_partition(p, tmp_path / "parts" / "iemocap.json")
    assert meta_path(out) == tmp_path / "parts" / "iemocap.meta.json"
    back = read_partition(out)
    assert back.folds == p.folds and back.meta["manifest_sha256"] == p.meta["manifest_sha256"]
    assert back.meta["speaker_independent"] is True


# ----------------------------------------------------------------------------- CLI


def test_cli_partition_round_trip(tmp_path, iemocap):
    out = tmp_path / "iemocap.json"
    res = CliRunner().invoke(main, ["partition", "iemocap", str(iemocap), "--rule", "emo-superb-paper", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "5 folds" in res.output and "speaker-independent" in res.output
    written = json.loads(out.read_text())
    assert list(written) == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    for fold in written.values():
        assert list(fold) == ["train", "dev", "test"]
        assert all(isinstance(i, str) for part in fold.values() for i in part)
    expected = make_partition("iemocap", load_manifest(iemocap, require_audio=False), "emo-superb-paper")
    assert written == expected.to_json()
    meta = json.loads((tmp_path / "iemocap.meta.json").read_text())
    assert meta["rule"] == "emo-superb-paper" and meta["corpus"] == "iemocap" and meta["speaker_independent"] is True
    assert meta["format"] == "emostore-partition/1"


def test_cli_partition_seed_and_errors(tmp_path):
    manifest = synthetic({"a": 4, "b": 4}, tmp_path, "two")
    out = tmp_path / "two.json"
    runner = CliRunner()
    res = runner.invoke(main, ["partition", "two", str(manifest), "--rule", "emobox-rule", "--out", str(out), "--seed", "7"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "two.meta.json").read_text())["seed"] == 7
    res = runner.invoke(main, ["partition", "emodb", str(manifest), "--rule", "emo-superb-paper", "--out", str(out)])
    assert res.exit_code == 1 and "no partition for corpus" in res.output and "Traceback" not in res.output
