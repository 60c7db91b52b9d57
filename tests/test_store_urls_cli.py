"""Store commands take fsspec URLs: a store extracted into memory:// is read back by `store info` / `verify`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from emostore.cli import main
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.manifests import load_manifest


def test_store_info_and_verify_read_a_url_store_and_a_missing_one_is_one_line(small_manifest):
    url = "memory://emostore-test/urls-cli.zarr"
    extract(load_manifest(small_manifest), url, ExtractOptions(encoder="fbank", block_rows=4))
    runner = CliRunner()
    res = runner.invoke(main, ["store", "info", url, "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["utterances"] == info["done"] == len(load_manifest(small_manifest)) and info["bytes_on_disk"] > 0
    res = runner.invoke(main, ["store", "verify", url, "--manifest", str(small_manifest)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["store", "info", "memory://emostore-test/none.zarr"])
    assert res.exit_code == 1 and res.output.strip() == "Error: memory://emostore-test/none.zarr: no feature store here"
