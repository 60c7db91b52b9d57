"""Where a lab keeps a corpus's manifest and its stores (see the package docstring)."""

from __future__ import annotations

from emostore.errors import EmostoreError
from emostore.store import urls

MANIFEST = "manifest.jsonl"
STORE_SUFFIX = ".zarr"


class LabError(EmostoreError, ValueError):
    """A lab, a plan or a (corpus, encoder) name is wrong or missing."""


def check_name(kind: str, name: str) -> str:
    """Corpus and encoder names become path parts: plain names only."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in '/\\:*?"<>| '):
        raise LabError(f"{kind} name {name!r}: use letters, digits, '-', '_' or '.' (it names a folder in the lab)")
    return name


def corpus_dir(lab: str, corpus: str) -> str:
    return urls.join(urls.normalise(lab), check_name("corpus", corpus))


def manifest_path(lab: str, corpus: str) -> str:
    return urls.join(corpus_dir(lab, corpus), MANIFEST)


def store_path(lab: str, corpus: str, encoder: str) -> str:
    return urls.join(corpus_dir(lab, corpus), check_name("encoder", encoder) + STORE_SUFFIX)


def find_store(lab: str, corpus: str, encoder: str) -> str:
    """The store of (corpus, encoder) in ``lab``; an error naming what the lab holds if it is not there."""
    path = store_path(lab, corpus, encoder)
    if not urls.exists(urls.join(path, "zarr.json")):
        from emostore.lab.catalog import pairs

        have = ", ".join(f"{c}/{e}" for c, e in pairs(lab)) or "nothing"
        raise LabError(f"lab {lab}: no store for corpus {corpus!r} and encoder {encoder!r} (it holds: {have})")
    return path
