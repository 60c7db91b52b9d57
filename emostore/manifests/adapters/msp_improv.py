"""MSP-IMPROV adapter: ``Evaluation.txt`` (or the release's spelling ``Evalution.txt``) + audio.

Layout (as released)::

    Evaluation.txt
    session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav      ... session6

The evaluation file holds, per clip, a consensus line followed by one line per rater::

    UTD-IMPROV-S01A-F01-P-FM01.avi; N; A:3.000000; V:3.500000; D:3.000000 ; N:4.000000;
    rater-p01; Neutral; Frustrated,Other-bored; A:3.000000; V:3.000000; D:3.000000; N:4.000000;

(consensus: clip, consensus code A/H/S/N/O/X, mean arousal/valence/dominance/naturalness; rater
line: rater id, primary emotion, comma-separated secondary emotions, the rater's A/V/D/N.)
The header and rater-line shapes follow the public ``ertk`` MSP-IMPROV preprocessing script;
the inner format of the secondary field is not publicly documented and is read as a
comma-separated list where an ``Other`` item may carry typed text (``Other-bored``,
``Other: bored``).

Rows: ``ratings`` = each rater's *primary* emotion (one vote per rater, lower-cased),
``raters`` = rater ids; ``extra["secondary"]``/``extra["secondary_raters"]`` = the secondary
votes and who cast them; ``description`` = typed ``Other`` texts. A rater listed twice for the
same clip (the release repeats some lines verbatim) is counted once. ``id`` = the audio file
name (``MSP-IMPROV-...``); ``session`` = the session number of the speaker (``F03`` -> 3);
``speaker`` = ``F03``; ``duration`` from the audio header; ``emotion`` = the consensus code as a
word; ``extra``: ``sentence`` (``S01A``), ``scenario`` (``P``/``R``/``S``/``T``), ``arousal``,
``valence``, ``dominance``, ``naturalness``.
"""

from __future__ import annotations

import re
from pathlib import Path


from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter, audio_duration
from emostore.manifests.records import Utterance

# EMO-SUPERB's MSP-IMPROV primary class set (EMOsuperb/EMO-SUPERB-submission
# data/IMPROV/Primary/config.json): 4 classes. ``ratings`` hold the primary votes.
CLASS_MAP = ClassMap(
    corpus="msp-improv",
    version="1",
    classes=("angry", "sad", "neutral", "happy"),
    mapping={"anger": "angry", "sadness": "sad", "happiness": "happy"},
    other=frozenset({"other"}),
    source="EMO-SUPERB (Wu et al., 2024) MSP-IMPROV primary 4-class set: "
    "EMOsuperb/EMO-SUPERB-submission data/IMPROV/Primary/config.json",
)

# The 10-class set EMO-SUPERB uses for the secondary votes (data/IMPROV/Secondary/config.json).
SECONDARY_CLASS_MAP = ClassMap(
    corpus="msp-improv-secondary",
    version="1",
    classes=("depressed", "frustrated", "angry", "sad", "disgust", "excited", "fear", "neutral", "surprise", "happy"),
    mapping={"disgusted": "disgust", "fearful": "fear", "surprised": "surprise", "anger": "angry"},
    other=frozenset({"other"}),
    source="EMOsuperb/EMO-SUPERB-submission data/IMPROV/Secondary/config.json",
)

CODES = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": "xxx"}

_NUM = r"(\d+(?:\.\d+)?|NaN)"
_HEADER = re.compile(
    rf"^UTD-IMPROV-([A-Z0-9-]+)\.avi\s*;\s*([A-Z])\s*;\s*A:{_NUM}\s*;\s*V:{_NUM}\s*;\s*D:{_NUM}\s*;\s*N:{_NUM}\s*;?\s*$"
)
_RATER = re.compile(
    rf"^([A-Za-z0-9_-]+)\s*;\s*([^;]*?)\s*;(?:(.*?);)?\s*A:{_NUM}\s*;\s*V:{_NUM}\s*;\s*D:{_NUM}\s*;\s*N:{_NUM}\s*;?\s*$"
)
_CLIP = re.compile(r"^S(\d\d)([A-Z])-([FM])(\d\d)-([A-Z])-([FM]{2})(\d\d)$")


