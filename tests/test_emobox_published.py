"""EmoBox's published fold lists: shipped copy, reading a checkout, folds for a manifest, mismatches."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostore.manifests import emobox_lists
from emostore.manifests import emobox_published as eb
from emostore.manifests.adapters.base import adapters
from emostore.manifests.emobox_lists import PublishedListError, PublishedLists
from emostore.manifests.partitions import PartitionError

from conftest import CREMA, CREMA_SOURCE, need_data, need_full_emodb

# EmoBox's key and wav path for an emostore id, per corpus (as in EmoBox's data/*.jsonl).
WAV = {
    "emodb": lambda i: f"downloads/emodb/wav/{i}.wav",
    "cremad": lambda i: f"downloads/cremad/AudioWAV/{i}.wav",
    "ravdess": lambda i: f"downloads/ravdess/audio/Audio_Speech_Actors_01-24/Actor_{i[-2:]}/{i}.wav",
    "iemocap": lambda i: f"downloads/iemocap/Session{int(i[3:5])}/sentences/wav/{i.rsplit('_', 1)[0]}/{i}.wav",
    "msppodcast": lambda i: f"downloads/msppodcast/Audio/{i}.wav",
}


def key(emobox: str, uid: str) -> str:
    return f"{emobox}-{uid.replace('_', '-') if emobox == 'cremad' else uid}"


def write_emobox_tree(root: Path, emobox: str, folds: dict[str, dict[str, list[str]]]) -> Path:
    """An EmoBox checkout's data/<emobox>/fold_<k>/<emobox>_<part>_fold_<k>.jsonl for ``folds``."""
    for k, fold in enumerate(folds.values(), 1):
        d = root / "data" / emobox / f"fold_{k}"
        d.mkdir(parents=True, exist_ok=True)
        for part, ids in fold.items():
            lines = [json.dumps({"key": key(emobox, i), "dataset": emobox, "wav": WAV[emobox](i), "type": "raw",
                                 "sample_rate": 16000, "task": "category", "emo": "x", "channel": 1}) for i in ids]
            (d / f"{emobox}_{part}_fold_{k}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def adapter_rows(corpus: str, root: Path, **options) -> list[dict]:
    return [u.to_json() for u in adapters()[corpus].build(root, **options)]


@pytest.fixture(scope="module")
def emodb_rows() -> list[dict]:
    return adapter_rows("emodb", need_full_emodb().parent)  # the published lists name all 535 clips


def assert_published(folds: dict, lists: PublishedLists) -> None:
    """Test as published (same order); train + dev = the published train (dev from it, order kept)."""
    assert list(folds) == list(lists.folds)
    for name, fold in folds.items():
        pub = lists.folds[name]
        assert fold["test"] == pub["test"]
        if "valid" in pub:
            assert (fold["train"], fold["dev"]) == (pub["train"], pub["valid"])
        else:
            assert sorted(fold["train"] + fold["dev"]) == sorted(pub["train"])
            assert [i for i in pub["train"] if i in set(fold["train"])] == fold["train"]


# ----------------------------------------------------------------------------- shipped copy


def test_shipped_lists_have_emobox_published_sizes():
    sizes = {c: {f: {p: len(ids) for p, ids in fold.items()} for f, fold in emobox_lists.shipped(c).folds.items()}
             for c in emobox_lists.shipped_corpora()}
    assert sorted(sizes) == ["crema-d", "emodb", "iemocap", "msp-podcast", "ravdess"]
    assert sizes["emodb"] == {f"fold{k}": {"train": 428, "test": 107} for k in range(1, 6)}
    assert sizes["ravdess"] == {f"fold{k}": {"train": 1200, "test": 240} for k in range(1, 7)}
    assert [f["test"] for f in sizes["iemocap"].values()] == [1085, 1023, 1151, 1031, 1241]
    assert all(f["train"] + f["test"] == 5531 for f in sizes["iemocap"].values())
    assert sizes["crema-d"] == {"fold1": {"train": 5586, "test": 1856}}
    assert sizes["msp-podcast"] == {"fold1": {"test": 15326, "valid": 7800}}
    assert emobox_lists.shipped("msp-podcast").unavailable == {"fold1": ["train"]}
    # first entries of EmoBox's files (data/emodb/fold_1/emodb_test_fold_1.jsonl, ...), in their order
    assert emobox_lists.shipped("emodb").folds["fold1"]["test"][:3] == ["03a02Wb", "03a02Wc", "03a05Wb"]
    assert emobox_lists.shipped("cremad").folds["fold1"]["train"][:2] == ["1074_IWL_ANG_XX", "1039_TIE_ANG_XX"]
    assert emobox_lists.shipped("ravdess").folds["fold1"]["test"][0] == "03-01-07-02-02-02-11"
    assert emobox_lists.shipped("iemocap").folds["fold5"]["test"][0] == "Ses05F_script02_2_F005"
    for c in emobox_lists.shipped_corpora():
        assert emobox_lists.shipped(c).source["commit"] == "08280f279d47fb55d2c614061c70523d0a338d6b"


def test_shipped_folds_are_disjoint_and_cover_the_corpus_list():
    for c in ("emodb", "ravdess", "iemocap"):
        lists = emobox_lists.shipped(c)
        tests = [i for fold in lists.folds.values() for i in fold["test"]]
        assert len(tests) == len(set(tests)) == len(lists.ids())  # every id tested exactly once
        for fold in lists.folds.values():
            assert set(fold["train"]) == lists.ids() - set(fold["test"])


def test_compact_form_round_trips_every_shipped_corpus():
    total = 0
    for c in emobox_lists.shipped_corpora():
        lists = emobox_lists.shipped(c)
        data = emobox_lists.encode(lists)
        assert emobox_lists.decode(data) == lists
        total += len(data)
    assert total < 150_000  # 109 kB for 5 corpora (the jsonl files are 18.7 MB)


def test_compact_form_keeps_orders_that_no_single_list_gives():
    # train and test orders disagree with any sorted order: both must come back as written
    lists = PublishedLists("crema-d", "cremad", {
        "fold1": {"train": ["1074_IWL_ANG_XX", "1039_TIE_ANG_XX", "1001_DFA_ANG_XX"],
                  "test": ["1052_WSI_ANG_XX", "1002_DFA_ANG_XX"]},
        "fold2": {"train": ["1052_WSI_ANG_XX", "1074_IWL_ANG_XX", "1002_DFA_ANG_XX"],
                  "test": ["1039_TIE_ANG_XX", "1001_DFA_ANG_XX"]}}, {"commit": "x"})
    assert emobox_lists.decode(emobox_lists.encode(lists)) == lists


def test_contradictory_orders_cannot_be_packed():
    lists = PublishedLists("emodb", "emodb", {"fold1": {"train": ["a", "b"], "test": ["c"]},
                                              "fold2": {"train": ["b", "a"], "test": ["c"]}})
    with pytest.raises(PublishedListError, match="inconsistently"):
        emobox_lists.encode(lists)


# ----------------------------------------------------------------------------- reading a checkout


def test_from_dir_equals_shipped_copy(tmp_path):
    for c in ("emodb", "ravdess", "crema-d"):
        shipped = emobox_lists.shipped(c)
        root = write_emobox_tree(tmp_path / c, shipped.emobox, shipped.folds)
        read = emobox_lists.from_dir(root, c)
        assert read.folds == shipped.folds
        assert emobox_lists.from_dir(root / "data", shipped.emobox).folds == shipped.folds  # data/ dir, EmoBox name


@pytest.mark.skipif(not os.environ.get("EMOSTORE_EMOBOX_DIR"), reason="set EMOSTORE_EMOBOX_DIR to an EmoBox checkout")
def test_shipped_copy_equals_a_real_emobox_checkout():
    root = Path(os.environ["EMOSTORE_EMOBOX_DIR"])
    for c in emobox_lists.shipped_corpora():
        shipped = emobox_lists.shipped(c)
        absent = tuple({p for parts in shipped.unavailable.values() for p in parts})
        read = emobox_lists._read_dir(root, c, absent)
        assert {f: {p: ids for p, ids in fold.items() if p not in shipped.unavailable.get(f, [])}
                for f, fold in read.folds.items()} == shipped.folds


def test_from_dir_refuses_a_key_that_does_not_name_its_audio_file(tmp_path):
    write_emobox_tree(tmp_path, "emodb", {"fold1": {"train": ["03a01Wa"], "test": ["03a02Wb"]}})
    f = tmp_path / "data/emodb/fold_1/emodb_test_fold_1.jsonl"
    f.write_text(f.read_text().replace("emodb-03a02Wb", "emodb-03a02Wc"))
    with pytest.raises(PublishedListError, match=r"emodb_test_fold_1.jsonl:1: key 'emodb-03a02Wc'"):
        emobox_lists.from_dir(tmp_path, "emodb")


def test_from_dir_refuses_an_id_listed_in_train_and_test(tmp_path):
    write_emobox_tree(tmp_path, "emodb", {"fold1": {"train": ["03a01Wa", "03a02Wb"], "test": ["03a02Wb"]}})
    with pytest.raises(PublishedListError, match="'03a02Wb' is listed twice"):
        emobox_lists.from_dir(tmp_path, "emodb")


def test_from_dir_names_a_missing_corpus_or_list(tmp_path):
    with pytest.raises(PublishedListError, match="no EmoBox lists for ravdess"):
        emobox_lists.from_dir(tmp_path, "ravdess")
    write_emobox_tree(tmp_path, "emodb", {"fold1": {"train": ["03a01Wa"], "test": ["03a02Wb"]}})
    (tmp_path / "data/emodb/fold_1/emodb_train_fold_1.jsonl").unlink()
    with pytest.raises(PublishedListError, match="emodb_train_fold_1.jsonl: missing"):
        emobox_lists.from_dir(tmp_path, "emodb")


# ----------------------------------------------------------------------------- folds for a manifest


def test_real_emodb_manifest_gets_the_published_folds_exactly(emodb_rows):
    lists = emobox_lists.shipped("emodb")
    assert {r["id"] for r in emodb_rows} == lists.ids()  # every published id maps to a row and back
    folds, meta = eb.build_folds("emodb", emodb_rows)
    assert_published(folds, lists)
    assert [len(f["test"]) for f in folds.values()] == [107] * 5
    assert [(len(f["train"]), len(f["dev"])) for f in folds.values()] == [(342, 86)] * 5
    # the published EmoDB folds are not speaker-disjoint: all 10 speakers are tested in every fold
    assert meta["speaker_independent"] is False
    assert [f["test_speakers_also_in_train"] for f in meta["folds"].values()] == [10] * 5
    assert meta["seed"] == eb.RECIPE_SEED and meta["rule"] == "emobox"
    assert meta["source"]["path"] == "data/emodb" and "excluded" not in meta and "mismatch" not in meta


def test_real_crema_d_rating_manifest_matches_the_published_list():
    rows = adapter_rows("crema-d", need_data(CREMA, CREMA_SOURCE))
    folds, meta = eb.build_folds("cremad", rows)
    assert_published(folds, emobox_lists.shipped("crema-d"))
    emo = Counter(i.split("_")[2] for i in folds["fold1"]["test"])
    assert emo == {"ANG": 317, "DIS": 317, "FEA": 317, "HAP": 317, "SAD": 317, "NEU": 271}
    assert meta["folds"]["fold1"]["test_speakers_also_in_train"] == 91  # one speaker-dependent split


def _silence(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(160, dtype="float32"), 16000)


# Real file names from EmoBox's lists, two folds each.
TREES = {
    "emodb": {"fold1": {"train": ["03a01Wa", "03a04Wc", "08a02Wc"], "test": ["03a02Wb", "03a02Wc"]},
              "fold2": {"train": ["03a02Wb", "03a02Wc", "08a02Wc"], "test": ["03a01Wa", "03a04Wc"]}},
    "ravdess": {"fold1": {"train": ["03-01-05-01-02-01-18", "03-01-08-01-02-01-18"],
                          "test": ["03-01-07-02-02-02-11", "03-01-07-02-01-01-11"]},
                "fold2": {"train": ["03-01-07-02-02-02-11", "03-01-07-02-01-01-11"],
                          "test": ["03-01-05-01-02-01-18", "03-01-08-01-02-01-18"]}},
    "cremad": {"fold1": {"train": ["1074_IWL_ANG_XX", "1039_TIE_ANG_XX"], "test": ["1052_WSI_ANG_XX", "1077_IEO_ANG_MD"]},
               "fold2": {"train": ["1052_WSI_ANG_XX", "1077_IEO_ANG_MD"], "test": ["1074_IWL_ANG_XX", "1039_TIE_ANG_XX"]}},
}
AUDIO = {
    "emodb": lambda root, i: root / "wav" / f"{i}.wav",
    "ravdess": lambda root, i: root / f"Actor_{i[-2:]}" / f"{i}.wav",
    "cremad": lambda root, i: root / "AudioWAV" / f"{i}.wav",
}


@pytest.mark.parametrize("emobox", sorted(TREES))
def test_adapter_manifest_of_real_file_names_gets_the_listed_folds(tmp_path, emobox):
    folds_in = TREES[emobox]
    corpus, _ = emobox_lists.names(emobox)
    audio = tmp_path / "corpus"
    for i in {i for f in folds_in.values() for p in f.values() for i in p}:
        _silence(AUDIO[emobox](audio, i))
    rows = adapter_rows(corpus, audio)
    lists = emobox_lists.from_dir(write_emobox_tree(tmp_path / "EmoBox", emobox, folds_in), corpus)
    assert lists.folds == folds_in  # keys (cremad-1052-WSI-ANG-XX) -> native names (1052_WSI_ANG_XX)
    folds, meta = eb.build_folds(corpus, rows, lists=lists)
    assert_published(folds, lists)
    assert folds == eb.build_folds(corpus, rows, emobox_dir=tmp_path / "EmoBox")[0]


def test_missing_published_ids_are_refused_with_counts_per_fold(emodb_rows):
    lists = emobox_lists.shipped("emodb")
    gone = {lists.folds["fold1"]["test"][0], lists.folds["fold2"]["test"][0], lists.folds["fold2"]["test"][1]}
    rows = [r for r in emodb_rows if r["id"] not in gone]
    with pytest.raises(PublishedListError) as err:
        eb.build_folds("emodb", rows)
    msg = str(err.value)
    assert isinstance(err.value, PartitionError)
    assert "fold1 train lacks 2 of 428 (03a07Wc, 03b02Wb), test lacks 1 of 107 (03a02Wb)" in msg
    assert "fold2 train lacks 1 of 428 (03a02Wb), test lacks 2 of 107 (03a07Wc, 03b02Wb)" in msg
    assert "fold3 train lacks 3 of 428" in msg and "--allow-mismatch" in msg
    folds, meta = eb.build_folds("emodb", rows, allow_mismatch=True)
    assert [len(f["test"]) for f in folds.values()] == [106, 105, 107, 107, 107]
    assert all(not gone & set(f[p]) for f in folds.values() for p in f)
    assert meta["mismatch"]["fold1"] == {"train": 2, "test": 1} and meta["mismatch"]["fold3"] == {"train": 3}
    # the dev split is EmoBox's over what is present (its recipe drops entries it cannot find first)
    assert sorted(folds["fold3"]["train"] + folds["fold3"]["dev"]) == sorted(set(lists.folds["fold3"]["train"]) - gone)


def test_rows_in_no_published_list_are_refused_unless_allowed(emodb_rows):
    extra = [dict(emodb_rows[0], id="03a01Wz"), dict(emodb_rows[0], id="03a01Wy")]
    rows = emodb_rows + extra
    with pytest.raises(PublishedListError, match=r"2 manifest rows are in no published list \(03a01Wz, 03a01Wy\); "
                                                 r"pass allow_extra \(CLI --allow-extra\)"):
        eb.build_folds("emodb", rows)
    folds, meta = eb.build_folds("emodb", rows, allow_extra=True)
    assert folds == eb.build_folds("emodb", emodb_rows)[0]
    assert meta["excluded"] == {"not in EmoBox's published lists": 2}


def test_ravdess_songs_are_extra_rows_for_emobox_speech_only_lists(tmp_path):
    lists = emobox_lists.from_dir(write_emobox_tree(tmp_path / "EmoBox", "ravdess", TREES["ravdess"]), "ravdess")
    audio = tmp_path / "corpus"
    for i in (*lists.ids(), "03-02-05-01-02-01-18"):  # one song (vocal channel 02)
        _silence(AUDIO["ravdess"](audio, i))
    with pytest.raises(PublishedListError, match=r"1 manifest rows are in no published list \(03-02-05-01-02-01-18\)"):
        eb.build_folds("ravdess", adapter_rows("ravdess", audio), lists=lists)
    folds, _ = eb.build_folds("ravdess", adapter_rows("ravdess", audio, channel="speech"), lists=lists)
    assert_published(folds, lists)


def test_recipe_dev_split_equals_emobox_recipe():
    train = emobox_lists.shipped("emodb").folds["fold1"]["train"]
    for seed in (eb.RECIPE_SEED, 1234, 0):
        # EmoBox examples/sb/dataset_prepare.py: global random.seed, numpy positions, random.shuffle
        random.seed(seed)
        idx = np.arange(len(train))
        random.shuffle(idx)
        ref_dev = {train[i] for i in idx[int(len(train) * 0.8):]}
        kept, dev = eb.recipe_dev_split(train, seed)
        assert set(dev) == ref_dev and set(kept) == set(train) - ref_dev
        assert len(dev) == 86
    assert eb.recipe_dev_split(train, 1)[1] != eb.recipe_dev_split(train, 2)[1]


def test_seed_changes_only_the_dev_split(emodb_rows):
    a, meta_a = eb.build_folds("emodb", emodb_rows)
    b, meta_b = eb.build_folds("emodb", emodb_rows, seed=7)
    assert meta_a["seed"] == 1993 and meta_b["seed"] == 7
    for name in a:
        assert a[name]["test"] == b[name]["test"] and a[name]["dev"] != b[name]["dev"]
        assert sorted(a[name]["train"] + a[name]["dev"]) == sorted(b[name]["train"] + b[name]["dev"])


def test_published_valid_list_is_the_dev_part(tmp_path):
    ids = ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0001_0009", "MSP-PODCAST_0002_0033", "MSP-PODCAST_0002_0039"]
    root = write_emobox_tree(tmp_path, "msppodcast", {"fold1": {"train": ids[:1], "valid": ids[2:], "test": ids[1:2]}})
    rows = [{"id": i, "speaker": None} for i in ids]
    folds, meta = eb.build_folds("msp-podcast", rows, emobox_dir=root)
    assert folds == {"fold1": {"train": ids[:1], "dev": ids[2:], "test": ids[1:2]}}
    assert meta["seed"] is None and meta["folds"]["fold1"]["dev_method"] == "EmoBox's published valid list"


def test_shipped_msp_podcast_without_its_train_list_asks_for_a_checkout():
    with pytest.raises(PublishedListError, match=r"msp-podcast: the shipped EmoBox lists lack fold1: train .*--from DIR"):
        eb.build_folds("msppodcast", [])


def test_corpus_without_shipped_lists_is_named():
    with pytest.raises(PublishedListError, match=r"no shipped EmoBox lists for 'savee' \(shipped: crema-d, emodb"):
        emobox_lists.shipped("savee")


def test_from_dir_records_the_checkout_commit_but_not_an_enclosing_repository(tmp_path):
    def git(*args, cwd):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                       capture_output=True, timeout=60)

    outer = tmp_path / "project"
    checkout = write_emobox_tree(outer / "EmoBox", "emodb", TREES["emodb"])
    git("init", "-q", ".", cwd=outer)
    git("add", "-A", cwd=outer)
    git("commit", "-qm", "project", cwd=outer)
    assert "commit" not in emobox_lists.from_dir(checkout, "emodb").source  # the project's commit is not EmoBox's
    git("init", "-q", ".", cwd=checkout)
    git("add", "-A", cwd=checkout)
    git("commit", "-qm", "lists", cwd=checkout)
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          timeout=60).stdout.strip()
    assert emobox_lists.from_dir(checkout, "emodb").source["commit"] == head
    assert emobox_lists.from_dir(checkout / "data", "emodb").source["commit"] == head
