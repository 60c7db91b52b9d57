"""emostore.open_store: every view of a store (numpy, xarray, dask, per utterance, metadata) agrees."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import emostore
from emostore.store import StoreError
from emostore.store.reader import UnknownUtterance


def test_importing_emostore_loads_neither_torch_nor_zarr():
    code = "import sys, emostore; print(sorted(m for m in ('torch', 'zarr', 'dask') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_xarray_view_is_the_pooled_array_with_ids_layers_and_manifest_columns(fbank_fold):
    fs = emostore.open_store(fbank_fold["store"], manifest=fbank_fold["manifest"])
    x = fs.to_xarray()
    assert x.dims == ("id", "layer", "dim") and x.shape == (len(fs), fs.num_layers, fs.dim)
    assert list(x["id"].values) == list(fs.ids) and list(x["layer"].values) == fs.layers
    np.testing.assert_array_equal(x.values, fs.pooled())
    rows = {r["id"]: r for r in fbank_fold["rows"]}
    assert list(x["speaker"].values) == [rows[u]["speaker"] for u in fs.ids]
    by_emotion = x.sel(layer=0).groupby("emotion").mean().compute()  # the manifest column as a group key
    anger = [i for i, u in enumerate(fs.ids) if rows[u]["emotion"] == "anger"]
    np.testing.assert_allclose(by_emotion.sel(emotion="anger").values, fs.pooled(layer=0)[anger].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(fs.to_xarray(layer=0).values, fs.pooled(layer=0))
    np.testing.assert_array_equal(fs.pooled_dask(layer=0).compute(), fs.pooled(layer=0))
    np.testing.assert_array_equal(fs.pooled_dask().compute(), fs.pooled())


def test_metadata_is_the_manifest_in_store_order_from_the_recorded_manifest(fbank_fold):
    fs = emostore.open_store(fbank_fold["store"])  # no manifest given: the one the store recorded
    meta = fs.metadata()
    assert list(meta.index) == list(fs.ids)
    rows = {r["id"]: r for r in fbank_fold["rows"]}
    assert meta["emotion"].tolist() == [rows[u]["emotion"] for u in fs.ids]
    assert meta["num_frames"].tolist() == fs.num_frames.tolist() and meta["done"].all()


def test_metadata_refuses_a_manifest_without_the_stores_ids(fbank_fold, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "nope", "audio": "x.wav"}\n')
    fs = emostore.open_store(fbank_fold["store"], manifest=other)
    with pytest.raises(StoreError, match=f"{len(fbank_fold['rows'])} of the store's ids are not in this manifest"):
        fs.metadata()


def test_one_layer_as_dask_has_one_chunk_per_utterance_equal_to_its_frames(fbank_fold):
    fs = emostore.open_store(fbank_fold["store"])
    d = fs.frames_dask(layer=0)
    assert d.shape == (int(fs.num_frames.sum()), fs.dim) and d.chunks[0] == tuple(fs.num_frames.tolist())
    for i in (0, 9, len(fs) - 1):
        np.testing.assert_array_equal(d.blocks[i].compute(), fs.frames(i, layer=0))
    np.testing.assert_array_equal(d.compute(), fs.frames_dask()[:, 0].compute())


def test_iterator_yields_each_utterance_once_in_store_order(fbank_fold):
    fs = emostore.open_store(fbank_fold["store"])
    seen = list(fs.iter_frames(layer=0))
    assert [u for u, _ in seen] == list(fs.ids)
    for u, x in seen[:3]:
        np.testing.assert_array_equal(x, fs.frames(u)[:, 0])
    assert [u for u, _ in fs.iter_frames(ids=[fs.ids[2], 0])] == [fs.ids[2], fs.ids[0]]


def test_frames_by_id_and_by_row_number_are_the_same(fbank_fold):
    fs = emostore.open_store(fbank_fold["store"])
    np.testing.assert_array_equal(fs.frames(fs.ids[5]), fs.frames(5))
    np.testing.assert_array_equal(fs.frames(-1), fs.frames(len(fs) - 1))
    with pytest.raises(UnknownUtterance, match="no row 33"):
        fs.frames(33)
    with pytest.raises(UnknownUtterance, match="no utterance 'nope'"):
        fs.frames("nope")
