"""Typed manifest rows: what every corpus adapter produces and every later stage reads.

A row serialises to one JSON object (one JSONL line). Per-rater annotations are kept, not only
the consensus: ``ratings[k]`` is one vote (a class label in the corpus's raw vocabulary,
lower-cased) and ``raters[k]`` the rater who cast it (a rater who chose several emotions casts
several votes). ``description`` holds annotators' typed free text.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emostore.manifests.manifest import ManifestError
from emostore.outputs import write_text


@dataclass
class Utterance:
    id: str
    audio: str | None = None
    speaker: str | None = None
    session: int | None = None
    duration: float | None = None
    ratings: list[str] = field(default_factory=list)
    raters: list[str] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    emotion: str | None = None  # the corpus's own consensus / intended label (raw)
    extra: dict = field(default_factory=dict)  # corpus-specific columns, flattened into the row

    def __post_init__(self):
        if len(self.ratings) != len(self.raters):
            raise ManifestError(f"{self.id}: {len(self.ratings)} ratings but {len(self.raters)} rater ids")

    def to_json(self, audio_base: Path | None = None) -> dict:
        row = asdict(self)
        extra = row.pop("extra")
        if self.audio is not None and audio_base is not None and "://" not in self.audio:
            row["audio"] = os.path.relpath(Path(self.audio).resolve(), audio_base.resolve())
        clash = set(extra) & set(row)
        if clash:
            raise ManifestError(f"{self.id}: extra columns {sorted(clash)} clash with manifest fields")
        return {**row, **extra}


def write_manifest(rows: list[Utterance], out: str | Path) -> Path:
    """Write JSONL; audio paths become relative to the manifest's folder (portable corpora)."""
    out = Path(out)
    seen: set[str] = set()
    lines = []
    for row in rows:
        if row.id in seen:
            raise ManifestError(f"duplicate utterance id {row.id!r}")
        seen.add(row.id)
        lines.append(json.dumps(row.to_json(out.parent), ensure_ascii=False) + "\n")
    return write_text(out, "".join(lines))
