"""USC-IEMOCAP adapter: the release's native layout -> manifest rows with every evaluator's votes.

Layout (as released)::

    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
    ... Session5

An EmoEvaluation file is a sequence of utterance blocks::

    [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
    C-E2:\tNeutral;\t()
    C-F1:\tFrustration; Anger;\t(remark text)
    C-E4:\tOther:curious;\t()
    A-E3:\tval 3; act 2; dom  2;\t()

Per block: every emotion an evaluator selected on a ``C-`` line is one vote
(``ratings``) cast by that evaluator (``raters``, e.g. ``"C-E2"``); the parenthesised remark
is a typed description (kept when non-empty); ``Other:text`` counts as the raw label
``"other"`` with ``text`` kept as a description. ``A-`` (dimensional) lines are skipped; the
header's ``[v, a, d]`` goes to ``extra`` (``valence``/``arousal``/``dominance``), the dialog
name to ``extra["dialog"]``. ``session`` is the Session folder's number, ``speaker`` the session
prefix plus the gender of the *speaker* of the turn (``Ses01F_impro01_M003`` -> ``"Ses01M"``),
``duration`` = end - start, ``emotion`` = the header's consensus code as a word.
"""

from __future__ import annotations

import re
from pathlib import Path

from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter
from emostore.manifests.records import Utterance

# EMO-SUPERB's IEMOCAP class set (9 classes, "other" kept apart), from the EMO-SUPERB release's
# data/IEMOCAP/Secondary/config.json (github.com/EMOsuperb/EMO-SUPERB-submission).
CLASS_MAP = ClassMap(
    corpus="iemocap",
    version="1",
    classes=("frustrated", "angry", "sad", "disgust", "excited", "fear", "neutral", "surprise", "happy"),
    mapping={
        "frustration": "frustrated",
        "anger": "angry",
        "sadness": "sad",
        "disgust": "disgust",
        "excited": "excited",
        "fear": "fear",
        "neutral": "neutral",
        "neutral state": "neutral",
        "surprise": "surprise",
        "happiness": "happy",
    },
    other=frozenset({"other"}),
    source="EMO-SUPERB (Wu et al., 2024) IEMOCAP 9-class set: EMOsuperb/EMO-SUPERB-submission "
    "data/IEMOCAP/Secondary/config.json; raw labels from the IEMOCAP EmoEvaluation files",
)

# Header consensus codes (IEMOCAP README) -> the raw word used in the evaluators' lines.
CODES = {
    "neu": "neutral",
    "fru": "frustration",
    "ang": "anger",
    "sad": "sadness",
    "hap": "happiness",
    "exc": "excited",
    "sur": "surprise",
    "fea": "fear",
    "dis": "disgust",
    "oth": "other",
    "xxx": "xxx",  # no majority
}

_HEADER = re.compile(
    r"^\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[\s*([0-9.]+)\s*,\s*([0-9.]+)\s*,\s*([0-9.]+)\s*\]\s*$"
)
_CAT = re.compile(r"^(C-[A-Za-z0-9]+):\s*(.*?)\s*\((.*)\)\s*$")
_DIM = re.compile(r"^A-[A-Za-z0-9]+:")
_SESSION = re.compile(r"^Session(\d+)$")


def _parse_choices(text: str, where: str) -> tuple[list[str], list[str]]:
    """``'Frustration; Anger;'`` -> (["frustration", "anger"], []); Other:xxx -> other + text."""
    labels: list[str] = []
    texts: list[str] = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        if item.lower().startswith("other"):
            labels.append("other")
            rest = item[5:].lstrip(" :-").strip()
            if rest:
                texts.append(rest)
        else:
            labels.append(item.lower())
    if not labels:
        raise AdapterError(f"{where}: evaluator line selects no emotion")
    return labels, texts


