"""Create or resume a feature store and commit extraction results block by block.

Creation protocol (what makes a kill during creation harmless): the root ``zarr.json`` is
written first, with every attribute (fingerprint included) in that one write, then the other
nodes. A store with no committed row (no ``done`` row and no error entry) holds nothing worth
keeping, so a re-run re-creates it, whatever a kill left of its nodes. This needs no rename, so
it holds on object stores too (an object is written whole or not at all).

Commit protocol (what makes SIGKILL safe): every row's place in ``frames`` is planned before
encoding (:mod:`emostore.extract.frameplan`); a block's frames go to its own range in whole
shards (:mod:`emostore.store.regions`); when the block is finished, its pooled rows,
``num_frames``/``offsets`` and error entries are written, and only then ``done``. Zarr's local
store writes each chunk through a temporary file and a rename (an object store writes each
object whole or not at all), so a kill leaves every chunk either old or new. On reopen, an
unfinished block is redone exactly as planned, overwriting its range.

A store path is a local folder or an fsspec URL (:mod:`emostore.store.urls`); the one-writer lock
is a ``flock`` locally and a lease object on object storage (:mod:`emostore.store.lock`).

A store whose every row is done needs no writes: it is opened read-only and without the lock,
so a finished store on a read-only volume re-runs as "nothing to do".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore

from emostore.errors import EmostoreError
from emostore.store import kill_hook, layout, urls
from emostore.store.failures import _READ_ONLY, settled_rows, store_os_error

FRAME_DTYPES = ("float16", "float32")


class StoreError(EmostoreError, ValueError):
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

    @property
    def writable(self) -> bool:
        """False for a finished store opened without the lock: nothing may be written."""
        return not self.group.read_only

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
        is refused, not mixed.

        A finished store (every row done) comes back read-only and unlocked; a store with no
        committed row is re-created; anything else is resumed under the lock.
        """
        path, open_existing = _location(path)
        remote = urls.is_url(path)
        existing = open_existing(path, fingerprint)
        if existing is not None and bool(np.asarray(existing[layout.DONE][:]).all()):
            return cls(existing)
        try:
            if not remote:
                path.mkdir(parents=True, exist_ok=True)
            lock = _lock_store(path)
        except OSError as exc:
            if exc.errno not in _READ_ONLY or existing is None or not settled_rows(existing).all():
                err = store_os_error(path, exc)
                if err is exc:  # not one a user fixes here (extract's storage_error may still name it)
                    raise
                raise err from None
            return cls(existing)  # finished (failed rows included) and read-only: nothing to do
        try:
            existing = open_existing(path, fingerprint)  # again, now that we hold the lock
            if existing is not None:
                _remove_partials(path)
                return cls(_open_group(path, mode="r+"), lock)
            _clear_nodes(path)
            group = init_group(path, ids, num_layers, dim, frames_dtype, block_rows, compress,
                               attrs={**attrs, "fingerprint": fingerprint})
            return cls(group, lock)
        except BaseException:
            lock.close()
            raise

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
        """Update attrs (one write of the root ``zarr.json``); skipped when nothing changes."""
        if any(self.group.attrs.get(k) != v for k, v in values.items()):
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


def _has_committed_row(group: zarr.Group) -> bool:
    """A done row or an error entry: the only things a store holds that a re-run cannot redo for free."""
    try:
        return bool(np.asarray(group[layout.DONE][:]).any()) or bool(group[layout.ERRORS].attrs.get("entries"))
    except KeyError:  # a node not created yet: killed during creation
        return False


def _check_fingerprint(path, group: zarr.Group, fingerprint: dict) -> zarr.Group:
    old = group.attrs.get("fingerprint")
    if old is None:
        raise StoreError(f"{path}: exists but is not an emostore feature store")
    diff = _fingerprint_mismatch(old, fingerprint)
    if diff:
        raise StoreError(
            f"{path}: was made with different {', '.join(diff)}; "
            "extract into a new --out or delete this store"
        )
    return group


def _open_existing_url(path: str, fingerprint: dict) -> zarr.Group | None:
    """:func:`_open_existing` for a URL."""
    if not urls.exists(urls.join(path, "zarr.json")):
        fs, root = urls.filesystem(path)
        names = [c.rstrip("/").rsplit("/", 1)[-1] for c in fs.ls(root, detail=False)] if fs.isdir(root) else []
        if any(not _leftover(n) for n in names):  # as locally: only a lock may be there
            raise StoreError(f"{path}: exists, is not empty and is not a feature store")
        return None
    group = zarr.open_group(path, mode="r")
    if not _has_committed_row(group) and "fingerprint" in group.attrs:
        return None
    return _check_fingerprint(path, group, fingerprint)


