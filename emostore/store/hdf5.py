"""Export a store to one HDF5 file and import it back (same nodes, attrs as JSON).

HDF5 is for tools that cannot read Zarr: the file has the datasets ``ids``, ``num_frames``,
``offsets``, ``done``, ``pooled/mean`` and (if stored) ``frames``, and the root attribute
``emostore_attrs`` (the store's attrs as JSON) and ``emostore_errors`` (error entries as JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from emostore.store import layout
from emostore.store.reader import FeatureStore
from emostore.store.writer import StoreError, init_group

# Bytes held in memory per copy step: rows of a large model's frames are ~50 kB each, so a
# fixed row count would mean gigabytes per step.
COPY_BYTES = 64 * 2**20
_INDEX = (layout.NUM_FRAMES, layout.OFFSETS, layout.DONE)


def copy_step_rows(shape: tuple[int, ...], itemsize: int, limit: int = COPY_BYTES) -> int:
    """Rows per copy step so that one step holds at most ``limit`` bytes (at least one row)."""
    row_bytes = itemsize * int(np.prod(shape[1:], dtype=np.int64))
    return max(1, limit // max(row_bytes, 1))


def _copy_rows(src, dst) -> None:
    step = copy_step_rows(tuple(src.shape), np.dtype(src.dtype).itemsize)
    for start in range(0, src.shape[0], step):
        block = src[start : start + step]
        dst[start : start + block.shape[0]] = block


def export_hdf5(fs: FeatureStore, out: str | Path) -> None:
    out = Path(out)
    if out.exists():
        raise StoreError(f"{out}: already exists; choose another path")
    g = fs.group
    tmp = out.with_name(out.name + ".partial")
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset(layout.IDS, data=np.asarray(fs.ids, dtype=object), dtype=h5py.string_dtype())
        for name in _INDEX:
            h5.create_dataset(name, data=g[name][:])
        pooled = g[layout.POOLED]
        h5.create_dataset(layout.POOLED, shape=pooled.shape, dtype=pooled.dtype,
                          chunks=pooled.chunks, compression="gzip", compression_opts=1)
        _copy_rows(pooled, h5[layout.POOLED])
        if fs.has_frames:
            frames = g[layout.FRAMES]
            h5.create_dataset(layout.FRAMES, shape=frames.shape, dtype=frames.dtype,
                              chunks=(min(max(frames.shape[0], 1), 1024), *frames.shape[1:]) if frames.shape[0] else None,
                              maxshape=(None, *frames.shape[1:]))
            _copy_rows(frames, h5[layout.FRAMES])
        h5.attrs["emostore_attrs"] = json.dumps(fs.attrs)
        h5.attrs["emostore_errors"] = json.dumps(fs.errors)
    tmp.rename(out)


def import_hdf5(src: str | Path, out: str | Path) -> FeatureStore:
    from emostore.store import urls

    src, out = Path(src), urls.normalise(out)
    if urls.exists(out):
        raise StoreError(f"{out}: already exists; choose another path")
    with h5py.File(src, "r") as h5:
        if "emostore_attrs" not in h5.attrs:
            raise StoreError(f"{src}: not an emostore HDF5 export (no emostore_attrs)")
        attrs = json.loads(h5.attrs["emostore_attrs"])
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in h5[layout.IDS][:]]
        _, L, D = h5[layout.POOLED].shape
        frames_dtype = str(h5[layout.FRAMES].dtype) if layout.FRAMES in h5 else None
        group = init_group(out, ids, L, D, frames_dtype, int(attrs.get("block_rows", layout.BLOCK_ROWS)),
                           bool(attrs.get("compress", False)), attrs=attrs)
        for name in _INDEX:
            group[name][:] = h5[name][:]
        _copy_rows(h5[layout.POOLED], group[layout.POOLED])
        if frames_dtype is not None:
            group[layout.FRAMES].resize(h5[layout.FRAMES].shape)
            _copy_rows(h5[layout.FRAMES], group[layout.FRAMES])
        group[layout.ERRORS].attrs["entries"] = json.loads(h5.attrs["emostore_errors"])
    return FeatureStore(out)
