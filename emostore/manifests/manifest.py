"""Load a corpus manifest (JSONL, CSV, or a folder of audio files) into typed rows.

A manifest is the contract between corpus adapters and everything downstream: ids are unique and
stable, ``audio`` is a path (relative paths resolve against the manifest's folder) or a URL.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from emostore.errors import EmostoreError
from emostore.jsonl import decode_text, read_jsonl
from emostore.schema import Id, parse_rows

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


class ManifestError(EmostoreError, ValueError):
    """The manifest itself is malformed (not one utterance: the whole file)."""


def _cells(value):
    """A list field as written: a JSON list, or a CSV cell (a JSON list, or ';'-separated values)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("is neither a JSON list nor ';'-separated values") from None
        return [v.strip() for v in text.split(";") if v.strip()]
    return value


def _number(value):
    return None if value == "" else value


def _scalar(value):
    if isinstance(value, (list, dict, bool)):
        raise ValueError(f"must be a string or a number, got {json.dumps(value)[:40]}")
    return value


def _text(value):
    """A label or rater id: a string, or a number taken as its text (numeric codes, rater numbers)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Labels = Annotated[list[Annotated[str, BeforeValidator(_text), Field(min_length=1)]], BeforeValidator(_cells)]
Scalar = Annotated[str | int | float | None, BeforeValidator(_scalar)]


class ManifestRow(BaseModel):
    """What every manifest row must hold; corpus-specific columns (any other key) are kept as they are."""

    model_config = ConfigDict(extra="allow")
    id: Id
    audio: str | None = Field(default=None, description="a path (relative to the manifest's folder) or a URL")
    speaker: Scalar = Field(default=None, description="a speaker id string, or null")
    session: Scalar = Field(default=None, description="a session number or name, or null")
    duration: Annotated[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None, BeforeValidator(_number)] = Field(
        default=None, description="seconds, a finite number >= 0, or null")
    ratings: Labels = Field(default_factory=list, description="a list of label strings, one per vote")
    raters: Labels = Field(default_factory=list, description="a list of rater ids, one per rating")
    description: Labels = Field(default_factory=list, description="a list of strings")

    @model_validator(mode="after")
    def _one_rater_per_rating(self):
        if self.raters and len(self.ratings) != len(self.raters):
            raise ValueError(f"{len(self.ratings)} ratings but {len(self.raters)} raters (one rater per rating)")
        return self


@dataclass(frozen=True)
class Manifest:
    """Utterance rows in manifest order, plus the sha256 that a store records."""

    source: str
    rows: list[dict] = field(repr=False)
    sha256: str

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    def audio_paths(self) -> list[str]:
        return [r["audio"] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


def _resolve(audio: str, base: Path) -> str:
    if "://" in audio:
        return audio
    p = Path(audio).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in _jsonl_rows(path)]


def _jsonl_rows(path: Path) -> list[tuple[str, dict]]:
    return read_jsonl(path, ManifestError)


def _read_csv(path: Path) -> list[dict]:
    return [row for _, row in _csv_rows(path)]


def _csv_rows(path: Path) -> list[tuple[str, dict]]:
    """Rows of a CSV with a header (UTF-8; the BOM that Excel writes is dropped); a row with more or
    fewer fields than the header is refused, naming it."""
    text = decode_text(path.read_bytes(), path, ManifestError)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    for i, row in enumerate(reader, 1):
        if None in row or None in row.values():
            fields = len(reader.fieldnames or ()) + len(row.get(None) or ()) - sum(v is None for v in row.values())
            raise ManifestError(f"{path}:{reader.line_num}: row {i} has {fields} fields, the header "
                                f"{len(reader.fieldnames or ())} (a comma inside a value needs quotes)")
        rows.append((f"{path}:{reader.line_num}", dict(row)))
    return rows


def _scan_folder(folder: Path) -> list[dict]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ManifestError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    rows = []
    for p in files:
        rel = p.relative_to(folder)
        rows.append({"id": rel.with_suffix("").as_posix(), "audio": rel.as_posix()})
    return rows


def _sha256_rows(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def load_manifest(path: str | Path, require_audio: bool = True) -> Manifest:
    """Read a manifest; a folder becomes one row per audio file (id = relative path, no suffix).

    The sha256 is taken over the rows as written (before path resolution), so moving a corpus
    folder keeps the hash while editing a row changes it. ``require_audio=False`` accepts rows
    without audio (rating tables for the labels commands).
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file or folder")
    if path.is_dir():
        rows, base = _scan_folder(path), path
    else:
        located = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
        rows, base = [row for _, row in located], path.parent
        parse_rows(ManifestRow, [(w, r) for w, r in located if str(r.get("id") or "").strip()], path, ManifestError)
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        for key in ("id", "audio") if require_audio else ("id",):
            if not str(row.get(key) or "").strip():
                raise ManifestError(f"{path}: row {i + 1} has no {key!r}")
        row["id"] = str(row["id"])
        if row["id"] in seen:
            raise ManifestError(
                f"{path}: id {row['id']!r} appears twice (rows {seen[row['id']] + 1} and {i + 1})"
            )
        seen[row["id"]] = i
    sha = _sha256_rows(rows)
    resolved = [{**r, "audio": _resolve(str(r["audio"]), base)} if r.get("audio") else dict(r) for r in rows]
    return Manifest(source=str(path), rows=resolved, sha256=sha)
