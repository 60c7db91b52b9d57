"""Read a feature store: numpy for what is small, dask for everything, never the whole store.

>>> fs = emostore.store.open("emodb.zarr")
>>> fs.pooled(layer=4)          # [N, D] float32, one layer over all utterances
>>> fs.frames("03a01Fa")         # [T, L, D] one utterance, every stored layer
>>> fs.pooled_dask()             # [N, L, D] lazily
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from emostore.store import layout
from emostore.store.failures import remote_error
from emostore.store.writer import StoreError


_NODES = (layout.IDS, layout.NUM_FRAMES, layout.OFFSETS, layout.DONE, layout.POOLED, layout.ERRORS)


class UnknownUtterance(StoreError, KeyError):
    """An utterance id the store does not hold (a KeyError too: the store maps ids to rows)."""


class FeatureStore:
    """One (corpus, encoder) store opened read-only."""

    def __init__(self, path: str | Path):
        from emostore.store import urls

        self.path = urls.normalise(path)  # a folder or an fsspec URL (s3://, gs://, memory://, file://)
        try:
            self.group = zarr.open_group(self.path, mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            raise StoreError(f"{self.path}: no feature store here") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: its zarr.json is damaged (not JSON: {exc}); restore the store "
                             "from a copy or extract it again") from None
        except Exception as exc:  # a remote location: credentials, endpoint, bucket, network
            err = remote_error(self.path, exc)
            if err is None:
                raise
            raise err from None
        if "fingerprint" not in self.group.attrs:
            raise StoreError(f"{self.path}: a Zarr group, but not an emostore feature store")
        version = self.group.attrs.get("format_version")
        if version != layout.FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format {version}, this emostore reads {layout.FORMAT_VERSION}")
        missing = [name for name in _NODES if not self._has_node(name)]
        if missing:
            raise StoreError(f"{self.path}: the store's creation was interrupted (it holds no row yet); "
                             "re-run the same extract command to create it")

    def _has_node(self, name: str) -> bool:
        try:
            return name in self.group
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.path}: {name}/zarr.json is damaged (not JSON: {exc}); restore the store "
                             "from a copy or extract it again") from None

    # -- metadata ----------------------------------------------------------------------
    @cached_property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @cached_property
    def ids(self) -> np.ndarray:
        return np.asarray(self.group[layout.IDS][:].tolist(), dtype=str)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.ids)}

    @cached_property
    def done(self) -> np.ndarray:
        return np.asarray(self.group[layout.DONE][:], dtype=bool)

    @cached_property
    def num_frames(self) -> np.ndarray:
        return np.asarray(self.group[layout.NUM_FRAMES][:], dtype=np.int64)

    @cached_property
    def offsets(self) -> np.ndarray:
        return np.asarray(self.group[layout.OFFSETS][:], dtype=np.int64)

    @property
    def errors(self) -> list[dict]:
        return list(self.group[layout.ERRORS].attrs.get("entries", []))

    @property
    def layers(self) -> list[int]:
        """Encoder layer number of each stored layer (0 = embedding output)."""
        return list(self.attrs["layers"])

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def dim(self) -> int:
        return int(self.attrs["dim"])

    @property
    def has_frames(self) -> bool:
        return layout.FRAMES in self.group

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, utt: str | int) -> int:
        if isinstance(utt, (int, np.integer)):
            return int(utt)
        try:
            return self._index[utt]
        except KeyError:
            raise UnknownUtterance(f"{self.path}: no utterance {utt!r}") from None

    def _layer_pos(self, layer: int) -> int:
        if layer < 0:
            return self.num_layers + layer
        try:
            return self.layers.index(layer)
        except ValueError:
            raise StoreError(f"{self.path}: layer {layer} is not stored (stored: {self.layers})") from None

    # -- data --------------------------------------------------------------------------
    def pooled(self, layer: int | None = None, rows=None) -> np.ndarray:
        """Mask-aware mean over valid frames: [N, D] for one encoder layer, else [N, L, D]."""
        arr = self.group[layout.POOLED]
        sel_rows = slice(None) if rows is None else np.asarray(rows)
        if layer is None:
            return arr.get_orthogonal_selection((sel_rows, slice(None), slice(None)))
        return arr.get_orthogonal_selection((sel_rows, self._layer_pos(layer), slice(None)))

    def pooled_dask(self) -> da.Array:
        return da.from_zarr(self.group[layout.POOLED])

    def frames(self, utt: str | int, layer: int | None = None) -> np.ndarray:
        """One utterance's hidden states [T, L, D] (or [T, D] for one layer)."""
        if not self.has_frames:
            raise StoreError(f"{self.path}: extracted with --no-frames; re-extract with --frames")
        i = self.index(utt)
        if not self.done[i]:
            raise StoreError(f"{self.path}: utterance {self.ids[i]!r} has no features (see `store info` errors)")
        start, stop = self.offsets[i], self.offsets[i] + self.num_frames[i]
        arr = self._frames_array
        if layer is None:
            return arr[start:stop]
        return arr[start:stop, self._layer_pos(layer)]

    @cached_property
    def _frames_array(self) -> zarr.Array:
        return self.group[layout.FRAMES]

    def frames_dask(self) -> da.Array:
        if not self.has_frames:
            raise StoreError(f"{self.path}: extracted with --no-frames; re-extract with --frames")
        return da.from_zarr(self.group[layout.FRAMES])

    def nbytes_stored(self) -> int:
        from emostore.store import urls

        return urls.nbytes(self.path)


def open(path: str | Path) -> FeatureStore:  # noqa: A001 - mirrors zarr.open / h5py.File
    """Open a feature store read-only."""
    return FeatureStore(path)
