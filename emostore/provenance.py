"""What produced a file: content hashes and library versions, recorded in stores, runs and metadata."""

from __future__ import annotations

import hashlib
import importlib
import platform
from pathlib import Path
from typing import Iterable

_CHUNK = 1 << 22


def _update(h, path: str | Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of one file's bytes (read in chunks: weights files are large)."""
    h = hashlib.sha256()
    _update(h, path)
    return h.hexdigest()


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One SHA-256 over several files (sharded weights): each file's name, then its bytes, in name order."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode())
        _update(h, p)
    return h.hexdigest()


def library_versions(*names: str) -> dict[str, str]:
    """``{name: version}`` in the order given; ``emostore`` and ``python`` are understood too."""
    out = {}
    for name in names:
        if name == "python":
            out[name] = platform.python_version()
        else:
            out[name] = importlib.import_module(name).__version__
    return out
