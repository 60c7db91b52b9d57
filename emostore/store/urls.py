"""Store locations: a local folder or an fsspec URL (``s3://``, ``gs://``, ``memory://``, ``file://``).

zarr opens either form itself; this module answers the few questions emostore asks of a location
(is there a store, is it empty, how many bytes) through fsspec, so credentials and endpoints come
from each filesystem's own environment and config (``AWS_*``, ``~/.aws``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``...), never from emostore.
"""

from __future__ import annotations

from pathlib import Path

from emostore.errors import EmostoreError


class LocationError(EmostoreError, ValueError):
    """A store location that cannot be reached (e.g. ``s3://`` without s3fs installed)."""


def is_url(path) -> bool:
    """True for a remote or in-memory fsspec URL; a ``file://`` URL counts as a local path."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def local_path(path) -> Path | None:
    """The folder of a local location, or None for a URL."""
    text = str(path)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return None if is_url(text) else Path(text)


def normalise(path) -> str:
    """What zarr and the store's records get: a local path as a string, a URL unchanged."""
    local = local_path(path)
    return str(local) if local is not None else str(path).rstrip("/")


def filesystem(path):
    """(fsspec filesystem, path inside it) for any location."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(str(path))
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise LocationError(f"{path}: {exc} (object storage: pip install 'emostore[s3]')") from None
    except ValueError as exc:  # "Protocol not known: foo"
        raise LocationError(f"{path}: {exc}; a store is a folder or an fsspec URL (s3://, gs://, memory://)") from None


def join(path, name: str) -> str:
    return f"{normalise(path)}/{name}"


def exists(path) -> bool:
    local = local_path(path)
    if local is not None:
        return local.exists()
    fs, root = filesystem(path)
    return fs.exists(root)


def is_file(path) -> bool:
    local = local_path(path)
    if local is not None:
        return local.exists() and not local.is_dir()
    fs, root = filesystem(path)
    return fs.isfile(root)


def nbytes(path) -> int:
    """Bytes stored under ``path`` (files on disk, objects in a bucket)."""
    local = local_path(path)
    if local is not None:
        return sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    fs, root = filesystem(path)
    return int(fs.du(root, total=True))
