"""Create or resume a feature store and commit extraction results block by block.

Creation protocol (what makes a kill during creation harmless): the root ``zarr.json`` is
written first, with every attribute (fingerprint included) in that one write, then the other
nodes. A store with no committed row (no ``done`` row and no error entry) holds nothing worth
keeping, so a re-run re-creates it, whatever a kill left of its nodes. This needs no rename, so
it holds on object stores too (an object is written whole or not at all).

Commit protocol (what makes SIGKILL safe): frames are appended in extraction order and flushed
in whole shards; when a block of utterances is finished, its remaining frames, pooled rows,
``num_frames``/``offsets`` and error entries are written, and only then ``done``. Zarr's local
store writes each chunk through a temporary file and a rename, so a kill leaves every chunk
either old or new. On reopen, frames past the last done utterance are cut off and the
unfinished block is redone exactly as planned.

A store whose every row is done needs no writes: it is opened read-only and without the lock,
so a finished store on a read-only volume re-runs as "nothing to do".
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore

from emostore.errors import EmostoreError
from emostore.store import kill_hook, layout

FRAME_DTYPES = ("float16", "float32")


class StoreError(EmostoreError, ValueError):
    """The store cannot be created, resumed or read as asked."""


def _fingerprint_mismatch(old: dict, new: dict) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class StoreWriter:
    """Owns one store during extraction; not for concurrent writers."""

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
        self._buf: list[np.ndarray] = []
        self._buf_len = 0
        self.frames_end = self._committed_frames_end()
        if self.writable and self.frames is not None and self.frames.shape[0] != self.frames_end:
            # Drop frames written by a run that died before marking their block done.
            self.frames.resize((self.frames_end, *self.frames.shape[1:]))

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
        """Open ``path`` for extraction; a store made with other inputs is refused, not mixed.

        A finished store (every row done) comes back read-only and unlocked; a store with no
        committed row is re-created; anything else is resumed under the lock.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: is a file; --out must be a new or existing store folder")
        existing = _open_existing(path, fingerprint)
        if existing is not None and bool(np.asarray(existing[layout.DONE][:]).all()):
            return cls(existing)
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock = _lock_store(path)
        except OSError as exc:
            if exc.errno not in _READ_ONLY or existing is None or not _settled(existing).all():
                raise store_os_error(path, exc) from None
            return cls(existing)  # finished (failed rows included) and read-only: nothing to do
        try:
            existing = _open_existing(path, fingerprint)  # again, now that we hold the lock
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

    def _committed_frames_end(self) -> int:
        if not self.done.any():
            return 0
        return int((self.offsets + self.num_frames)[self.done].max())

    # -- writing -------------------------------------------------------------------------
    def add_frames(self, hidden: np.ndarray) -> int:
        """Queue one utterance's frames [T, L, D]; returns its offset. Flushes whole shards."""
        offset = self.frames_end + self._buf_len
        if self.frames is None:
            return offset
        self._buf.append(hidden)
        self._buf_len += hidden.shape[0]
        shard = self.frames.shards[0]
        boundary = (offset + hidden.shape[0]) // shard * shard
        if boundary > self.frames_end:
            self._flush_frames(boundary - self.frames_end)
        return offset

    def _flush_frames(self, count: int | None = None) -> None:
        if self.frames is None or not self._buf:
            return
        data = np.concatenate(self._buf, axis=0) if len(self._buf) > 1 else self._buf[0]
        count = data.shape[0] if count is None else count
        start, end = self.frames_end, self.frames_end + count
        self.frames.resize((end, *self.frames.shape[1:]))
        self.frames[start:end] = data[:count].astype(self.frames.dtype, copy=False)
        rest = data[count:]
        self._buf = [rest] if rest.shape[0] else []
        self._buf_len = rest.shape[0]
        self.frames_end = end

    def commit_block(
        self,
        rows: np.ndarray,
        pooled: np.ndarray,
        num_frames: np.ndarray,
        offsets: np.ndarray,
        failed: dict[int, str],
    ) -> None:
        """Make a finished block durable: frames, pooled rows, index, errors, then ``done``."""
        self._flush_frames()
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


