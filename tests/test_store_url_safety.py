"""Object-storage --out never deletes what is not a store, and a bad URL is one line, not a traceback."""

from __future__ import annotations

import fsspec
from click.testing import CliRunner

from emostore.cli import main


def test_a_bucket_prefix_with_foreign_objects_and_a_stale_lock_is_refused_and_kept(small_manifest):
    fs = fsspec.filesystem("memory")
    fs.pipe("/emostore-safety/data/important.csv", b"a,b\n1,2\n")
    fs.pipe("/emostore-safety/data/.lock", b"{}")
    res = CliRunner().invoke(main, ["extract", str(small_manifest), "--encoder", "fbank", "-q",
                                    "--out", "memory://emostore-safety/data"])
    assert res.exit_code == 1 and "exists, is not empty and is not a feature store" in res.output
    assert fs.cat("/emostore-safety/data/important.csv") == b"a,b\n1,2\n"


def test_an_unknown_protocol_is_one_line(small_manifest):
    for args in (["extract", str(small_manifest), "--encoder", "fbank", "-q", "--out", "foo://b/x.zarr"],
                 ["extract", str(small_manifest), "--encoder", "fbank", "--dry-run", "--out", "foo://b/x.zarr"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1, res.output
        assert res.output.startswith("Error: foo://b/x.zarr: ") and "Protocol not known" in res.output
