"""RAVDESS on the real 16 kHz FLAC copy in ../shared/data/ravdess (never bundled: CC BY-NC-SA)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from conftest import RAVDESS, needs_ravdess
from emostore.cli import main
from emostore.manifests import emobox_lists
from emostore.manifests.adapters.base import AdapterError, get_adapter




@needs_ravdess
def test_adapter_reads_the_flac_copy_as_it_is():
    rows = get_adapter("ravdess").build(RAVDESS)
    assert len(rows) == 1440
    assert Counter(r.speaker for r in rows) == {f"{a:02d}": 60 for a in range(1, 25)}
    assert Counter(r.emotion for r in rows)["neutral"] == 96 and Counter(r.emotion for r in rows)["angry"] == 192
    first = next(r for r in rows if r.id == "03-01-05-02-01-02-12")
    assert first.audio.endswith("Actor_12/03-01-05-02-01-02-12.flac")
    assert first.extra["sex"] == "f" and first.extra["intensity"] == "strong" and 2.9 < first.duration < 5.3


@needs_ravdess
def test_emobox_rule_gives_the_published_six_folds(tmp_path):
    """`--rule emobox` on the FLAC copy: EmoBox's lists name .wav paths, matched by clip name."""
    cli = CliRunner()
    man = tmp_path / "ravdess.jsonl"
    res = cli.invoke(main, ["manifest", "build", "ravdess", str(RAVDESS), "--out", str(man)])
    assert res.exit_code == 0, res.output
    part = tmp_path / "folds.json"
    res = cli.invoke(main, ["partition", "ravdess", str(man), "--rule", "emobox", "--out", str(part)])
    assert res.exit_code == 0, res.output
    folds = json.loads(part.read_text())
    lists = emobox_lists.shipped("ravdess")
    assert list(folds) == [f"fold{k}" for k in range(1, 7)]
    for name, fold in folds.items():
        assert fold["test"] == lists.folds[name]["test"]  # exactly as published, in published order
        assert sorted(fold["train"] + fold["dev"]) == sorted(lists.folds[name]["train"])
        assert (len(fold["train"]), len(fold["dev"]), len(fold["test"])) == (960, 240, 240)
    meta = json.loads(part.with_name("folds.meta.json").read_text())
    assert meta["speaker_independent"] is True and "mismatch" not in meta and "excluded" not in meta


def test_a_clip_under_two_extensions_is_refused(tmp_path):
    import numpy as np
    import soundfile as sf

    for suffix in (".wav", ".flac"):
        sf.write(tmp_path / f"03-01-05-01-01-01-01{suffix}", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(AdapterError, match="03-01-05-01-01-01-01 is also at"):
        get_adapter("ravdess").build(tmp_path)
