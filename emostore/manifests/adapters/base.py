"""Corpus adapters: a corpus's native layout -> manifest rows, one registry keyed by name.

Each adapter module registers a builder and the corpus's class map::

    @register_adapter("iemocap", CLASS_MAP)
    def build(root: Path, **options) -> list[Utterance]: ...

and, where the corpus's sessions can be read off a row's other fields, ``session=row_session``:
``row_session(row, given) -> int | None`` returns the row's session given its ``session`` column
(``given``, None when empty), raising AdapterError when the two disagree. The EMO-SUPERB partition
rule uses it for manifests made by other tools (or before the adapter filled ``session``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from emostore.manifests.records import Utterance
from emostore.errors import EmostoreError


def audio_duration(path) -> float | None:
    """Seconds from the audio header; None if unreadable (``manifest check`` reports those)."""
    import soundfile as sf

    try:
        return round(sf.info(str(path)).duration, 4)
    except Exception:  # noqa: BLE001 - soundfile raises several types for unreadable files
        return None


class AdapterError(EmostoreError, ValueError):
    """The corpus folder does not look like the corpus's native layout (message names the file)."""


@dataclass(frozen=True)
class ClassMap:
    """Which raw labels become which benchmark classes, and which count as "other".

    ``classes``: the benchmark's classes in order. ``mapping``: raw label -> class (raw labels
    that are already class names may be omitted). ``other``: raw labels counted as "other".
    ``version`` changes whenever the map changes, and is recorded with partitions and label sets.
    """

    corpus: str
    version: str
    classes: tuple[str, ...]
    mapping: dict[str, str] = field(default_factory=dict)
    other: frozenset[str] = frozenset()
    source: str = ""  # where the map comes from (paper, table)

    def map_label(self, raw: str) -> str | None:
        """Benchmark class of a raw label; "other" for other-labels; None if unknown."""
        raw = raw.strip().lower()
        if raw in self.other:
            return "other"
        cls = self.mapping.get(raw, raw)
        return cls if cls in self.classes else None


@dataclass(frozen=True)
class Adapter:
    name: str
    build: Callable[..., list[Utterance]]
    class_map: ClassMap
    has_official_split: bool = False
    session: Callable[[dict, int | None], int | None] | None = None  # see the module docstring


_ADAPTERS: dict[str, Adapter] = {}


def register_adapter(name: str, class_map: ClassMap, has_official_split: bool = False, session=None):
    def deco(fn):
        _ADAPTERS[name] = Adapter(name, fn, class_map, has_official_split, session)
        return fn

    return deco


def adapters() -> dict[str, Adapter]:
    from emostore.manifests import adapters as _pkg  # noqa: F401  (import registers all)

    return dict(_ADAPTERS)


def get_adapter(name: str) -> Adapter:
    known = adapters()
    if name not in known:
        raise AdapterError(f"unknown corpus {name!r}; known: {', '.join(sorted(known))}")
    return known[name]
