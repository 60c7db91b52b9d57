"""Create or resume a feature store and commit extraction results block by block.

Commit protocol (what makes SIGKILL safe): every row's place in ``frames`` is planned before
encoding (:mod:`emostore.extract.frameplan`); a block's frames go to its own range in whole
shards (:mod:`emostore.store.regions`); when the block is finished, its pooled rows,
``num_frames``/``offsets`` and error entries are written, and only then ``done``. Zarr's local
store writes each chunk through a temporary file and a rename (an object store writes each
object whole or not at all), so a kill leaves every chunk either old or new. On reopen, an
unfinished block is redone exactly as planned, overwriting its range.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import zarr

from emostore.store import layout, urls

FRAME_DTYPES = ("float16", "float32")


class StoreError(ValueError):
    """The store cannot be created, resumed or read as asked."""


def _fingerprint_mismatch(old: dict, new: dict) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class StoreWriter:
    """The coordinator's side of one store during extraction: the lock, the index arrays, errors
    and ``done``. Frames are written by block writers (:mod:`emostore.store.regions`)."""

    def __init__(self, group: zarr.Group, lock=None):
        self.group = group
        self._lock = lock
        self.ids = np.asarray(group[layout.IDS][:].tolist(), dtype=str)
        self.done = np.asarray(group[layout.DONE][:], dtype=bool)
        self.num_frames = np.asarray(group[layout.NUM_FRAMES][:], dtype=np.int64)
        self.offsets = np.asarray(group[layout.OFFSETS][:], dtype=np.int64)
        self.errors: dict[str, dict] = {e["id"]: e for e in group[layout.ERRORS].attrs.get("entries", [])}
        self.frames = group[layout.FRAMES] if layout.FRAMES in group else None
        self.pooled = group[layout.POOLED]

    # -- creation / resume -------------------------------------------------------------
    @classmethod
    def create_or_resume(
        cls,
        path: str | Path,
        *,
        ids: list[str],
        attrs: dict,
        fingerprint: dict,
        num_layers: int,
        dim: int,
        frames_dtype: str | None,
        block_rows: int = layout.BLOCK_ROWS,
        compress: bool = False,
    ) -> "StoreWriter":
        """Open ``path`` (a folder or an fsspec URL) for extraction; a store made with other inputs
        is refused, not mixed."""
        path = urls.normalise(path)
        if urls.exists(urls.join(path, "zarr.json")):
            lock = _lock_store(path)
            group = zarr.open_group(path, mode="r+")
            old = group.attrs.get("fingerprint")
            if old is None:
                raise StoreError(f"{path}: exists but is not an emostore feature store")
            diff = _fingerprint_mismatch(old, fingerprint)
            if diff:
                raise StoreError(
                    f"{path}: was made with different {', '.join(diff)}; "
                    "extract into a new --out or delete this store"
                )
            return cls(group, lock)
        if urls.is_file(path):
            raise StoreError(f"{path}: is a file; --out must be a new or existing store folder")
        if not urls.is_empty_location(path):
            raise StoreError(f"{path}: exists, is not empty and is not a feature store")
        group = init_group(path, ids, num_layers, dim, frames_dtype, block_rows, compress)
        lock = _lock_store(path)
        group.attrs.update({**attrs, "fingerprint": fingerprint})
        return cls(group, lock)

    # -- writing -------------------------------------------------------------------------
    def reserve_frames(self, total: int) -> None:
        """Size ``frames`` to the planned total once, before any block writes into it."""
        if self.frames is not None and self.frames.shape[0] != total:
            self.frames.resize((total, *self.frames.shape[1:]))

    def commit_block(
        self,
        rows: np.ndarray,
        pooled: np.ndarray,
        num_frames: np.ndarray,
        offsets: np.ndarray,
        failed: dict[int, str],
    ) -> None:
        """Make a finished block durable (its frames are written): pooled rows, index, errors, then ``done``."""
        if self._lock is not None:
            self._lock.check()
        ok = np.array([r not in failed for r in rows], dtype=bool)
        good = rows[ok]
        if good.size:
            lo, hi = int(good.min()), int(good.max()) + 1
            if hi - lo == good.size:  # contiguous rows: one aligned write
                self.pooled[lo:hi] = pooled[ok]
            else:
                self.pooled.set_orthogonal_selection((good, slice(None), slice(None)), pooled[ok])
            self.num_frames[good] = num_frames[ok]
            self.offsets[good] = offsets[ok]
            self.group[layout.NUM_FRAMES][:] = self.num_frames
            self.group[layout.OFFSETS][:] = self.offsets
        for r in good:
            self.errors.pop(str(self.ids[r]), None)
        for r, reason in failed.items():
            self.errors[str(self.ids[r])] = {"id": str(self.ids[r]), "index": int(r), "reason": reason}
        self.group[layout.ERRORS].attrs["entries"] = sorted(self.errors.values(), key=lambda e: e["index"])
        self.done[good] = True
        self.group[layout.DONE][:] = self.done

    def set_attrs(self, **values) -> None:
        self.group.attrs.update(values)

    def close(self) -> None:
        """Release the store's lock (also released when the process dies)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _lock_store(path):
    """One writer per store (emostore/store/lock.py): two would commit over each other."""
    from emostore.store.lock import lock_store

    return lock_store(path)


def init_group(path, ids: list[str], num_layers: int, dim: int, frames_dtype: str | None,
               block_rows: int = layout.BLOCK_ROWS, compress: bool = False) -> zarr.Group:
    """Create the empty store layout (every node of docs/store-format.md) at ``path``."""
    if frames_dtype is not None and frames_dtype not in FRAME_DTYPES:
        raise StoreError(f"frames dtype must be one of {', '.join(FRAME_DTYPES)}, not {frames_dtype!r}")
    n = len(ids)
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.create_array(layout.IDS, shape=(n,), dtype=str, chunks=(max(n, 1),))[:] = np.asarray(ids, dtype=object)
    for name in (layout.NUM_FRAMES, layout.OFFSETS):
        group.create_array(name, shape=(n,), dtype="int64", chunks=(max(n, 1),), fill_value=0)
    group.create_array(layout.DONE, shape=(n,), dtype="bool", chunks=(max(n, 1),), fill_value=False)
    group.create_group("pooled").create_array(
        "mean", shape=(n, num_layers, dim), dtype="float32",
        chunks=layout.pooled_chunks(n, dim, block_rows), fill_value=float("nan"),
        compressors=layout.compressors(compress),
    )
    if frames_dtype is not None:
        chunks, shards = layout.frame_chunks(num_layers, dim, np.dtype(frames_dtype).itemsize)
        group.create_array(layout.FRAMES, shape=(0, num_layers, dim), dtype=frames_dtype,
                           chunks=chunks, shards=shards, fill_value=0,
                           compressors=layout.compressors(compress))
    group.create_group(layout.ERRORS).attrs["entries"] = []
    return group


def json_attrs(obj) -> dict:
    """Round-trip through JSON so attrs hold only plain types."""
    return json.loads(json.dumps(obj, default=str))
