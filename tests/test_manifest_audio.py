"""Manifests in, audio decoded: formats, mono mix, resampling, normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import soxr

from emostore.extract import audio
from emostore.manifests import ManifestError, load_manifest

from conftest import emodb_clips, write_manifest, write_wav


def test_relative_audio_resolves_against_the_manifest_folder(small_manifest):
    m = load_manifest(small_manifest)
    assert len(m) == 8
    assert all(p.startswith(str(small_manifest.parent / "audio")) for p in m.audio_paths())
    assert m.rows[0]["speaker"]  # extra columns are kept


def test_manifest_hash_ignores_location_but_not_content(small_manifest, tmp_path):
    a = load_manifest(small_manifest)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "manifest.jsonl").write_text(small_manifest.read_text())
    assert load_manifest(moved / "manifest.jsonl").sha256 == a.sha256
    rows = [json.loads(x) for x in small_manifest.read_text().splitlines()]
    rows[0]["speaker"] = "99"
    assert load_manifest(write_manifest(tmp_path / "m2.jsonl", rows)).sha256 != a.sha256


def test_folder_becomes_a_manifest_of_its_audio_files(emodb_dir):
    m = load_manifest(emodb_dir)
    clips = emodb_clips()  # all of EmoDB (535), or the bundled subset (135 FLAC files)
    assert len(clips) in (535, 135) and m.ids == [c.stem for c in clips]
    assert m.audio_paths() == [str(c) for c in clips]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": "a", "audio": "x.wav"}, {"id": "a", "audio": "y.wav"}], "id 'a' appears twice"),
        ([{"id": "a"}], "row 1 has no 'audio'"),
        ([{"audio": "x.wav"}], "row 1 has no 'id'"),
    ],
)
def test_malformed_manifests_are_refused_with_the_reason(tmp_path, rows, message):
    with pytest.raises(ManifestError, match=message):
        load_manifest(write_manifest(tmp_path / "m.jsonl", rows))


def test_broken_json_line_names_the_line(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "audio": "a.wav"}\n{oops\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid JSON"):
        load_manifest(tmp_path / "m.jsonl")


def test_csv_manifest(tmp_path, shortest_clips):
    (tmp_path / "m.csv").write_text("id,audio,speaker\n" + "".join(f"{c.stem},{c},{c.stem[:2]}\n" for c in shortest_clips[:3]))
    m = load_manifest(tmp_path / "m.csv")
    assert m.ids == [c.stem for c in shortest_clips[:3]]


def test_lossless_formats_decode_identically_and_lossy_ones_closely(tmp_path, shortest_clips):
    wave, rate = sf.read(shortest_clips[0], dtype="float32")
    policy = audio.AudioPolicy()
    ref = audio.load(str(shortest_clips[0]), policy)
    np.testing.assert_allclose(ref, soxr.resample(wave, rate, 16000, quality="HQ"), atol=1e-6)
    sf.write(tmp_path / "a.flac", wave, rate, subtype="PCM_16")
    np.testing.assert_array_equal(audio.load(str(tmp_path / "a.flac"), policy), ref)
    for fmt in ("ogg", "mp3"):
        sf.write(tmp_path / f"a.{fmt}", wave, rate)
        got = audio.load(str(tmp_path / f"a.{fmt}"), policy)
        n = min(len(got), len(ref))
        assert abs(len(got) - len(ref)) < 0.1 * 16000  # codec priming/padding only
        lag = int(np.argmax(np.correlate(got[: n], ref[: n], mode="full")[n - 2000 : n + 2000])) - 2000
        a, b = (got[lag:n], ref[: n - lag]) if lag >= 0 else (got[: n + lag], ref[-lag:n])
        assert np.corrcoef(a, b)[0, 1] > 0.9, fmt


def test_stereo_is_mixed_to_the_mean_of_its_channels(tmp_path):
    rng = np.random.default_rng(0)
    st = rng.standard_normal((16000, 2)).astype(np.float32) * 0.1
    write_wav(tmp_path / "s.wav", st, 16000, subtype="FLOAT")
    np.testing.assert_allclose(audio.load(str(tmp_path / "s.wav"), audio.AudioPolicy()), st.mean(1), atol=1e-7)


def test_normalisations(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000) * 0.3 + 0.1).astype(np.float32)
    write_wav(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    u = audio.load(str(tmp_path / "x.wav"), audio.AudioPolicy(normalise="utterance"))
    assert abs(u.mean()) < 1e-5 and abs(u.std() - 1) < 1e-4
    d = audio.load(str(tmp_path / "x.wav"), audio.AudioPolicy(normalise="dataset", mean=0.1, std=0.3))
    np.testing.assert_allclose(d, (x - 0.1) / 0.3, atol=1e-5)
    with pytest.raises(ValueError, match="normalise must be one of"):
        audio.AudioPolicy(normalise="loud")
