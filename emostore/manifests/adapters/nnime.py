"""BIIC-NNIME adapter: dyadic Mandarin interactions, one row per kept speaker turn.

Layout read (the EMO-SUPERB file naming; the rater-table layout is this adapter's documented
convention because the NNIME release's own per-rater file format is not publicly documented)::

    Audios/angry_01_A_002.wav        <scenario>_<dyad>_<speaker A|B>_<turn>.wav
    Labels/annotations.csv           FileName,Rater,Emotion[,Description]

One ``annotations.csv`` line is one vote: ``Emotion`` is one raw label (a rater who chose
several emotions has several lines), ``Description`` optional typed free text.

Rows: ``id`` = the file stem; ``speaker`` = dyad + side (``"01A"``); ``extra["dyad"]`` = the dyad
number (int), ``extra["scenario"]`` and ``extra["turn"]``; ``session`` = the EMO-SUPERB NNIME
session of the dyad: 1 = dyads 01-04 and 22, 2 = 05-08, 3 = 09-12, 4 = 13-16, 5 = 17-21;
``duration`` from the audio header; ``emotion`` = None (NNIME has no consensus label column).

Exclusion rule (EMO-SUPERB preprocessing): a turn is left out of the manifest when fewer than
three distinct raters rated it, or when every one of its votes is "other". Excluded turns are
not rows; ``scan`` returns them counted by reason, ``build`` returns only the kept rows and logs
nothing.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path


from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter, audio_duration
from emostore.manifests.records import Utterance

CLASS_MAP = ClassMap(
    corpus="nnime",
    version="1",
    classes=("angry", "frustrated", "disappointed", "sad", "fear", "neutral", "surprise", "excited", "happy", "relax", "joy"),
    mapping={
        "anger": "angry", "frustration": "frustrated", "disappointment": "disappointed",
        "sadness": "sad", "surprised": "surprise", "excitement": "excited",
        "happiness": "happy", "relaxed": "relax", "relaxation": "relax",
    },
    other=frozenset({"other"}),
    source="EMO-SUPERB (Wu et al., 2024) BIIC-NNIME 11-class set: EMOsuperb/EMO-SUPERB-submission "
    "data/NNIME/Secondary/config.json",
)

MIN_RATERS = 3
_NAME = re.compile(r"^([A-Za-z]+)_(\d+)_([AB])_(\d+)$")


def session_of_dyad(dyad: int) -> int:
    """EMO-SUPERB's NNIME session of a dyad number (AdapterError outside 1..22)."""
    if dyad == 22 or 1 <= dyad <= 4:
        return 1
    for session, (lo, hi) in enumerate(((5, 8), (9, 12), (13, 16), (17, 21)), start=2):
        if lo <= dyad <= hi:
            return session
    raise AdapterError(f"dyad {dyad} is outside NNIME's dyads 01-22")


def _read_votes(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise AdapterError(f"{path}: missing (NNIME layout: Labels/annotations.csv)")
    votes: dict[str, dict] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"FileName", "Rater", "Emotion"}
        if not need <= set(reader.fieldnames or ()):
            raise AdapterError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        for i, row in enumerate(reader, 2):
            name = (row["FileName"] or "").strip()
            rater = (row["Rater"] or "").strip()
            emo = (row["Emotion"] or "").strip().lower()
            if not name or not rater or not emo:
                raise AdapterError(f"{path}:{i}: empty FileName, Rater or Emotion")
            if name.lower().endswith(".wav"):
                name = name[:-4]
            v = votes.setdefault(name, {"ratings": [], "raters": [], "description": []})
            v["ratings"].append(emo)
            v["raters"].append(rater)
            text = (row.get("Description") or "").strip()
            if text:
                v["description"].append(text)
    return votes


def scan(root: Path) -> tuple[list[Utterance], Counter]:
    """(kept rows, excluded-turn counts by reason: "fewer_than_3_raters", "all_other")."""
    root = Path(root)
    if not root.is_dir():
        raise AdapterError(f"{root}: not a folder")
    label_file = root / "Labels" / "annotations.csv"
    votes = _read_votes(label_file)
    excluded: Counter = Counter()
    rows: list[Utterance] = []
    for name in sorted(votes):
        m = _NAME.match(name)
        if not m:
            raise AdapterError(f"{label_file}: file name {name!r} is not <scenario>_<dyad>_<A|B>_<turn>")
        v = votes[name]
        if len(set(v["raters"])) < MIN_RATERS:
            excluded["fewer_than_3_raters"] += 1
            continue
        if all(r == "other" for r in v["ratings"]):
            excluded["all_other"] += 1
            continue
        wav = root / "Audios" / f"{name}.wav"
        if not wav.is_file():
            raise AdapterError(f"{label_file}: audio for {name} not found at {wav}")
        duration = audio_duration(wav)
        dyad = int(m.group(2))
        rows.append(
            Utterance(
                id=name,
                audio=str(wav),
                speaker=f"{dyad:02d}{m.group(3)}",
                session=session_of_dyad(dyad),
                duration=duration,
                ratings=v["ratings"],
                raters=v["raters"],
                description=v["description"],
                emotion=None,
                extra={"dyad": dyad, "scenario": m.group(1).lower(), "turn": int(m.group(4))},
            )
        )
    return rows, excluded


@register_adapter("nnime", CLASS_MAP)
def build(root: Path, **options) -> list[Utterance]:
    """Kept turns only (see the module docstring for the exclusion rule; ``scan`` counts them)."""
    return scan(root)[0]
