"""Read a feature store: numpy for what is small, dask for everything, never the whole store.

>>> fs = emostore.open_store("emodb.zarr")      # or emostore.store.open(...)
>>> fs.pooled(layer=4)                           # [N, D] float32, one layer over all utterances
>>> fs.pooled_dask(layer=4)                      # the same lazily (no layer: [N, L, D])
>>> fs.to_xarray()                               # [N, L, D] lazily, with id and layer coordinates
>>> fs.frames("03a01Fa")                         # [T, L, D] one utterance, every stored layer
>>> for utt, x in fs.iter_frames(layer=4): ...   # one utterance at a time, [T, D]
>>> fs.frames_dask(layer=4)                      # [sum T, D] lazily, one chunk per utterance
>>> fs.metadata()                                # the manifest's columns (speaker, emotion...) by id

docs/api.md describes the whole reading API.
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

    def __init__(self, path: str | Path, manifest: str | Path | None = None):
        from emostore.store import urls

        self.manifest_path = None if manifest is None else str(manifest)  # for metadata(); None: recorded
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
            if not -len(self) <= utt < len(self):
                raise UnknownUtterance(f"{self.path}: no row {utt} (the store has {len(self)} rows)")
            return int(utt) % len(self)
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

    def pooled_dask(self, layer: int | None = None) -> da.Array:
        """``pooled/mean`` lazily, in the store's chunks: [N, L, D], or [N, D] for one encoder ``layer``."""
        arr = da.from_zarr(self.group[layout.POOLED])
        return arr if layer is None else arr[:, self._layer_pos(layer)]

    def to_xarray(self, layer: int | None = None):
        """Pooled features as a lazy ``xarray.DataArray`` [id, layer, dim] (``layer`` given: [id, dim]).

        Coordinates: ``id`` (utterance ids), ``layer`` (encoder layer numbers, 0 = embedding output),
        ``done`` along ``id``; with a manifest (given to :func:`open` or recorded by the store) its
        scalar columns too (``speaker``, ``emotion``, ``session``...), so ``.groupby("speaker")`` works.
        Needs the ``xarray`` extra (``pip install emostore[xarray]``).
        """
        try:
            import xarray as xr
        except ImportError:
            raise StoreError("to_xarray() needs xarray: pip install 'emostore[xarray]'") from None
        data = self.pooled_dask()
        coords = {"id": self.ids, "layer": np.asarray(self.layers), "done": ("id", self.done)}
        meta = self.metadata() if self._manifest_source() else None
        if meta is not None:
            for col in meta.columns:
                values = meta[col].to_numpy()
                if col not in coords and all(np.ndim(v) == 0 for v in values):
                    coords[col] = ("id", values)
        arr = xr.DataArray(data, dims=("id", "layer", "dim"), coords=coords, name="pooled_mean",
                           attrs={"store": self.path, "encoder": str(self.attrs.get("encoder"))})
        return arr if layer is None else arr.isel(layer=self._layer_pos(layer))

    # -- manifest metadata ---------------------------------------------------------------
    def _manifest_source(self) -> str | None:
        """The manifest given to :func:`open`, else the one recorded at extraction if it is still there."""
        if self.manifest_path is not None:
            return self.manifest_path
        recorded = self.attrs.get("manifest")
        return recorded if recorded and Path(recorded).exists() else None

    def metadata(self):
        """The manifest's rows for this store's utterances, in store order: a pandas DataFrame indexed
        by ``id`` (``speaker``, ``session``, ``emotion``... as the manifest has them) plus the store's
        ``done`` and ``num_frames``.

        The manifest is the one given to :func:`open` (``manifest=``), else the one the store recorded
        at extraction when that file is still there.
        """
        import pandas as pd

        from emostore.manifests import load_manifest

        source = self._manifest_source()
        if source is None:
            raise StoreError(f"{self.path}: no manifest to read metadata from (the store recorded "
                             f"{self.attrs.get('manifest')!r}, not found); pass open_store(PATH, manifest=...)")
        rows = {r["id"]: r for r in load_manifest(source, require_audio=False).rows}
        missing = [u for u in self.ids if u not in rows]
        if missing:
            raise StoreError(f"{source}: {len(missing)} of the store's ids are not in this manifest "
                             f"(first: {', '.join(missing[:5])}); is it the manifest of {self.path}?")
        df = pd.DataFrame([rows[u] for u in self.ids]).set_index("id")
        df["done"] = self.done
        df["num_frames"] = self.num_frames
        return df

    def _need_frames(self) -> None:
        if not self.has_frames:
            raise StoreError(f"{self.path}: extracted with --no-frames; re-extract with --frames")

    def frames(self, utt: str | int, layer: int | None = None) -> np.ndarray:
        """One utterance's hidden states [T, L, D] (or [T, D] for one layer), by id or row number."""
        self._need_frames()
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

    def iter_frames(self, layer: int | None = None, ids=None):
        """``(id, frames)`` for each done utterance (or each of ``ids``), read one utterance at a time.

        Utterances without features (extraction errors) are skipped when ``ids`` is None.
        """
        self._need_frames()
        rows = np.flatnonzero(self.done) if ids is None else [self.index(u) for u in ids]
        for i in rows:
            yield str(self.ids[i]), self.frames(int(i), layer)

    def frames_dask(self, layer: int | None = None) -> da.Array:
        """Every utterance's frames lazily: [ΣT, L, D], or [ΣT, D] for one encoder ``layer``.

        With ``layer`` the array has one chunk per utterance in store order (``chunks[0] ==
        tuple(num_frames)``, 0 for an utterance without features), so ``.blocks[i]`` is row ``i``'s frames.
        """
        self._need_frames()
        arr = da.from_zarr(self._frames_array)
        if layer is None:
            return arr
        arr = arr[:, self._layer_pos(layer)]
        n, off = self.num_frames, self.offsets
        if len(n) and not np.array_equal(off[1:], off[:-1] + n[:-1]):  # rows not laid out in store order
            arr = da.concatenate([arr[o:o + k] for o, k in zip(off.tolist(), n.tolist())])
        elif len(n):
            arr = arr[int(off[0]):int(off[-1] + n[-1])]
        return arr.rechunk((tuple(n.tolist()), arr.shape[1]))

    def nbytes_stored(self) -> int:
        from emostore.store import urls

        return urls.nbytes(self.path)


def open(path: str | Path, manifest: str | Path | None = None) -> FeatureStore:  # noqa: A001 - mirrors zarr.open
    """Open a feature store read-only; ``manifest``: where :meth:`FeatureStore.metadata` reads the
    utterances' columns (default: the manifest the store recorded, if it is still there)."""
    return FeatureStore(path, manifest)
