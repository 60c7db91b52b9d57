"""Extraction into a store: layout, exactness of batching, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zarr
from click.testing import CliRunner

import emostore.store
from emostore.cli import main
from emostore.extract import runner
from emostore.extract.planning import ExtractOptions, parse_layers
from emostore.extract.runner import extract
from emostore.manifests import load_manifest
from emostore.store import StoreError

from conftest import write_manifest, write_wav

WHISPER = ExtractOptions(encoder="ct2-whisper")
FBANK = ExtractOptions(encoder="fbank")


def _opts(base: ExtractOptions, **kw) -> ExtractOptions:
    return ExtractOptions(**{**base.__dict__, **kw})


def _arrays(path) -> dict[str, np.ndarray]:
    g = zarr.open_group(path, mode="r")
    out = {k: np.asarray(g[k][:]) for k in ("num_frames", "offsets", "done", "pooled/mean")}
    if "frames" in g:
        out["frames"] = np.asarray(g["frames"][:])
    return out


@pytest.fixture(scope="module")
def whisper_store(tmp_path_factory, shortest_clips):
    tmp = tmp_path_factory.mktemp("ws")
    rows = [{"id": c.stem, "audio": str(c)} for c in shortest_clips[:8]]
    m = load_manifest(write_manifest(tmp / "m.jsonl", rows))
    s = extract(m, str(tmp / "s.zarr"), WHISPER)
    return m, tmp / "s.zarr", s


@pytest.mark.slow
def test_whisper_store_holds_every_layer_in_manifest_order(whisper_store):
    m, path, summary = whisper_store
    assert (summary.extracted, summary.failed) == (8, 0)
    fs = emostore.store.open(path)
    assert list(fs.ids) == m.ids
    assert fs.num_layers == 5 and fs.dim == 384 and fs.layers == [0, 1, 2, 3, 4]
    assert fs.attrs["padding"] == "window" and fs.attrs["encoder"]["backend"] == "ct2-whisper"
    assert fs.done.all() and fs.errors == []
    for i, row in enumerate(m.rows):
        n = round(sf.info(row["audio"]).frames * 16000 / sf.info(row["audio"]).samplerate)
        assert fs.num_frames[i] == math.ceil(n / 320)
        frames = fs.frames(row["id"])
        assert frames.shape == (fs.num_frames[i], 5, 384) and frames.dtype == np.float16
        # pooled/mean is the float32 mean of the float32 states; frames are their float16 cast.
        np.testing.assert_allclose(frames.astype(np.float32).mean(0), fs.pooled()[i], atol=2e-3, rtol=2e-3)
    assert fs.pooled(layer=4).shape == (8, 384)
    np.testing.assert_array_equal(fs.pooled(layer=4), fs.pooled()[:, 4])
    assert fs.pooled_dask().shape == (8, 5, 384)
    assert fs.frames_dask().shape[0] == fs.num_frames.sum()
    assert emostore.store.verify(fs, m) == []


@pytest.mark.slow
def test_batched_extraction_equals_one_at_a_time(whisper_store, tmp_path):
    """Tolerance: 1e-4 absolute on pooled float32 (CPU kernels may block a batch differently);
    frames are compared after the float16 cast, within one float16 step."""
    m, path, _ = whisper_store
    extract(m, str(tmp_path / "one.zarr"), _opts(WHISPER, max_batch=1))
    a, b = emostore.store.open(path), emostore.store.open(tmp_path / "one.zarr")
    np.testing.assert_allclose(a.pooled(), b.pooled(), atol=1e-4, rtol=1e-4)
    for i in range(len(a)):
        np.testing.assert_allclose(a.frames(i).astype(np.float32), b.frames(i).astype(np.float32),
                                   atol=2e-3, rtol=2e-3)


@pytest.mark.slow
def test_rerun_of_finished_store_does_no_encoder_work(whisper_store, monkeypatch):
    m, path, _ = whisper_store
    before = _arrays(path)
    calls = []
    real = runner.load_encoder

    def counting(*a, **kw):
        enc = real(*a, **kw)
        orig = enc.encode
        enc.encode = lambda waves: calls.append(len(waves)) or orig(waves)
        return enc

    monkeypatch.setattr(runner, "load_encoder", counting)
    s = extract(m, str(path), WHISPER)
    assert (s.extracted, s.skipped) == (0, 8) and calls == []
    after = _arrays(path)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


@pytest.mark.slow
def test_resume_after_sigkill_matches_clean_run(tmp_path, shortest_clips):
    rows = [{"id": c.stem, "audio": str(c)} for c in shortest_clips]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    cmd = [sys.executable, "-m", "emostore.cli", "extract", str(manifest), "--block-rows", "2",
           "--max-batch", "2"]
    clean, killed = tmp_path / "clean.zarr", tmp_path / "killed.zarr"
    subprocess.run(cmd + ["--out", str(clean)], check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(cmd + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            done = int(np.asarray(zarr.open_group(killed, mode="r")["done"][:]).sum())
        except Exception:
            done = 0
        if done >= 4:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    if proc.poll() is None:  # the deadline passed: never leave it running
        proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "extraction finished before it could be killed"
    assert done < len(rows)
    subprocess.run(cmd + ["--out", str(killed)], check=True, capture_output=True, timeout=300)
    a, b = _arrays(clean), _arrays(killed)
    assert b["done"].all()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _bad_and_good_files(folder: Path, clips: list[Path]) -> list[dict]:
    rng = np.random.default_rng(0)
    (folder / "garbage.wav").write_bytes(b"this is not audio at all" * 10)
    write_wav(folder / "empty.wav", np.zeros(0, np.float32), 16000)
    write_wav(folder / "short.wav", rng.standard_normal(160).astype(np.float32) * 0.1, 16000)
    nan = rng.standard_normal(16000).astype(np.float32) * 0.1
    nan[100] = np.nan
    write_wav(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    write_wav(folder / "stereo8k.wav", rng.standard_normal((8000, 2)).astype(np.float32) * 0.1, 8000)
    wave, rate = sf.read(clips[0], dtype="float32")
    write_wav(folder / "stereo44k.wav", np.stack([wave, wave], 1), 44100)
    names = ["garbage", "empty", "short", "nan", "stereo8k", "missing", "stereo44k"]
    rows = [{"id": n, "audio": f"{n}.wav"} for n in names]
    rows += [{"id": c.stem, "audio": str(c)} for c in clips[1:3]]
    return rows


EXPECTED_REASONS = {
    "garbage": "unreadable audio", "empty": "empty audio", "short": "too short", "nan": "NaN",
    "stereo8k": "8000 Hz is below", "missing": "file not found",
}


def test_bad_input_gives_one_named_error_each_and_the_rest_is_extracted(tmp_path, shortest_clips):
    rows = _bad_and_good_files(tmp_path, shortest_clips)
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    result = CliRunner().invoke(main, ["extract", str(manifest), "--encoder", "fbank", "--out",
                                       str(tmp_path / "s.zarr")])
    assert result.exit_code == 0, result.output
    fs = emostore.store.open(tmp_path / "s.zarr")
    errors = {e["id"]: e["reason"] for e in fs.errors}
    assert set(errors) == set(EXPECTED_REASONS)
    for uid, words in EXPECTED_REASONS.items():
        assert f"{uid}.wav" in errors[uid] and words in errors[uid], errors[uid]
    good = [r["id"] for r in rows if r["id"] not in EXPECTED_REASONS]
    assert all(fs.done[fs.index(g)] for g in good)
    # the stereo 44.1 kHz clip is the mono clip mixed down and resampled: same features.
    wave, rate = sf.read(shortest_clips[0], dtype="float32")
    assert fs.num_frames[fs.index("stereo44k")] > 0
    assert emostore.store.verify(fs) == []
    for uid in EXPECTED_REASONS:
        assert result.output.count(f"{uid}.wav") >= 1


def test_upsampling_is_allowed_when_asked(tmp_path):
    rng = np.random.default_rng(1)
    write_wav(tmp_path / "a.wav", rng.standard_normal((8000, 2)).astype(np.float32) * 0.1, 8000)
    m = load_manifest(write_manifest(tmp_path / "m.jsonl", [{"id": "a", "audio": "a.wav"}]))
    s = extract(m, str(tmp_path / "s.zarr"), _opts(FBANK, allow_upsample=True))
    assert (s.extracted, s.failed) == (1, 0)
    assert emostore.store.open(tmp_path / "s.zarr").attrs["audio"]["allow_upsample"] is True


@pytest.mark.slow
def test_store_made_with_other_inputs_is_refused(small_manifest, tmp_path):
    m = load_manifest(small_manifest)
    extract(m, str(tmp_path / "s.zarr"), FBANK)
    with pytest.raises(StoreError, match="encoder"):
        extract(m, str(tmp_path / "s.zarr"), _opts(WHISPER, layers=[0]))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not empty"):
        extract(m, str(tmp_path / "other"), FBANK)
    assert (tmp_path / "other" / "x.txt").read_text() == "keep me"


@pytest.mark.slow
def test_layer_subset_equals_those_layers_of_the_full_store(whisper_store, tmp_path):
    m, path, _ = whisper_store
    extract(m, str(tmp_path / "sub.zarr"), _opts(WHISPER, layers=[0, 4], frames=False))
    full, sub = emostore.store.open(path), emostore.store.open(tmp_path / "sub.zarr")
    assert sub.layers == [0, 4] and not sub.has_frames
    np.testing.assert_allclose(sub.pooled(layer=4), full.pooled(layer=4), atol=1e-4)
    np.testing.assert_allclose(sub.pooled(layer=0), full.pooled(layer=0), atol=1e-4)
    with pytest.raises(StoreError, match="re-extract with --frames"):
        sub.frames(0)
    with pytest.raises(StoreError, match="layer 2 is not stored"):
        sub.pooled(layer=2)


def test_dry_run_prints_sizes_and_writes_nothing(small_manifest, tmp_path):
    result = CliRunner().invoke(main, ["extract", str(small_manifest), "--out", str(tmp_path / "s.zarr"),
                                       "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "pooled/mean  [8, 5, 384] float32" in result.output and "frames" in result.output
    assert not (tmp_path / "s.zarr").exists()


def test_dataset_normalisation_uses_training_ids_and_is_recorded(small_manifest, tmp_path):
    m = load_manifest(small_manifest)
    train = m.ids[:4]
    s = extract(m, str(tmp_path / "s.zarr"), _opts(FBANK, normalise="dataset", norm_ids=train))
    assert s.failed == 0
    audio_attrs = emostore.store.open(tmp_path / "s.zarr").attrs["audio"]
    samples = np.concatenate([sf.read(m.rows[i]["audio"], dtype="float32")[0] for i in range(4)])
    # stats are taken at 16 kHz after resampling, so they match the raw 22.05 kHz stats closely
    assert audio_attrs["normalise"] == "dataset"
    assert audio_attrs["std"] == pytest.approx(samples.std(), rel=0.02)
    with pytest.raises(ValueError, match="not in the manifest"):
        extract(m, str(tmp_path / "t.zarr"), _opts(FBANK, normalise="dataset", norm_ids=["nope"]))


@pytest.mark.slow
def test_hdf5_export_import_round_trip_is_equal(whisper_store, tmp_path):
    _, path, _ = whisper_store
    runner_cli = CliRunner()
    r1 = runner_cli.invoke(main, ["store", "export", str(path), "--hdf5", str(tmp_path / "s.h5")])
    r2 = runner_cli.invoke(main, ["store", "import", str(tmp_path / "s.h5"), "--out", str(tmp_path / "back.zarr")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = _arrays(path), _arrays(tmp_path / "back.zarr")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    fa, fb = emostore.store.open(path), emostore.store.open(tmp_path / "back.zarr")
    assert list(fa.ids) == list(fb.ids) and fa.attrs == fb.attrs and fa.errors == fb.errors
    assert emostore.store.verify(fb) == []


@pytest.mark.slow
def test_verify_reports_overlapping_frames_and_wrong_manifest(whisper_store, tmp_path, small_manifest):
    _, path, _ = whisper_store
    import shutil

    copy = tmp_path / "c.zarr"
    shutil.copytree(path, copy)
    g = zarr.open_group(copy, mode="r+")
    off = np.asarray(g["offsets"][:])
    off[1] = off[0]
    g["offsets"][:] = off
    rows = [json.loads(line) for line in small_manifest.read_text().splitlines()]
    other = write_manifest(tmp_path / "other.jsonl", rows[::-1])  # the same clips in another order
    problems = emostore.store.verify(emostore.store.open(copy), load_manifest(other))
    assert any("overlap" in p for p in problems)
    assert any("is not the one this store was made from" in p for p in problems)
    result = CliRunner().invoke(main, ["store", "verify", str(copy)])
    assert result.exit_code == 1 and "overlap" in result.output


@pytest.mark.slow
def test_store_info_json_summarises_the_store(whisper_store):
    _, path, _ = whisper_store
    result = CliRunner().invoke(main, ["store", "info", str(path), "--json"])
    info = json.loads(result.output)
    assert (info["utterances"], info["L"], info["D"], info["errors"]) == (8, 5, 384, 0)
    assert info["encoder"] == "whisper-tiny.en" and info["bytes_on_disk"] > 0



@pytest.mark.slow
def test_store_info_text_shows_the_summary(whisper_store):
    _, path, _ = whisper_store
    result = CliRunner().invoke(main, ["store", "info", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{path}  (emostore store format {emostore.store.FORMAT_VERSION})"
    assert "  utterances 8 (8 done, 0 errors)" in lines
    assert any(line.startswith("  layers     L = 5 [0, 1, 2, 3, 4], D = 384") for line in lines)
    assert "  audio      16000 Hz, normalise none" in lines

def test_misuse_is_one_clear_line_and_nonzero_exit(small_manifest, tmp_path):
    cli = CliRunner()
    r = cli.invoke(main, ["extract", str(small_manifest), "--encoder", "nosuch", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "unknown encoder 'nosuch'" in r.output and "Traceback" not in r.output
    r = cli.invoke(main, ["extract", str(small_manifest), "--layers", "0,9", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "out of range" in r.output
    r = cli.invoke(main, ["store", "info", str(tmp_path)])
    assert r.exit_code == 1 and "not an emostore feature store" in r.output or "no feature store" in r.output


def test_same_inputs_give_the_same_store_bytes(small_manifest, tmp_path):
    m = load_manifest(small_manifest)
    for name in ("a.zarr", "b.zarr"):
        extract(m, str(tmp_path / name), FBANK)
    files = sorted(p.relative_to(tmp_path / "a.zarr") for p in (tmp_path / "a.zarr").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b.zarr") for p in (tmp_path / "b.zarr").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a.zarr" / rel).read_bytes() == (tmp_path / "b.zarr" / rel).read_bytes(), rel


def test_out_pointing_at_a_file_is_refused_and_the_file_kept(small_manifest, tmp_path):
    (tmp_path / "f.txt").write_text("keep")
    r = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", "--out", str(tmp_path / "f.txt")])
    assert r.exit_code == 1 and "is a file" in r.output
    assert (tmp_path / "f.txt").read_text() == "keep"


def test_compressed_store_holds_the_same_arrays(small_manifest, tmp_path):
    m = load_manifest(small_manifest)
    extract(m, str(tmp_path / "raw.zarr"), FBANK)
    extract(m, str(tmp_path / "z.zarr"), _opts(FBANK, compress=True))
    a, b = _arrays(tmp_path / "raw.zarr"), _arrays(tmp_path / "z.zarr")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    g = zarr.open_group(tmp_path / "z.zarr", mode="r")
    assert g["frames"].compressors and not zarr.open_group(tmp_path / "raw.zarr", mode="r")["frames"].compressors
    with pytest.raises(StoreError, match="compress"):
        extract(m, str(tmp_path / "z.zarr"), FBANK)


def _hook_encode(monkeypatch, hook):
    """Every encoder the runner loads calls ``hook(call_number, waves, encode)`` instead of encode."""
    real = runner.load_encoder
    calls = []

    def load(*a, **kw):
        enc = real(*a, **kw)
        orig = enc.encode

        def encode(waves):
            calls.append(1)
            return hook(len(calls), waves, orig)

        enc.encode = encode
        return enc

    monkeypatch.setattr(runner, "load_encoder", load)
    return real


def test_interrupt_mid_run_keeps_every_finished_block(small_manifest, tmp_path, monkeypatch):
    """Ctrl-C during block 2: block 1 (already encoded and queued) is committed before raising."""
    m = load_manifest(small_manifest)

    def interrupt_third(call, waves, encode):
        if call == 3:
            raise KeyboardInterrupt
        return encode(waves)

    real = _hook_encode(monkeypatch, interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        extract(m, str(tmp_path / "s.zarr"), _opts(FBANK, block_rows=2, max_batch=1))
    done = np.asarray(zarr.open_group(tmp_path / "s.zarr", mode="r")["done"][:])
    assert done[:2].all() and not done[2:].any()
    monkeypatch.setattr(runner, "load_encoder", real)
    s = extract(m, str(tmp_path / "s.zarr"), _opts(FBANK, block_rows=2, max_batch=1))
    assert (s.skipped, s.extracted) == (2, 6)
    assert emostore.store.verify(emostore.store.open(tmp_path / "s.zarr")) == []


def test_second_writer_on_the_same_store_is_refused(small_manifest, tmp_path):
    from emostore.store.writer import StoreWriter

    m = load_manifest(small_manifest)
    kw = dict(ids=m.ids, attrs={}, fingerprint={"inputs": "same"}, num_layers=1, dim=80, frames_dtype="float16")
    first = StoreWriter.create_or_resume(tmp_path / "s.zarr", **kw)  # a new, unfinished store
    with pytest.raises(StoreError, match="another extraction is writing this store"):
        StoreWriter.create_or_resume(tmp_path / "s.zarr", **kw)
    first.close()
    StoreWriter.create_or_resume(tmp_path / "s.zarr", **kw).close()


def test_reversed_layer_range_is_an_error():
    with pytest.raises(ValueError, match="runs backwards"):
        parse_layers("12-8")
    assert parse_layers("0,4,8-10") == [0, 4, 8, 9, 10]


def test_non_finite_or_empty_encoder_output_is_that_rows_error(small_manifest, tmp_path, monkeypatch):
    """A NaN (e.g. fp16 overflow) or frameless output is recorded as an error, never stored as features."""
    m = load_manifest(small_manifest)

    def poison(call, waves, encode):  # one clip per call (max_batch=1): poison the 2nd and the 5th
        out = encode(waves)
        if call == 2:
            out[0] = out[0].clone()
            out[0][0, 0, 0] = float("nan")
        elif call == 5:
            out[0] = out[0][:0]
        return out

    _hook_encode(monkeypatch, poison)
    s = extract(m, str(tmp_path / "s.zarr"), _opts(FBANK, max_batch=1))
    fs = emostore.store.open(tmp_path / "s.zarr")
    reasons = sorted(e["reason"] for e in fs.errors)
    assert len(reasons) == 2 and "NaN or inf" in reasons[0] and "no frames" in reasons[1]
    failed = [fs.index(e["id"]) for e in fs.errors]
    assert s.failed == 2 and not fs.done[failed].any() and fs.done.sum() == len(m) - 2
    assert np.isfinite(fs.pooled()[fs.done]).all()
