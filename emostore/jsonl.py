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
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            line = decode_line(raw, where, error, bom=lineno == 1)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise error(f"{where}: expected a JSON object per line")
            out.append((where, obj))
    return out


def decode_line(raw: bytes, where: str, error: type[Exception] = ValueError, bom: bool = False) -> str:
    """UTF-8 text of one line (``bom``: a leading byte-order mark is dropped); else ``error`` naming the line."""
    try:
        return raw.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as exc:
        raise error(_not_utf8(where, raw[exc.start], exc.start)) from None


def decode_text(data: bytes, path: str | Path, error: type[Exception] = ValueError) -> str:
    """A whole file's UTF-8 text without the BOM Excel writes; a bad byte raises ``error`` naming its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, line_start = data.count(b"\n", 0, exc.start) + 1, data.rfind(b"\n", 0, exc.start) + 1
        raise error(_not_utf8(f"{path}:{line}", data[exc.start], exc.start - line_start)) from None


def _not_utf8(where: str, byte: int, offset: int) -> str:
    return f"{where}: not UTF-8 (byte 0x{byte:02x} at column {offset + 1}); save the file as UTF-8"


def meta_path(path: str | Path) -> Path:
    """``x.jsonl`` / ``x.json`` -> ``x.meta.json``; other names get ``.meta.json`` appended."""
    path = Path(path)
    name = path.name
    for suffix in (".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".meta.json")
