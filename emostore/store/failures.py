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


def settled_rows(group: zarr.Group) -> np.ndarray:
    """Per row: done or recorded as failed (what a re-run on a read-only volume cannot change)."""
    settled = np.asarray(group[layout.DONE][:], dtype=bool)
    settled[[e["index"] for e in group[layout.ERRORS].attrs.get("entries", [])]] = True
    return settled


def committed_rows(path: str | Path) -> tuple[int, int, int, str | None]:
    """(k: rows 1..k are committed, rows committed in all, total rows, id of row k) read back from
    disk; zeros without a store."""
    try:
        group = zarr.open_group(str(path), mode="r")
        settled = settled_rows(group)
        ids = group[layout.IDS]
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return 0, 0, 0, None
    k = int(settled.size if settled.all() else np.argmin(settled))
    return k, int(settled.sum()), int(settled.size), (str(ids[k - 1]) if k else None)


def store_os_error(path: str | Path, exc: OSError) -> Exception:
    """One line for the OS errors a user fixes (full disk, read-only volume); others pass unchanged."""
    from emostore.store.writer import StoreError  # (the writer imports this module at its top)

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


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def remote_error(path: str | Path, exc: BaseException) -> Exception | None:
    """One line naming the URL and what to check, for a failure to use object storage at ``path``
    (no credentials, no bucket, access denied, endpoint unreachable, a timeout); None when it is none of these."""
    import asyncio

    from emostore.store import urls
    from emostore.store.writer import StoreError  # (the writer imports this module at its top)

    if not urls.is_url(path):
        return None
    chain = _chain(exc)
    names = " ".join(type(e).__name__ for e in chain)
    text = " ".join(str(e) for e in chain).lower()
    scheme = str(path).split("://", 1)[0]
    creds = " (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws)" if scheme in ("s3", "s3a") else ""
    endpoint = " (AWS_ENDPOINT_URL)" if scheme in ("s3", "s3a") else ""
    if "NoCredentialsError" in names or "unable to locate credentials" in text:
        why = f"no credentials were found; set them{creds}"
    elif any(isinstance(e, PermissionError) for e in chain) or "accessdenied" in names.lower() or "forbidden" in text:
        why = f"access denied; check the credentials{creds} and that they may read and write this bucket"
    elif "nosuchbucket" in names.lower() or "bucket does not exist" in text:
        why = f"the bucket {str(path).split('://', 1)[1].split('/', 1)[0]!r} does not exist; check its name"
    elif any(isinstance(e, (TimeoutError, asyncio.TimeoutError)) for e in chain) or "Timeout" in names:
        why = f"the object store did not answer in time; check the endpoint{endpoint} and the network, then re-run"
    elif any(isinstance(e, ConnectionError) for e in chain) or "EndpointConnectionError" in names \
            or "ClientConnectorError" in names:
        first = next((str(e) for e in chain if "EndpointConnectionError" in type(e).__name__), str(chain[-1]))
        why = f"cannot reach the object store ({first}); check the endpoint{endpoint} and the network"
    else:
        return None
    _quiet_abandoned_requests()
    return StoreError(f"{path}: {why}")


def _quiet_abandoned_requests() -> None:
    """After a failed request, the requests it abandoned report a botocore ContextVar ValueError
    when garbage-collected ("Exception ignored in <coroutine ...>"): noise after the one line that
    says what failed, so those reports are dropped."""
    import sys

    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, ValueError) and "was created in a different Context" in str(
                unraisable.exc_value):
            return
        previous(unraisable)

    sys.unraisablehook = hook


def storage_error(path: str | Path, exc: BaseException) -> Exception | None:
    """The one-line error for a storage failure the user fixes (full disk, read-only volume, object
    storage unreachable or refusing), or None: anything else is not the storage's fault."""
    remote = remote_error(path, exc)
    if remote is not None:
        return remote
    if isinstance(exc, OSError):
        err = store_os_error(path, exc)
        return None if err is exc else err
    return None