_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _lock_store(path: Path):
    """One writer per store: a second one would truncate frames the first has not committed."""
    import fcntl

    fh = open(path / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise StoreError(f"{path}: another extraction is writing this store (lock {path / '.lock'})") from None
    return fh


def _has_committed_row(group: zarr.Group) -> bool:
    """A done row or an error entry: the only things a store holds that a re-run cannot redo for free."""
    try:
        return bool(np.asarray(group[layout.DONE][:]).any()) or bool(group[layout.ERRORS].attrs.get("entries"))
    except KeyError:  # a node not created yet: killed during creation
        return False


def _settled(group: zarr.Group) -> np.ndarray:
    """Per row: done or recorded as failed (what a re-run on a read-only volume cannot change)."""
    settled = np.asarray(group[layout.DONE][:], dtype=bool)
    settled[[e["index"] for e in group[layout.ERRORS].attrs.get("entries", [])]] = True
    return settled


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


def stored_fingerprint(path: str | Path) -> dict | None:
    """The fingerprint of the store at ``path``, or None (no store, or not one of ours)."""
    try:
        return dict(zarr.open_group(str(path), mode="r").attrs.get("fingerprint") or {}) or None
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, NotADirectoryError):
        return None


def existing_done(path: str | Path, fingerprint: dict) -> np.ndarray | None:
    """``done`` of the store at ``path`` (checked against ``fingerprint``), None if it would be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path}: is a file; --out must be a new or existing store folder")
    group = _open_existing(path, fingerprint)
    return None if group is None else np.asarray(group[layout.DONE][:], dtype=bool)


def _leftover(name: str) -> bool:
    """What a killed creation leaves besides nodes: the lock file and zarr's temporary files."""
    return name in (".lock", "zarr.json") or name.endswith(".partial")


def _clear_nodes(path: Path) -> None:
    """Delete everything of a store with no committed row except the lock we hold."""
    for p in path.iterdir():
        if p.name == ".lock":
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _remove_partials(path: Path) -> None:
    """Zarr's temporary files of writes a kill interrupted (each chunk itself is old or new)."""
    for p in path.rglob("*.partial"):
        p.unlink(missing_ok=True)


def committed_rows(path: str | Path) -> tuple[int, int, int, str | None]:
    """(k: rows 1..k are committed, rows committed in all, total rows, id of row k) read back from
    disk; zeros without a store."""
    try:
        group = zarr.open_group(str(path), mode="r")
        settled = _settled(group)
        ids = group[layout.IDS]
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return 0, 0, 0, None
    k = int(settled.size if settled.all() else np.argmin(settled))
    return k, int(settled.sum()), int(settled.size), (str(ids[k - 1]) if k else None)


def store_os_error(path: str | Path, exc: OSError) -> Exception:
    """One line for the OS errors a user fixes (full disk, read-only volume); others pass unchanged."""
    if exc.errno in _DISK_FULL:
        k, _, n, last = committed_rows(path)
        where = (f"the store is intact up to row {k} of {n} ({last!r})" if k
                 else "the store has no committed row yet")
        return StoreError(f"{path}: the disk is full ({exc.strerror}); {where}; "
                          "free space and re-run the same command to resume")
    if exc.errno in _READ_ONLY:
        _, settled, n, _ = committed_rows(path)
        if not n:
            return StoreError(f"{path}: cannot create a store here ({exc.strerror}); choose a writable --out")
        return StoreError(f"{path}: the store is read-only ({exc.strerror}) and {n - settled} of {n} rows are not "
                          "extracted yet; copy it to a writable place (or extract into a new --out) to finish it")
    return exc


def _open_group(path: Path, mode: str, **kwargs) -> zarr.Group:
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
    if frames_dtype is not None and frames_dtype not in FRAME_DTYPES:
        raise StoreError(f"frames dtype must be one of {', '.join(FRAME_DTYPES)}, not {frames_dtype!r}")
    n = len(ids)
    group = _open_group(Path(path), mode="create", attributes=attrs or {})
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
