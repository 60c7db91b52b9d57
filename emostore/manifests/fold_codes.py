"""The compact form published fold lists ship in: ids once, one character per id per fold.

EmoBox's fold lists and EMO-SUPERB's splits ship inside the package as gzipped JSON. A fold is a
string with one code per id (``r`` train, ``t`` test, ``.`` not in the fold, ...), so 5 folds over
30 k ids are 150 k characters instead of 150 k repeated ids. Bytes are deterministic (gzip mtime 0),
so a re-pack of the same lists is the same file.
"""

from __future__ import annotations

import gzip
import json


def gzip_json(obj) -> bytes:
    """``obj`` as compact JSON, gzipped at level 9 with mtime 0 (the same bytes on every run)."""
    return gzip.compress(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
                         compresslevel=9, mtime=0)


def read_gzip_json(data: bytes, error: type[Exception], what: str, fmt: str | None = None) -> dict:
    """The object :func:`gzip_json` wrote; damaged bytes, or a ``format`` field other than ``fmt``,
    raise ``error`` naming ``what``."""
    try:
        obj = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise error(f"{what} are unreadable ({exc})") from None
    if fmt is not None and obj.get("format") != fmt:
        raise error(f"{what} have format {obj.get('format')!r}, expected {fmt!r}")
    return obj


def encode_folds(folds: dict[str, dict[str, list[str]]], order: list[str], codes: dict[str, str]) -> dict[str, str]:
    """Each fold ``{part: ids}`` as one string over ``order``: ``codes[part]`` at an id's position, else ``.``."""
    pos = {i: n for n, i in enumerate(order)}
    out = {}
    for name, fold in folds.items():
        chars = ["."] * len(order)
        for part, ids in fold.items():
            for i in ids:
                chars[pos[i]] = codes[part]
        out[name] = "".join(chars)
    return out


def decode_folds(obj: dict, error: type[Exception], what: str) -> dict[str, dict[str, list[str]]]:
    """:func:`encode_folds`'s strings in ``obj["folds"]`` back to ``{fold: {part: ids}}`` (every part
    ``obj["codes"]`` names, ids in ``obj["ids"]`` order); a string of the wrong length raises ``error``."""
    ids, part_of = obj["ids"], obj["codes"]
    folds = {}
    for name, s in obj["folds"].items():
        if len(s) != len(ids):
            raise error(f"{what}: fold {name} has {len(s)} codes for {len(ids)} ids")
        fold: dict[str, list[str]] = {part: [] for part in part_of.values()}
        for i, ch in zip(ids, s):
            if ch != ".":
                fold[part_of[ch]].append(i)
        folds[name] = fold
    return folds