def _find_eval(root: Path) -> Path:
    for name in ("Evaluation.txt", "Evalution.txt"):
        for cand in (root / name, *sorted(root.glob(f"*/{name}"))):
            if cand.is_file():
                return cand
    raise AdapterError(f"{root}: no Evaluation.txt (or Evalution.txt) - not the MSP-IMPROV layout")


def _other_text(item: str) -> str:
    return item[5:].lstrip(" :-").strip()


def _add_choice(clip: dict, field: str, item: str) -> None:
    """One rater's choice into ``clip[field]``: lower-cased, or "other" with its typed text kept."""
    if item.lower().startswith("other"):
        clip[field].append("other")
        if _other_text(item):
            clip["description"].append(_other_text(item))
    else:
        clip[field].append(item.lower())


def _float(x: str) -> float | None:
    return None if x == "NaN" else float(x)


def parse_evaluation(path: Path) -> dict[str, dict]:
    """Clip key (``S01A-F01-P-FM01``) -> consensus + per-rater votes; AdapterError names file:line."""
    clips: dict[str, dict] = {}
    cur: dict | None = None
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line:
                continue
            where = f"{path}:{lineno}"
            if line.startswith("UTD-IMPROV-"):
                m = _HEADER.match(line)
                if not m:
                    raise AdapterError(f"{where}: malformed clip line {line!r}")
                if m.group(2) not in CODES:
                    raise AdapterError(f"{where}: unknown consensus code {m.group(2)!r}")
                cur = {
                    "code": m.group(2),
                    "dims": [_float(m.group(i)) for i in (3, 4, 5, 6)],
                    "ratings": [], "raters": [], "secondary": [], "secondary_raters": [],
                    "description": [], "seen": set(),
                }
                clips[m.group(1)] = cur
                continue
            m = _RATER.match(line)
            if not m:
                raise AdapterError(f"{where}: cannot parse line {line!r}")
            if cur is None:
                raise AdapterError(f"{where}: rater line before any clip line")
            rater, primary, secondary = m.group(1), m.group(2).strip(), m.group(3) or ""
            if not primary:
                raise AdapterError(f"{where}: rater {rater} gives no primary emotion")
            if rater in cur["seen"]:
                continue
            cur["seen"].add(rater)
            _add_choice(cur, "ratings", primary)
            cur["raters"].append(rater)
            for item in secondary.split(","):
                item = item.strip()
                if not item:
                    continue
                _add_choice(cur, "secondary", item)
                cur["secondary_raters"].append(rater)
    if not clips:
        raise AdapterError(f"{path}: no UTD-IMPROV-... clip lines")
    return clips


@register_adapter("msp-improv", CLASS_MAP)
def build(root: Path, **options) -> list[Utterance]:
    """One row per audio file under ``root`` that the evaluation file rates (sorted by id)."""
    root = Path(root)
    if not root.is_dir():
        raise AdapterError(f"{root}: not a folder")
    ev = _find_eval(root)
    clips = parse_evaluation(ev)
    wavs = {p.stem: p for p in root.glob("session*/**/MSP-IMPROV-*.wav")}
    rows: list[Utterance] = []
    for key in sorted(clips):
        c = clips[key]
        m = _CLIP.match(key)
        if not m:
            raise AdapterError(f"{ev}: clip id UTD-IMPROV-{key} is not like S01A-F01-P-FM01")
        uid = f"MSP-IMPROV-{key}"
        wav = wavs.get(uid)
        if wav is None:
            raise AdapterError(f"{ev}: audio for {uid} not found under {root}/session*/")
        duration = audio_duration(wav)
        a, v, d, n = c["dims"]
        rows.append(
            Utterance(
                id=uid,
                audio=str(wav),
                speaker=f"{m.group(3)}{m.group(4)}",
                session=int(m.group(4)),
                duration=duration,
                ratings=c["ratings"],
                raters=c["raters"],
                description=c["description"],
                emotion=CODES[c["code"]],
                extra={
                    "sentence": f"S{m.group(1)}{m.group(2)}",
                    "scenario": m.group(5),
                    "secondary": c["secondary"],
                    "secondary_raters": c["secondary_raters"],
                    "arousal": a, "valence": v, "dominance": d, "naturalness": n,
                },
            )
        )
    return rows
