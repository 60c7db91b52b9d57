"""The classes of EmoBox's cross-corpus track and each corpus's way into them.

EmoBox's track 2 tests on angry / happy / neutral / sad. A corpus's benchmark class (its adapter's
class map) reaches them through ``RENAMES`` (EmoDB's German-derived names) or by name; every other
class (RAVDESS calm, fearful, ...; EmoDB boredom, ...) is left out of cross-corpus runs and counted.
"""

from __future__ import annotations

from collections import Counter

from emostore.errors import EmostoreError
from emostore.manifests.adapters.base import get_adapter

SHARED_CLASSES = ("angry", "happy", "neutral", "sad")
# corpus class -> shared class, where the names differ; a class named like a shared one maps to it.
RENAMES: dict[str, dict[str, str]] = {
    "emodb": {"anger": "angry", "happiness": "happy", "neutral": "neutral", "sadness": "sad"},
}


class CrossCorpusError(EmostoreError, ValueError):
    """A cross-corpus pair cannot be built (stores that differ, a corpus without shared classes...)."""


def class_mapping(corpus: str) -> dict[str, str]:
    """``{corpus class: shared class}`` for the classes of ``corpus`` that reach the shared set."""
    classes = get_adapter(corpus).class_map.classes
    renames = RENAMES.get(corpus, {})
    out = {c: renames.get(c, c) for c in classes if renames.get(c, c) in SHARED_CLASSES}
    if not out:
        raise CrossCorpusError(f"{corpus}: none of its classes ({', '.join(classes)}) maps to the shared "
                               f"classes {', '.join(SHARED_CLASSES)}")
    return out


def shared_labels(corpus: str, rows: list[dict]) -> tuple[dict[str, str], dict[str, int]]:
    """(id -> shared class, left-out counts by corpus class) of manifest ``rows``.

    A row's class is its ``emotion`` through the corpus's class map; rows whose class is not shared
    are counted by that class ("unlabelled" when the row has none).
    """
    cmap = get_adapter(corpus).class_map
    mapping = class_mapping(corpus)
    kept, left_out = {}, Counter()
    for r in rows:
        raw = r.get("emotion")
        cls = cmap.map_label(str(raw)) if raw else None
        if cls in mapping:
            kept[str(r["id"])] = mapping[cls]
        else:
            left_out[cls or "unlabelled"] += 1
    return kept, dict(sorted(left_out.items()))
