"""The bundled EmoDB subset: what build_subset makes from the real corpus, all speakers and emotions."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from emostore.manifests.adapters.base import get_adapter
from emostore.recipe.demo_data import build_subset, bundled_root


def test_bundled_subset_equals_a_rebuild_from_the_corpus(tmp_path, full_emodb_dir):
    ids = build_subset(full_emodb_dir.parent, tmp_path)
    shipped = bundled_root()
    assert sorted(p.stem for p in (shipped / "wav").glob("*.flac")) == ids
    for stem in ids:
        a, ra = sf.read(shipped / "wav" / f"{stem}.flac", dtype="int16")
        b, rb = sf.read(tmp_path / "wav" / f"{stem}.flac", dtype="int16")
        assert ra == rb == 16000
        np.testing.assert_array_equal(a, b)
    assert (shipped / "perception_test.tsv").read_text() == (tmp_path / "perception_test.tsv").read_text()


def test_bundled_subset_covers_every_speaker_and_emotion_through_the_adapter():
    rows = get_adapter("emodb").build(bundled_root())
    assert len(rows) == 135
    assert len({r.speaker for r in rows}) == 10
    assert len({r.emotion for r in rows}) == 7
    assert all(r.duration == 2.0 and "recognition" in r.extra for r in rows)
