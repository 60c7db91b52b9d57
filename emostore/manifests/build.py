"""Build a manifest from a corpus's native layout with its registered adapter."""

from __future__ import annotations

from pathlib import Path

from emostore.manifests.adapters.base import AdapterError, get_adapter
from emostore.manifests.records import Utterance, write_manifest
from emostore.outputs import file_path


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict (the CLI's repeated ``--option``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AdapterError(f"option {pair!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def build_manifest(corpus: str, root: str | Path, out: str | Path, **options) -> list[Utterance]:
    """Run CORPUS's adapter over ROOT and write the JSONL manifest to OUT.

    Every row records ``corpus`` (unless the adapter set it), so ``check_manifest`` can find the
    corpus's class map later.
    """
    adapter = get_adapter(corpus)
    file_path(out)  # a wrong --out is refused before the corpus is scanned
    root = Path(root)
    if not root.exists():
        raise AdapterError(f"{root}: no such file or folder")
    rows = adapter.build(root, **options)
    if not rows:
        raise AdapterError(f"{root}: the {corpus} adapter found no utterances")
    for r in rows:
        r.extra.setdefault("corpus", corpus)
    write_manifest(rows, out)
    return rows
