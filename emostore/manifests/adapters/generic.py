"""A generic CSV adapter: any table with one row per utterance, mapped by column names.

``emostore manifest build csv TABLE.csv --out m.jsonl --option id=file --option label=emo ...``

Options (values are column names of the CSV): ``id`` (default "id"), ``audio`` (default "audio"
if such a column exists; relative paths resolve against the CSV's folder), ``speaker``,
``session`` (integers), ``label`` (the consensus/intended label -> ``emotion``), ``ratings`` (one
column of ';'-separated votes, e.g. "angry;sad;angry"), ``raters`` (';'-separated rater ids
aligned with ``ratings``; default anonymous ``r0, r1, ...`` per row), ``description`` (free
text), ``duration`` (seconds); ``delimiter`` (default ","). Every other column is kept as a
corpus-specific column. There is no fixed class map: labels stay raw (lower-cased).
"""

from __future__ import annotations

import csv
from pathlib import Path

from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter
from emostore.manifests.records import Utterance

CLASS_MAP = ClassMap(
    corpus="csv", version="1", classes=(),
    source="none: a user-supplied table has no fixed class map; raw labels are kept (lower-cased)",
)
_FIELDS = ("id", "audio", "speaker", "session", "label", "ratings", "raters", "description", "duration")
_RESERVED = {"id", "audio", "speaker", "session", "duration", "ratings", "raters", "description", "emotion", "extra"}


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


@register_adapter("csv", CLASS_MAP)
def build(root: Path, delimiter: str = ",", **options) -> list[Utterance]:
    """ROOT is the CSV file."""
    unknown = set(options) - set(_FIELDS)
    if unknown:
        raise AdapterError(f"csv: unknown options {', '.join(sorted(unknown))} (known: {', '.join(_FIELDS)}, delimiter)")
    path = Path(root)
    if not path.is_file():
        raise AdapterError(f"{path}: the csv adapter reads one CSV file (got a folder or nothing)")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = list(reader.fieldnames or ())
        table = list(reader)
    cols = {"id": options.get("id", "id")}
    if "audio" in options or "audio" in header:
        cols["audio"] = options.get("audio", "audio")
    for key in _FIELDS[2:]:
        if key in options:
            cols[key] = options[key]
        elif key in header and key != "label":
            cols[key] = key
    if "label" not in cols:
        for name in ("emotion", "label"):
            if name in header:
                cols["label"] = name
                break
    missing = sorted({c for c in cols.values() if c not in header})
    if missing:
        raise AdapterError(f"{path}: no column(s) {missing}; the header has {header}")
    used = set(cols.values())
    rows = []
    for lineno, r in enumerate(table, 2):
        uid = (r.get(cols["id"]) or "").strip()
        if not uid:
            raise AdapterError(f"{path}:{lineno}: empty id in column {cols['id']!r}")
        audio = (r.get(cols["audio"]) or "").strip() if "audio" in cols else ""
        if audio and "://" not in audio and not Path(audio).expanduser().is_absolute():
            audio = str((path.parent / audio).resolve())
        session = (r.get(cols["session"]) or "").strip() if "session" in cols else ""
        duration = (r.get(cols["duration"]) or "").strip() if "duration" in cols else ""
        try:
            session_v = int(session) if session else None
            duration_v = float(duration) if duration else None
        except ValueError:
            raise AdapterError(f"{path}:{lineno}: session must be an integer and duration a number "
                               f"(got {session!r}, {duration!r})") from None
        ratings = [v.lower() for v in _split(r.get(cols["ratings"]))] if "ratings" in cols else []
        raters = _split(r.get(cols["raters"])) if "raters" in cols else [f"r{i}" for i in range(len(ratings))]
        if len(raters) != len(ratings):
            raise AdapterError(f"{path}:{lineno}: {len(ratings)} ratings but {len(raters)} rater ids")
        label = (r.get(cols["label"]) or "").strip().lower() if "label" in cols else ""
        desc = (r.get(cols["description"]) or "").strip() if "description" in cols else ""
        extra = {k: v for k, v in r.items() if k not in used and k is not None and k not in _RESERVED}
        rows.append(Utterance(
            id=uid, audio=audio or None, speaker=(r.get(cols["speaker"]) or "").strip() or None if "speaker" in cols else None,
            session=session_v, duration=duration_v, ratings=ratings, raters=raters,
            description=[desc] if desc else [], emotion=label or None, extra=extra,
        ))
    return rows
