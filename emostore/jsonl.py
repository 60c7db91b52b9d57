"""JSONL files and their sidecar metadata (``x.jsonl`` / ``x.json`` -> ``x.meta.json``).

Manifests, partitions, label sets and relabelings keep their data files in the exact formats the
issues fix, and put what produced them (rule, classes, seed, versions, hashes) beside them.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: str | Path, error: type[Exception] = ValueError) -> list[tuple[str, dict]]:
    """(``"PATH:LINE"``, object) per non-blank line; a bad line raises ``error`` naming it."""
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise error(f"{where}: expected a JSON object per line")
            out.append((where, obj))
    return out


def meta_path(path: str | Path) -> Path:
    """``x.jsonl`` / ``x.json`` -> ``x.meta.json``; other names get ``.meta.json`` appended."""
    path = Path(path)
    name = path.name
    for suffix in (".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".meta.json")
