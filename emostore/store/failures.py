"""The OS errors a user fixes during extraction (a full disk, a read-only volume), as one line each.

Each says how far the store got, read back from the store itself: which rows are committed, so
the user knows a re-run resumes from there (docs/store-format.md, "Full disk", "Read-only stores").
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import zarr

from emostore.store import layout

_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def committed_rows(path: str | Path) -> tuple[int, int, int, str | None]:
    """(k: rows 1..k are committed, rows committed in all, total rows, id of row k) read back from
    disk; zeros without a store."""
    try:
        group = zarr.open_group(str(path), mode="r")
        from emostore.store.writer import _settled  # (the writer imports this module)

        settled = _settled(group)
        ids = group[layout.IDS]
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return 0, 0, 0, None
    k = int(settled.size if settled.all() else np.argmin(settled))
    return k, int(settled.sum()), int(settled.size), (str(ids[k - 1]) if k else None)


def store_os_error(path: str | Path, exc: OSError) -> Exception:
    """One line for the OS errors a user fixes (full disk, read-only volume); others pass unchanged."""
    from emostore.store.writer import StoreError  # (the writer imports this module)

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
