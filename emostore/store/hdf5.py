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

from emostore.outputs import OutputError, atomic_path, check_writable, ensure_folder
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


# Room kept for HDF5's own metadata (superblock, object headers, B-trees) beyond the arrays' bytes.
METADATA_BYTES = 1 << 20


def export_bytes(fs: FeatureStore) -> int:
    """Bytes an export needs at most: every array uncompressed, ids as variable-length strings."""
    g = fs.group
    total = METADATA_BYTES + sum(len(str(u).encode("utf-8")) + 16 for u in fs.ids)
    names = [*_INDEX, layout.POOLED] + ([layout.FRAMES] if fs.has_frames else [])
    for name in names:
        a = g[name]
        total += int(np.prod(a.shape, dtype=np.int64)) * np.dtype(a.dtype).itemsize
    return total


def _check_space(out: Path, need: int) -> None:
    import shutil

    folder = ensure_folder(out.parent)
    check_writable(folder)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OutputError(f"{out}: the export needs up to {need / 2**20:.1f} MiB and {folder} has "
                          f"{free / 2**20:.1f} MiB free; free space or choose another path")


def export_hdf5(fs: FeatureStore, out: str | Path) -> None:
    """Write ``fs`` to the HDF5 file ``out`` through the one output writer.

    The free space is checked first against :func:`export_bytes`: HDF5 buffers its writes, and a
    disk that fills under it fails only when the file is closed, after which the library can crash
    the process at exit. A failure that still happens (the disk filled by someone else) removes the
    ``.partial`` and is one line.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out}: already exists; choose another path")
    _check_space(out, export_bytes(fs))
    g = fs.group
    with atomic_path(out) as tmp:
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
                                  chunks=(min(max(frames.shape[0], 1), 1024), *frames.shape[1:])
                                  if frames.shape[0] else None, maxshape=(None, *frames.shape[1:]))
                _copy_rows(frames, h5[layout.FRAMES])
            h5.attrs["emostore_attrs"] = json.dumps(fs.attrs)
            h5.attrs["emostore_errors"] = json.dumps(fs.errors)
            h5.flush()  # a full disk fails here, inside the writer, rather than at close


def _open_export(src: Path):
    """``src`` opened for reading as an emostore HDF5 export, or one line saying why it is not one."""
    if not src.is_file():
        raise StoreError(f"{src}: no such HDF5 file")
    try:
        h5 = h5py.File(src, "r")
    except OSError as exc:
        raise StoreError(f"{src}: not an HDF5 file ({exc}); give a file written by `emostore store export`") from None
    missing = [n for n in (layout.IDS, layout.POOLED, *_INDEX) if n not in h5]
    missing += [a for a in ("emostore_attrs", "emostore_errors") if a not in h5.attrs]
    if missing:
        h5.close()
        raise StoreError(f"{src}: not an emostore HDF5 export (no {', '.join(missing)}); give a file written "
                         "by `emostore store export`")
    return h5


def import_hdf5(src: str | Path, out: str | Path) -> FeatureStore:
    from emostore.store import urls

    src, out = Path(src), urls.normalise(out)
    if urls.exists(out):
        raise StoreError(f"{out}: already exists; choose another path")
    with _open_export(src) as h5:
        try:
            attrs = json.loads(h5.attrs["emostore_attrs"])
            errors = json.loads(h5.attrs["emostore_errors"])
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{src}: its emostore_attrs / emostore_errors are not JSON ({exc})") from None
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
        group[layout.ERRORS].attrs["entries"] = errors
    return FeatureStore(out)
