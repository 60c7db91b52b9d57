"""Check a manifest before spending encoder time on it: a readable report, errors vs warnings.

Errors (``manifest check`` exits non-zero): rows without an id, duplicate ids, audio files that
do not exist or whose header cannot be read, zero/negative/non-numeric durations, ratings and
raters of different lengths. Warnings: rows without audio (ratings-only manifests), rows with
neither ratings nor an ``emotion`` (no label), raw labels outside the corpus's class map, classes
with no utterance.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from emostore.manifests.manifest import ManifestError, ManifestRow, _read_csv, _read_jsonl, _resolve
from emostore.schema import problem

_SHOW = 5  # ids listed per problem


@dataclass
class Report:
    path: str
    rows: int = 0
    corpus: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)  # benchmark class -> utterances
    unknown_labels: dict[str, int] = field(default_factory=dict)  # raw label -> votes

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"{self.path}: {self.rows} rows" + (f", corpus {self.corpus}" if self.corpus else "")]
        for k, v in self.stats.items():
            lines.append(f"  {k:<22}{v}")
        if self.class_counts:
            lines.append("  classes (utterances by intended label, else plurality vote):")
            for c, n in self.class_counts.items():
                lines.append(f"    {c:<20}{n}")
        lines += [f"error: {e}" for e in self.errors]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings: "
                     + ("OK" if self.ok else "NOT OK"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:_SHOW])
    return shown + (f", ... ({len(ids) - _SHOW} more)" if len(ids) > _SHOW else "")


def _as_list(value) -> list[str] | None:
    """Ratings/raters as a list: JSONL lists as they are; CSV cells as JSON or ';'-separated."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                got = json.loads(s)
                return [str(v) for v in got] if isinstance(got, list) else None
            except json.JSONDecodeError:
                return None
        return [v.strip() for v in s.split(";") if v.strip()]
    return None


def _probe(path: str) -> float:
    import soundfile as sf

    return sf.info(path).duration


