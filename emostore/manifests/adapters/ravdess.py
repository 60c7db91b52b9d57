"""RAVDESS: every label from the file name ``MM-VV-EE-II-SS-RR-AA.wav`` (or ``.flac``).

MM modality (01 audio-video, 02 video-only, 03 audio-only), VV vocal channel (01 speech,
02 song), EE emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
08 surprised), II intensity (01 normal, 02 strong), SS statement (01 "Kids are talking by the
door", 02 "Dogs are sitting by the door"), RR repetition, AA actor (01-24; odd = male, even =
female). Speaker = actor; no per-rater labels in the file names (``ratings`` empty, ``emotion``
= intended label); session = None.

The id is the clip name without extension, so a 16 kHz FLAC copy (``Actor_NN/03-01-...-NN.flac``)
gets the same ids as the original ``.wav`` release, and EmoBox's lists (which name ``.wav`` paths)
match it clip by clip. A clip present under both extensions is refused (which one to use?).
"""

from __future__ import annotations

import re
from pathlib import Path


from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter, audio_duration
from emostore.manifests.records import Utterance

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
MODALITY = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
CHANNEL = {"01": "speech", "02": "song"}
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}

CLASS_MAP = ClassMap(
    corpus="ravdess",
    version="1",
    classes=tuple(EMOTIONS.values()),
    mapping={code: name for code, name in EMOTIONS.items()},  # the numeric codes map too
    source="Livingstone & Russo (2018) 'The Ryerson Audio-Visual Database of Emotional Speech and Song "
    "(RAVDESS)', PLoS ONE 13(5): e0196391 — file-naming convention, emotion codes 01-08",
)

AUDIO_SUFFIXES = (".wav", ".flac")
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")


@register_adapter("ravdess", CLASS_MAP)
def build(root: Path, channel: str = "all", **options) -> list[Utterance]:
    """ROOT holds the .wav or .flac files (any depth, e.g. Actor_01/...). Option channel=all|speech|song."""
    if options:
        raise AdapterError(f"ravdess: unknown options {', '.join(sorted(options))} (known: channel)")
    if channel not in ("all", "speech", "song"):
        raise AdapterError(f"ravdess: channel must be all, speech or song (got {channel!r})")
    root = Path(root)
    files = sorted((f for suffix in AUDIO_SUFFIXES for f in root.rglob(f"*{suffix}")), key=lambda p: p.name)
    if not files:
        raise AdapterError(f"{root}: no .wav or .flac files (expected RAVDESS MM-VV-EE-II-SS-RR-AA.wav files)")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise AdapterError(f"{f}: clip {f.stem} is also at {seen[f.stem]}; keep one copy of each clip")
        seen[f.stem] = f
    rows = []
    for f in files:
        m = _NAME.match(f.stem)
        if not m:
            raise AdapterError(f"{f}: not a RAVDESS file name (expected MM-VV-EE-II-SS-RR-AA.wav or .flac, "
                               "e.g. 03-01-05-01-02-01-12.wav)")
        mm, vv, ee, ii, ss, rr, aa = m.groups()
        for code, table, what in ((mm, MODALITY, "modality"), (vv, CHANNEL, "vocal channel"),
                                  (ee, EMOTIONS, "emotion"), (ii, INTENSITY, "intensity"),
                                  (ss, STATEMENT, "statement")):
            if code not in table:
                raise AdapterError(f"{f}: unknown {what} code {code!r}")
        if channel != "all" and CHANNEL[vv] != channel:
            continue
        actor = int(aa)
        duration = audio_duration(f)
        rows.append(Utterance(
            id=f.stem, audio=str(f), speaker=aa, session=None, duration=duration, emotion=EMOTIONS[ee],
            extra={"modality": MODALITY[mm], "channel": CHANNEL[vv], "intensity": INTENSITY[ii],
                   "statement": ss, "repetition": int(rr), "sex": "m" if actor % 2 else "f"},
        ))
    return rows
