"""The compact fold form both shipped copies use (EmoBox's lists, EMO-SUPERB's splits): one codec."""

from __future__ import annotations

import pytest

from emostore.manifests import emo_superb_lists, emobox_lists
from emostore.manifests.fold_codes import decode_folds, encode_folds, gzip_json, read_gzip_json


@pytest.mark.parametrize("module", [emobox_lists, emo_superb_lists], ids=["emobox", "emo-superb"])
def test_every_shipped_file_is_the_encoding_of_its_decoding_byte_for_byte(module):
    files = [p for p in module._data_dir().iterdir() if p.name.endswith(".json.gz")]
    assert len(files) >= 4
    for p in files:
        data = p.read_bytes()
        assert module.encode(module.decode(data)) == data, p.name


def test_folds_round_trip_and_damage_is_named():
    folds = {"f1": {"train": ["b", "c"], "test": ["a"]}, "f2": {"train": ["a"], "test": ["c"]}}
    codes = {"train": "r", "test": "t"}
    strings = encode_folds(folds, ["a", "b", "c"], codes)
    assert strings == {"f1": "trr", "f2": "r.t"}
    obj = {"ids": ["a", "b", "c"], "codes": {v: k for k, v in codes.items()}, "folds": strings}
    assert decode_folds(obj, ValueError, "x") == {"f1": {"train": ["b", "c"], "test": ["a"]},
                                                  "f2": {"train": ["a"], "test": ["c"]}}
    assert read_gzip_json(gzip_json(obj), ValueError, "x") == obj and gzip_json(obj) == gzip_json(obj)
    with pytest.raises(ValueError, match="x: fold f2 has 2 codes for 3 ids"):
        decode_folds({**obj, "folds": {"f2": "r."}}, ValueError, "x")
    with pytest.raises(ValueError, match="x have format 'a/1', expected 'b/1'"):
        read_gzip_json(gzip_json({"format": "a/1"}), ValueError, "x", "b/1")
    with pytest.raises(ValueError, match="shipped lists are unreadable"):
        read_gzip_json(b"not gzip", ValueError, "shipped lists")