def parse_evaluation(path: Path) -> list[dict]:
    """One dict per utterance block of an EmoEvaluation file (AdapterError names file:line)."""
    blocks: list[dict] = []
    cur: dict | None = None
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            where = f"{path}:{lineno}"
            if not line or line.startswith("%"):
                continue
            if line.startswith("["):
                m = _HEADER.match(line)
                if not m:
                    raise AdapterError(f"{where}: malformed utterance header {line!r}")
                start, end = float(m.group(1)), float(m.group(2))
                code = m.group(4).lower()
                if code not in CODES:
                    raise AdapterError(f"{where}: unknown emotion code {m.group(4)!r}")
                if end < start:
                    raise AdapterError(f"{where}: end time {end} before start time {start}")
                cur = {
                    "id": m.group(3),
                    "start": start,
                    "end": end,
                    "code": code,
                    "vad": tuple(float(m.group(i)) for i in (5, 6, 7)),
                    "ratings": [],
                    "raters": [],
                    "description": [],
                }
                blocks.append(cur)
                continue
            if _DIM.match(line):
                if cur is None:
                    raise AdapterError(f"{where}: evaluator line before any utterance header")
                continue
            m = _CAT.match(line)
            if not m:
                raise AdapterError(f"{where}: cannot parse line {line!r}")
            if cur is None:
                raise AdapterError(f"{where}: evaluator line before any utterance header")
            labels, texts = _parse_choices(m.group(2), where)
            cur["ratings"].extend(labels)
            cur["raters"].extend([m.group(1)] * len(labels))
            remark = m.group(3).strip()
            cur["description"].extend(texts + ([remark] if remark else []))
    return blocks


def _speaker(utt_id: str, where: str) -> str:
    parts = utt_id.split("_")
    if len(parts) < 3 or len(parts[0]) < 5 or parts[-1][:1] not in ("F", "M"):
        raise AdapterError(f"{where}: utterance id {utt_id!r} is not like Ses01F_impro01_M003")
    return parts[0][:5] + parts[-1][0]


def row_session(row: dict, given: int | None) -> int | None:
    """A manifest row's session: the ``session`` column (``given``), else ``Ses0N`` in the speaker or id."""
    if given is not None:
        return given
    m = re.match(r"ses0?(\d)", str(row.get("speaker") or row["id"]), re.IGNORECASE)
    return int(m.group(1)) if m else None


@register_adapter("iemocap", CLASS_MAP, session=row_session)
def build(root: Path, **options) -> list[Utterance]:
    """Rows for every utterance of every ``Session*/dialog/EmoEvaluation/*.txt`` under ``root``."""
    root = Path(root)
    sessions = sorted(
        (int(m.group(1)), d) for d in root.iterdir() if d.is_dir() and (m := _SESSION.match(d.name))
    ) if root.is_dir() else []
    if not sessions:
        raise AdapterError(f"{root}: no Session1..Session5 folders (IEMOCAP native layout)")
    rows: list[Utterance] = []
    for session, sdir in sessions:
        evals = sorted((sdir / "dialog" / "EmoEvaluation").glob("*.txt"))
        if not evals:
            raise AdapterError(f"{sdir / 'dialog' / 'EmoEvaluation'}: no evaluation .txt files")
        for ev in evals:
            for b in parse_evaluation(ev):
                speaker = _speaker(b["id"], str(ev))
                dialog = b["id"].rsplit("_", 1)[0]
                wav = sdir / "sentences" / "wav" / dialog / f"{b['id']}.wav"
                if not wav.is_file():
                    raise AdapterError(f"{ev}: audio for {b['id']} not found at {wav}")
                v, a, d = b["vad"]
                rows.append(
                    Utterance(
                        id=b["id"],
                        audio=str(wav),
                        speaker=speaker,
                        session=session,
                        duration=round(b["end"] - b["start"], 4),
                        ratings=b["ratings"],
                        raters=b["raters"],
                        description=b["description"],
                        emotion=CODES[b["code"]],
                        extra={"dialog": dialog, "valence": v, "arousal": a, "dominance": d},
                    )
                )
    return rows