def _open_existing(path: Path, fingerprint: dict) -> zarr.Group | None:
    """The store at ``path`` opened read-only if it has committed rows, else None (create it anew).

    Refuses a folder or group that is not ours, and a store made from other inputs.
    """
    if not (path / "zarr.json").exists():
        foreign = [p.name for p in path.iterdir() if not _leftover(p.name)] if path.is_dir() else []
        if foreign:
            raise StoreError(f"{path}: exists, is not empty and is not a feature store")
        return None
    group = _open_group(path, mode="r")
    if not _has_committed_row(group):
        # Killed before its first commit: nothing to keep. A group with foreign members is not ours.
        if "fingerprint" in group.attrs or all(_leftover(p.name) or p.name in layout.TOP_LEVEL
                                               for p in path.iterdir()):
            return None
    return _check_fingerprint(path, group, fingerprint)


def stored_fingerprint(path: str | Path) -> dict | None:
    """The fingerprint of the store at ``path``, or None (no store, or not one of ours)."""
    if urls.is_url(path):
        urls.filesystem(path)  # an unknown protocol or a missing fsspec backend: one line (LocationError)
    try:
        return dict(zarr.open_group(str(path), mode="r").attrs.get("fingerprint") or {}) or None
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, NotADirectoryError):
        return None


def existing_done(path: str | Path, fingerprint: dict) -> np.ndarray | None:
    """``done`` of the store at ``path`` (checked against ``fingerprint``), None if it would be created."""
    path, open_existing = _location(path)
    group = open_existing(path, fingerprint)
    return None if group is None else np.asarray(group[layout.DONE][:], dtype=bool)


def _location(path):
    """(normalised path, its _open_existing) for a folder or a URL; a file is refused."""
    remote = urls.is_url(path)
    path = urls.normalise(path) if remote else urls.local_path(path)
    if urls.is_file(path):
        raise StoreError(f"{path}: is a file; --out must be a new or existing store folder")
    return path, (_open_existing_url if remote else _open_existing)


def _leftover(name: str) -> bool:
    """What a killed creation leaves besides nodes: the lock file and zarr's temporary files."""
    return name in (".lock", "zarr.json") or name.endswith(".partial")


def _clear_nodes(path) -> None:
    """Delete everything of a store with no committed row except the lock we hold."""
    if urls.is_url(path):
        fs, root = urls.filesystem(path)
        # zarr.json last: a kill part-way leaves a group this function may clear again
        for child in sorted(fs.ls(root, detail=False) if fs.exists(root) else [], key=lambda c: c.endswith("/zarr.json")):
            if child.rstrip("/").rsplit("/", 1)[-1] != ".lock":
                fs.rm(child, recursive=True)
        return
    for p in sorted(path.iterdir(), key=lambda p: p.name == "zarr.json"):  # zarr.json last (see above)
        if p.name == ".lock":
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _remove_partials(path) -> None:
    """Zarr's temporary files of writes a kill interrupted (each chunk itself is old or new); an
    object store has none (an object is written whole or not at all)."""
    if urls.is_url(path):
        return
    for p in path.rglob("*.partial"):
        p.unlink(missing_ok=True)


def _open_group(path, mode: str, **kwargs) -> zarr.Group:
    if urls.is_url(path):  # fsspec store; the kill hook is a local test hook
        if mode == "create":
            return zarr.create_group(str(path), zarr_format=3, **kwargs)
        return zarr.open_group(str(path), mode=mode, **kwargs)
    store = LocalStore(path, read_only=mode == "r")
    if mode != "r":
        store = kill_hook.wrap(store)
    if mode == "create":
        return zarr.create_group(store, zarr_format=3, **kwargs)
    return zarr.open_group(store, mode=mode, **kwargs)


def init_group(path, ids: list[str], num_layers: int, dim: int, frames_dtype: str | None,
               block_rows: int = layout.BLOCK_ROWS, compress: bool = False, attrs: dict | None = None) -> zarr.Group:
    """Create the empty store layout (every node of docs/store-format.md) in the empty folder ``path``.

    The root ``zarr.json`` comes first and carries every attribute in one write (see the module
    docstring); the other nodes follow.
    """
    if not (isinstance(block_rows, int) and block_rows >= 1):
        raise StoreError(f"block rows must be a whole number >= 1, not {block_rows!r}")
    if frames_dtype is not None and frames_dtype not in FRAME_DTYPES:
        raise StoreError(f"frames dtype must be one of {', '.join(FRAME_DTYPES)}, not {frames_dtype!r}")
    n = len(ids)
    group = _open_group(path if urls.is_url(path) else Path(path), mode="create", attributes=attrs or {})
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
    group.create_group(layout.ERRORS, attributes={"entries": []})
    return group


def json_attrs(obj) -> dict:
    """Round-trip through JSON so attrs hold only plain types."""
    return json.loads(json.dumps(obj, default=str))
