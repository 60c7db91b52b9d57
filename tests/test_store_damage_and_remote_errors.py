"""A damaged store (missing chunk, truncated shard, broken zarr.json) and object storage that is
missing, refusing or unreachable are each one line naming the store and what to check."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.store.failures import remote_error
from moto_s3 import free_port, s3  # noqa: F401  (the fixture)

s3fs = pytest.importorskip("s3fs")


@pytest.fixture(scope="module")
def store(tmp_path_factory, shortest_clips):
    from conftest import write_manifest

    tmp = tmp_path_factory.mktemp("damage")
    manifest = write_manifest(tmp / "m.jsonl", [{"id": c.stem, "audio": str(c)} for c in shortest_clips[:4]])
    r = CliRunner().invoke(main, ["extract", str(manifest), "--encoder", "fbank", "--block-rows", "2", "-q",
                                  "--out", str(tmp / "s.zarr")])
    assert r.exit_code == 0, r.output
    return tmp / "s.zarr", manifest


def _damaged(store, tmp_path, how):
    bad = tmp_path / "bad.zarr"
    shutil.copytree(store, bad)
    how(bad)
    return bad


def _run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_deleted_pooled_chunk_is_reported(store, tmp_path, command):
    bad = _damaged(store[0], tmp_path, lambda s: (s / "pooled/mean/c/1/0/0").unlink())
    r = _run("store", command, bad)
    assert r.exit_code == 1 and "problem: pooled/mean: stored object c/1/0/0 (rows 2.., layer 0) is missing" in r.output


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_truncated_shard_is_reported_not_a_traceback(store, tmp_path, command):
    def truncate(s):
        shard = s / "frames/c/0/0/0"
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    r = _run("store", command, _damaged(store[0], tmp_path, truncate))
    assert r.exit_code == 1 and "frames: stored object c/0/0/0 cannot be read" in r.output and "damaged" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("node", ["", "done/"])
@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_broken_zarr_json_is_one_line(store, tmp_path, command, node):
    bad = _damaged(store[0], tmp_path, lambda s: (s / f"{node}zarr.json").write_text('{"zarr_format": 3, "no'))
    r = _run("store", command, bad)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert f"{node}zarr.json is damaged (not JSON" in r.output


def test_verify_names_ids_plainly(store, tmp_path):
    import zarr

    def both(s):  # a done row that is also recorded as failed
        g = zarr.open_group(s, mode="r+")
        g["errors"].attrs["entries"] = [{"id": str(g["ids"][0]), "index": 0, "reason": "x"}]
    r = _run("store", "verify", _damaged(store[0], tmp_path, both))
    assert r.exit_code == 1 and "np.str_" not in r.output and "e.g. '" in r.output


def test_a_missing_bucket_is_one_line_naming_it(store, s3):
    r = _run("extract", store[1], "--encoder", "fbank", "-q", "--out", "s3://nosuch/x.zarr")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "s3://nosuch/x.zarr: the bucket 'nosuch' does not exist; check its name" in r.output


def test_an_unreachable_endpoint_is_one_line_naming_what_to_check(store, s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    for args in (["extract", store[1], "--encoder", "fbank", "-q", "--out", "s3://emo/y.zarr"],
                 ["store", "info", "s3://emo/y.zarr"]):
        r = _run(*args)
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert "s3://emo/y.zarr: cannot reach the object store" in r.output and "AWS_ENDPOINT_URL" in r.output
    s3fs.S3FileSystem.clear_instance_cache()


def test_missing_credentials_are_one_line_naming_where_they_are_read_from(store, s3, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    r = _run("extract", store[1], "--encoder", "fbank", "-q", "--out", "s3://emo/z.zarr")
    s3fs.S3FileSystem.clear_instance_cache()
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "s3://emo/z.zarr: no credentials were found; set them (AWS_ACCESS_KEY_ID" in r.output


def test_access_denied_and_timeouts_name_what_to_check():
    denied = remote_error("s3://emo/x.zarr", PermissionError("Forbidden"))
    assert "s3://emo/x.zarr: access denied; check the credentials (AWS_ACCESS_KEY_ID" in str(denied)
    slow = remote_error("s3://emo/x.zarr", TimeoutError("read timed out"))
    assert "did not answer in time; check the endpoint (AWS_ENDPOINT_URL)" in str(slow)
    assert remote_error("/local/x.zarr", PermissionError("x")) is None
    assert remote_error("s3://emo/x.zarr", TypeError("a bug")) is None