def check_manifest(path: str | Path, corpus: str | None = None, probe_audio: bool = True) -> Report:
    """Check PATH (JSONL or CSV manifest). ``corpus`` overrides the rows' ``corpus`` column."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    rep = Report(path=str(path), rows=len(rows))
    if not rows:
        rep.errors.append("the manifest has no rows")
        return rep
    base = path.parent

    no_id, missing_audio, unreadable, no_audio = [], [], [], []
    bad_dur, zero_dur, neg_dur, no_dur = [], [], [], []
    no_label, mismatch, bad_ratings, bad_format = [], [], [], []
    seen: Counter = Counter()
    labels_by_row: list[tuple[str | None, list[str]]] = []
    total_ratings = 0
    durations: list[float] = []
    corpora = Counter()
    for i, row in enumerate(rows, 1):
        uid = str(row.get("id") or "").strip()
        name = uid or f"row {i}"
        if not uid:
            no_id.append(f"row {i}")
        else:
            seen[uid] += 1
        if row.get("corpus"):
            corpora[str(row["corpus"])] += 1
        if uid:
            _format_problem(row, name, bad_format)

        audio = str(row.get("audio") or "").strip()
        probed = None
        if not audio:
            no_audio.append(name)
        elif "://" not in audio:
            full = _resolve(audio, base)
            if not Path(full).is_file():
                missing_audio.append(f"{name} ({audio})")
            elif probe_audio and row.get("duration") in (None, ""):
                try:
                    probed = _probe(full)
                except Exception as exc:  # noqa: BLE001 - any decoder complaint is the finding
                    unreadable.append(f"{name} ({exc})")

        dur = row.get("duration")
        if dur in (None, ""):
            dur = probed
        if dur in (None, ""):
            if audio:
                no_dur.append(name)
        else:
            try:
                d = float(dur)
            except (TypeError, ValueError):
                bad_dur.append(f"{name} ({dur!r})")
            else:
                if d != d:
                    bad_dur.append(f"{name} (NaN)")
                elif d == 0:
                    zero_dur.append(name)
                elif d < 0:
                    neg_dur.append(f"{name} ({d:g})")
                else:
                    durations.append(d)

        ratings, raters = _as_list(row.get("ratings")), _as_list(row.get("raters"))
        if ratings is None or raters is None:
            bad_ratings.append(name)
            ratings, raters = ratings or [], raters or []
        if len(ratings) != len(raters):
            mismatch.append(f"{name} ({len(ratings)} ratings, {len(raters)} raters)")
        total_ratings += len(ratings)
        emotion = str(row.get("emotion") or "").strip() or None
        if not ratings and not emotion:
            no_label.append(name)
        labels_by_row.append((emotion, ratings))

    dups = sorted(k for k, n in seen.items() if n > 1)
    for bad, what in (
        (no_id, "rows without an id"), (dups, "duplicate ids"), (missing_audio, "audio files missing"),
        (unreadable, "audio files unreadable"), (zero_dur, "rows with zero duration"),
        (neg_dur, "rows with negative duration"), (bad_dur, "rows with a non-numeric duration"),
        (mismatch, "rows whose ratings and raters differ in length"),
        (bad_ratings, "rows whose ratings/raters are not lists"),
        (bad_format, "rows that break the manifest format (load_manifest refuses them)"),
    ):
        if bad:
            rep.errors.append(f"{len(bad)} {what}: {_ids(bad)}")
    if no_audio:
        what = "all rows" if len(no_audio) == len(rows) else f"{len(no_audio)} rows"
        rep.warnings.append(f"{what} without audio (ratings-only; fine for labels, not for extract): "
                            f"{_ids(no_audio)}")
    if no_dur:
        rep.warnings.append(f"{len(no_dur)} rows with audio but no known duration: {_ids(no_dur)}")
    if no_label:
        rep.warnings.append(f"{len(no_label)} rows with no ratings and no emotion (no label): {_ids(no_label)}")

    n_rated = sum(1 for _, r in labels_by_row if r)
    rep.stats = {
        "speakers": len({str(r["speaker"]) for r in rows if r.get("speaker") not in (None, "")}),
        "with audio": len(rows) - len(no_audio),
        "total duration": f"{sum(durations):.1f} s" if durations else "unknown",
        "ratings": total_ratings,
        "ratings per rated row": f"{total_ratings / n_rated:.2f}" if n_rated else "-",
    }

    rep.corpus = corpus or (corpora.most_common(1)[0][0] if corpora else None)
    if rep.corpus:
        _class_coverage(rep, labels_by_row)
    return rep


# Fields whose problems the checks above already name in their own words.
_CHECKED_ABOVE = {"id", "duration", "ratings", "raters"}


def _format_problem(row: dict, name: str, out: list[str]) -> None:
    """The row against the one manifest-row model every reader uses (:class:`ManifestRow`)."""
    try:
        ManifestRow.model_validate(row)
    except ValidationError as exc:
        loc = exc.errors(include_url=False)[0]["loc"]
        if loc and loc[0] not in _CHECKED_ABOVE:
            out.append(f"{name} ({problem(ManifestRow, exc)})")


def _class_coverage(rep: Report, labels_by_row) -> None:
    from emostore.manifests.adapters.base import AdapterError, get_adapter

    try:
        cmap = get_adapter(rep.corpus).class_map
    except AdapterError:
        rep.warnings.append(f"corpus {rep.corpus!r} has no adapter: class coverage not checked")
        return
    unknown: Counter = Counter()
    counts: Counter = Counter()
    raw_counts: Counter = Counter()
    for emotion, ratings in labels_by_row:
        for raw in ([emotion] if emotion else []) + ratings:
            raw_counts[raw.strip().lower()] += 1
            if cmap.classes and cmap.map_label(raw) is None:
                unknown[raw.strip().lower()] += 1
        if not cmap.classes:
            continue
        # One class per row: the intended/consensus label, else the plurality of the votes.
        cls = cmap.map_label(emotion) if emotion else None
        if cls is None and ratings:
            votes = Counter(c for c in (cmap.map_label(r) for r in ratings) if c)
            if votes:
                top = max(votes.values())
                winners = sorted(c for c, n in votes.items() if n == top)
                cls = winners[0] if len(winners) == 1 else "(tie)"
        if cls is not None:
            counts[cls] += 1
    if not cmap.classes:
        rep.stats["raw labels"] = ", ".join(f"{k} {n}" for k, n in raw_counts.most_common()) or "-"
        return
    order = [*cmap.classes, "other", "(tie)"]
    rep.class_counts = {c: counts[c] for c in order if c in cmap.classes or counts[c]}
    rep.unknown_labels = dict(unknown.most_common())
    empty = [c for c in cmap.classes if not counts[c]]
    if empty:
        rep.warnings.append(f"classes with no utterance: {', '.join(empty)}")
    if unknown:
        rep.warnings.append(
            f"{sum(unknown.values())} labels outside the {rep.corpus} class map v{cmap.version}: "
            + ", ".join(f"{k!r} x{n}" for k, n in unknown.most_common(10))
        )
