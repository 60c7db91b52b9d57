"""A full disk, a read-only volume, a resumed dry run or normalisation: one clear line, nothing lost or redone."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import zarr.storage._local as zarr_local
from click.testing import CliRunner

import emostore.store
from emostore.cli import main
from emostore.extract import audio, runner
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.manifests import load_manifest
from emostore.store import StoreError, hdf5
from emostore.store import writer as store_writer

FBANK = ExtractOptions(encoder="fbank", block_rows=2, max_batch=1)


def _opts(**kw) -> ExtractOptions:
    return ExtractOptions(**{**FBANK.__dict__, **kw})


def _files(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes()
            for p in sorted(store.rglob("*")) if p.is_file() and p.name != ".lock"}


def _fail_writes(monkeypatch, err: int, when=lambda path, calls: True) -> list[Path]:
    """Every store write for which ``when(path, earlier calls)`` holds raises OSError(err)."""
    real, calls = zarr_local._put, []

    def put(path, value, exclusive=False):
        calls.append(Path(path))
        if when(Path(path), calls[:-1]):
            raise OSError(err, __import__("os").strerror(err))
        return real(path, value, exclusive=exclusive)

    monkeypatch.setattr(zarr_local, "_put", put)
    return calls


def _interrupt_after_first_block(monkeypatch):
    """Ctrl-C at the third encode call: block 1 (rows 1-2) is committed, the rest is not."""
    real = runner.load_encoder

    def load(*a, **kw):
        enc = real(*a, **kw)
        orig, n = enc.encode, []

        def encode(waves):
            n.append(1)
            if len(n) == 3:
                raise KeyboardInterrupt
            return orig(waves)

        enc.encode = encode
        return enc

    monkeypatch.setattr(runner, "load_encoder", load)
    return real


def _is_done_chunk(path: Path) -> bool:
    return path.parts[-3:] == ("done", "c", "0")


def test_full_disk_names_the_last_committed_row_and_a_rerun_resumes_to_the_clean_store(
        small_manifest, tmp_path, monkeypatch):
    m = load_manifest(small_manifest)
    extract(m, str(tmp_path / "clean.zarr"), FBANK)
    # the disk fills up as block 2 (rows 3-4) marks itself done: rows 1-2 are committed
    _fail_writes(monkeypatch, errno.ENOSPC, lambda p, calls: _is_done_chunk(p) and any(map(_is_done_chunk, calls)))
    result = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", "--block-rows", "2",
                                       "--max-batch", "1", "--quiet", "--out", str(tmp_path / "s.zarr")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.output.strip()
    assert "\n" not in line and "disk is full" in line and "free space and re-run" in line
    assert f"intact up to row 2 of 8 ({m.ids[1]!r})" in line
    monkeypatch.undo()
    s = extract(m, str(tmp_path / "s.zarr"), FBANK)
    assert (s.skipped, s.extracted) == (2, 6)
    assert _files(tmp_path / "s.zarr") == _files(tmp_path / "clean.zarr")


def test_full_disk_while_creating_says_nothing_is_committed_and_a_rerun_starts_over(
        small_manifest, tmp_path, monkeypatch):
    m = load_manifest(small_manifest)
    extract(m, str(tmp_path / "clean.zarr"), FBANK)
    _fail_writes(monkeypatch, errno.ENOSPC, lambda p, calls: len(calls) == 4)
    with pytest.raises(StoreError, match="disk is full .*no committed row yet; free space and re-run"):
        extract(m, str(tmp_path / "s.zarr"), FBANK)
    monkeypatch.undo()
    for cmd in (["store", "info"], ["store", "verify"]):
        r = CliRunner().invoke(main, [*cmd, str(tmp_path / "s.zarr")])
        assert r.exit_code == 1 and "creation was interrupted" in r.output and "Traceback" not in r.output
    extract(m, str(tmp_path / "s.zarr"), FBANK)
    assert _files(tmp_path / "s.zarr") == _files(tmp_path / "clean.zarr")


def _read_only_volume(monkeypatch):
    """What a read-only mount does (tests run as root, which chmod cannot stop): every write fails."""
    def ro_open(file, mode="r", *a, **kw):
        if any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return open(file, mode, *a, **kw)

    from emostore.store import lock as store_lock

    monkeypatch.setattr(store_lock, "open", ro_open, raising=False)  # the lock file (emostore/store/lock.py)
    _fail_writes(monkeypatch, errno.EROFS)


def test_finished_store_on_a_read_only_volume_has_nothing_to_do(small_manifest, tmp_path, monkeypatch):
    m = load_manifest(small_manifest)
    extract(m, str(tmp_path / "s.zarr"), FBANK)
    before = _files(tmp_path / "s.zarr")
    _read_only_volume(monkeypatch)
    result = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", "--block-rows", "2",
                                       "--max-batch", "1", "--out", str(tmp_path / "s.zarr")])
    assert result.exit_code == 0, result.output
    assert "finished, nothing to do (8 rows done" in result.output
    assert _files(tmp_path / "s.zarr") == before


def test_unfinished_store_on_a_read_only_volume_is_one_clear_line(small_manifest, tmp_path, monkeypatch):
    m = load_manifest(small_manifest)
    real = _interrupt_after_first_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        extract(m, str(tmp_path / "s.zarr"), FBANK)
    monkeypatch.setattr(runner, "load_encoder", real)
    _read_only_volume(monkeypatch)
    result = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", "--block-rows", "2",
                                       "--max-batch", "1", "--out", str(tmp_path / "s.zarr")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the store is read-only (Read-only file system) and 6 of 8 rows are not extracted yet" in result.output
    new = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", "--out",
                                    str(tmp_path / "new.zarr")])
    assert new.exit_code == 1 and "cannot create a store here (Read-only file system)" in new.output


def test_dry_run_on_a_partial_store_plans_only_the_remaining_rows(small_manifest, tmp_path, monkeypatch):
    m = load_manifest(small_manifest)
    real = _interrupt_after_first_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        extract(m, str(tmp_path / "s.zarr"), FBANK)
    monkeypatch.setattr(runner, "load_encoder", real)
    before = _files(tmp_path / "s.zarr")
    text = extract(m, str(tmp_path / "s.zarr"), FBANK, dry_run=True)
    assert "8 in manifest, 6 to extract" in text and "in 3 blocks" in text
    assert _files(tmp_path / "s.zarr") == before
    with pytest.raises(StoreError, match="different frames_dtype"):
        extract(m, str(tmp_path / "s.zarr"), _opts(frames=False), dry_run=True)


def test_dataset_normalisation_stats_are_computed_once_and_reused_on_resume_and_dry_run(
        small_manifest, tmp_path, monkeypatch):
    m = load_manifest(small_manifest)
    calls = []
    real_stats = audio.dataset_stats
    monkeypatch.setattr(audio, "dataset_stats", lambda *a, **kw: calls.append(1) or real_stats(*a, **kw))
    opts = _opts(normalise="dataset", norm_ids=m.ids[:4])
    assert "8 to extract" in extract(m, str(tmp_path / "s.zarr"), opts, dry_run=True)
    assert calls == []  # a dry run without a store only plans
    real = _interrupt_after_first_block(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        extract(m, str(tmp_path / "s.zarr"), opts)
    assert calls == [1]
    monkeypatch.setattr(runner, "load_encoder", real)
    assert "6 to extract" in extract(m, str(tmp_path / "s.zarr"), opts, dry_run=True)
    s = extract(m, str(tmp_path / "s.zarr"), opts)
    assert calls == [1] and (s.skipped, s.extracted) == (2, 6)
    extract(m, str(tmp_path / "clean.zarr"), opts)
    assert calls == [1, 1]
    assert _files(tmp_path / "s.zarr") == _files(tmp_path / "clean.zarr")
    # other training ids: other stats, so the store is refused rather than mixed
    with pytest.raises(StoreError, match="different audio"):
        extract(m, str(tmp_path / "s.zarr"), _opts(normalise="dataset", norm_ids=m.ids[:3]))
    assert calls == [1, 1, 1]


def test_hdf5_copy_steps_are_sized_by_bytes_not_rows(small_manifest, tmp_path, monkeypatch):
    # a large model's frames: 25 layers x 1024 dims of float16 = 50 kB per row
    assert hdf5.copy_step_rows((10**7, 25, 1024), 2) * 25 * 1024 * 2 <= hdf5.COPY_BYTES
    assert hdf5.copy_step_rows((3, 10**9), 4) == 1
    m = load_manifest(small_manifest)
    extract(m, str(tmp_path / "s.zarr"), FBANK)
    fs = emostore.store.open(tmp_path / "s.zarr")
    monkeypatch.setattr(hdf5, "COPY_BYTES", 80 * 2 * 100)  # 100 frames per step: many steps
    hdf5.export_hdf5(fs, tmp_path / "s.h5")
    back = hdf5.import_hdf5(tmp_path / "s.h5", tmp_path / "back.zarr")
    assert back.attrs == fs.attrs
    np.testing.assert_array_equal(back.group["frames"][:], fs.group["frames"][:])
    np.testing.assert_array_equal(back.pooled(), fs.pooled())
