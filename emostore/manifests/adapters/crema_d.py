"""CREMA-D: clips from the clip names, per-rater votes from the crowd-sourced rating table.

Clip name ``AAAA_SSS_EEE_LL``: actor (1001-1091), sentence code, intended emotion (ANG, DIS, FEA,
HAP, NEU, SAD), level (LO, MD, HI, XX). Votes come from ``tabulatedVotes.csv`` (upstream
``processedResults/``), rows whose unnamed id column starts with the modality digit
(1 = voice only, the default; 2 = face only; 3 = audio-visual). The table holds only vote
*counts* per class A/D/F/H/N/S, so a count of k becomes k votes; rater ids are not in it, so each
clip's votes get anonymous ids ``v0, v1, ...`` that are NOT linked across clips (do not use them
for per-rater modelling). ``emotion`` is the intended (acted) emotion, lower-cased.

Audio is ``AudioWAV/<clip>.wav`` under ROOT when present, else ``None`` (a ratings-only manifest,
for the labels commands). ``session`` is EMO-SUPERB's CREMA-D session (speaker-id ranges).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path


from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter, audio_duration
from emostore.manifests.records import Utterance

VOTE_COLUMNS = ("A", "D", "F", "H", "N", "S")
CLASS_MAP = ClassMap(
    corpus="crema-d",
    version="1",
    classes=("angry", "disgust", "fear", "happy", "neutral", "sad"),
    mapping={
        "a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "s": "sad",
        "anger": "angry", "ang": "angry", "dis": "disgust", "fea": "fear", "hap": "happy", "neu": "neutral",
    },
    source="Cao et al. (2014) CREMA-D, IEEE Trans. Affective Computing: the six acted/rated emotions "
    "(tabulatedVotes.csv columns A/D/F/H/N/S, clip-name codes ANG/DIS/FEA/HAP/NEU/SAD); "
    "EMO-SUPERB (Wu et al. 2024) uses the same six classes",
)

# EMO-SUPERB's five CREMA-D sessions as inclusive actor-id ranges.
SESSIONS = {1: (1037, 1054), 2: (1001, 1018), 3: (1073, 1091), 4: (1055, 1072), 5: (1019, 1036)}
MODALITIES = {"voice": "1", "face": "2", "av": "3", "1": "1", "2": "2", "3": "3"}

_CLIP = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def session_of(actor: int) -> int | None:
    for s, (lo, hi) in SESSIONS.items():
        if lo <= actor <= hi:
            return s
    return None


def row_session(row: dict, given: int | None) -> int | None:
    """EMO-SUPERB session of a manifest row from its actor id (``speaker``), which must agree with
    the row's ``session`` column (``given``); ``given`` when the speaker is not an actor id."""
    m = re.search(r"(\d{4})", str(row.get("speaker") or ""))
    derived = session_of(int(m.group(1))) if m else None
    if derived is None:
        return given
    if given is not None and given != derived:
        raise AdapterError(f"row {row['id']!r}: CREMA-D actor {row.get('speaker')} is in EMO-SUPERB session "
                           f"{derived}, but the manifest says session {given}")
    return derived


def _find(root: Path, name: str) -> Path | None:
    for p in (root / name, root / "processedResults" / name):
        if p.is_file():
            return p
    return None


def _read_votes(path: Path, modality: str) -> dict[str, dict]:
    votes: dict[str, dict] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"", "fileName", *VOTE_COLUMNS} - set(reader.fieldnames or ())
        if missing:
            raise AdapterError(f"{path}: missing columns {sorted(missing)} (expected CREMA-D's tabulatedVotes.csv)")
        for lineno, r in enumerate(reader, 2):
            if not r[""].startswith(modality):
                continue
            try:
                counts = {k: int(r[k]) for k in VOTE_COLUMNS}
            except ValueError:
                raise AdapterError(f"{path}:{lineno}: vote counts are not integers") from None
            votes[r["fileName"]] = {"counts": counts, "agreement": r.get("agreement"), "emo_vote": r.get("emoVote")}
    return votes


def _demographics(root: Path) -> dict[int, dict]:
    p = _find(root, "VideoDemographics.csv")
    if p is None:
        return {}
    with p.open(encoding="utf-8", newline="") as fh:
        return {int(r["ActorID"]): r for r in csv.DictReader(fh)}


@register_adapter("crema-d", CLASS_MAP, session=row_session)
def build(root: Path, modality: str = "voice", **options) -> list[Utterance]:
    """ROOT holds the CREMA-D tables (and optionally AudioWAV/). Option modality=voice|face|av."""
    if options:
        raise AdapterError(f"crema-d: unknown options {', '.join(sorted(options))} (known: modality)")
    if modality not in MODALITIES:
        raise AdapterError(f"crema-d: modality must be voice, face or av (got {modality!r})")
    root = Path(root)
    wav_dir = root / "AudioWAV"
    votes_path = _find(root, "tabulatedVotes.csv")
    votes = _read_votes(votes_path, MODALITIES[modality]) if votes_path else {}
    names_path = _find(root, "SentenceFilenames.csv")
    if names_path is not None:
        with names_path.open(encoding="utf-8", newline="") as fh:
            clips = [r["Filename"].strip() for r in csv.DictReader(fh)]
    elif votes:
        clips = sorted(votes)
    elif wav_dir.is_dir():
        clips = sorted(p.stem for p in wav_dir.glob("*.wav"))
    else:
        clips = []
    if not clips:
        raise AdapterError(f"{root}: no CREMA-D clips found (expected tabulatedVotes.csv, "
                           "SentenceFilenames.csv or AudioWAV/)")
    demo = _demographics(root)
    rows = []
    for clip in clips:
        m = _CLIP.match(clip)
        if not m:
            raise AdapterError(f"{names_path or votes_path or wav_dir}: {clip!r} is not a CREMA-D clip name "
                               "(expected AAAA_SSS_EEE_LL, e.g. 1001_DFA_ANG_XX)")
        actor, sentence, emo, level = m.groups()
        ratings: list[str] = []
        extra = {"sentence": sentence, "level": level}
        v = votes.get(clip)
        if v is not None:
            for k in VOTE_COLUMNS:
                ratings += [k.lower()] * v["counts"][k]
            extra["agreement"] = float(v["agreement"]) if v["agreement"] not in (None, "", "NA") else None
            extra["vote"] = v["emo_vote"]
        d = demo.get(int(actor))
        if d:
            extra.update(sex=d.get("Sex"), age=int(d["Age"]) if d.get("Age", "").isdigit() else d.get("Age"),
                         race=d.get("Race"), ethnicity=d.get("Ethnicity"))
        wav = wav_dir / f"{clip}.wav"
        audio, duration = None, None
        if wav.is_file():
            audio = str(wav)
            duration = audio_duration(wav)
        rows.append(Utterance(
            id=clip, audio=audio, speaker=actor, session=session_of(int(actor)), duration=duration,
            ratings=ratings, raters=[f"v{i}" for i in range(len(ratings))], emotion=emo.lower(), extra=extra,
        ))
    return rows
