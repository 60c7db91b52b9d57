"""The one writer of every output file: whole files or nothing, and one line when the disk says no.

Every command that writes a file (manifests, partitions, label sets, relabelings, run files,
reports, HDF5 exports) goes through :func:`atomic_path` or the helpers built on it:

* a directory given as a file path is refused (and a file given as a folder, :func:`ensure_folder`);
* missing parent folders are created;
* the data goes to ``PATH.partial`` beside the target, then replaces it in one ``os.replace``, so a
  reader never sees half a file and an old file survives a failed write;
* a full disk, a read-only volume or a missing permission (ENOSPC, EDQUOT, EROFS, EACCES, EPERM)
  becomes one :class:`OutputError` naming the path, and the ``.partial`` is removed.
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from emostore.errors import EmostoreError

PARTIAL = ".partial"

# errno -> what the user reads; anything else is not an output-path problem and keeps its traceback.
_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class OutputError(EmostoreError, OSError):
    """An output path cannot be written (a folder in the way, full disk, read-only, no permission)."""


def partial_path(path: str | Path) -> Path:
    """Where :func:`atomic_path` stages ``path``'s bytes."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL)


def reason(exc: BaseException) -> str | None:
    """The user-facing reason of an output failure, or None if ``exc`` is no such failure."""
    if isinstance(exc, OSError) and exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return None


def refuse(path: str | Path, exc: BaseException) -> OutputError:
    """``exc`` (an output failure, see :func:`reason`) as one line naming ``path``."""
    return OutputError(f"{path}: cannot write ({reason(exc)}); free space, fix the permissions or choose another "
                       "output path")


def ensure_folder(path: str | Path) -> Path:
    """``path`` as an existing folder (parents created); a file in the way or a refusing disk: one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder; choose a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if reason(exc) is None:
            raise
        raise refuse(path, exc) from None
    return path


def check_writable(folder: str | Path) -> None:
    """Create and drop a scratch file in ``folder``: a read-only or forbidden folder is one line now,
    before a long write starts."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        if reason(exc) is None:
            raise
        raise refuse(folder, exc) from None


def file_path(path: str | Path) -> Path:
    """``path`` as a writable file path: a folder there is refused, missing parents are created.
    Commands call it before long work, so a wrong ``--out`` costs nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file path")
    ensure_folder(path.parent)
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the ``.partial`` path to write ``path``'s content to; on success it replaces ``path``.

    On any failure the ``.partial`` is removed; an output failure (full disk, read-only, no
    permission) becomes :class:`OutputError` naming ``path``, anything else propagates unchanged.
    """
    path = file_path(path)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if reason(exc) is not None:
            raise refuse(path, exc) from None
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        _fill(tmp, data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    """``obj`` as JSON (non-ASCII kept, a final newline) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_with_meta(path: str | Path, text: str, meta_file: str | Path, meta: dict) -> Path:
    """A data file and its ``.meta.json`` sibling: the data is staged whole first, then the meta file
    replaced, then the data; a disk that refuses either leaves the old data file in place."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _fill(tmp, text.encode("utf-8"))
        write_json(meta_file, meta)
    return path


def _fill(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
