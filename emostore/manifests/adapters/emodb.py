"""EmoDB (Berlin Database of Emotional Speech): labels and speakers from the file names.

File name ``SSTTTEV.wav``: SS speaker, TTT text code (a01..b10), E emotion letter (German
initial), V version letter. EmoDB has no per-rater labels: ``ratings`` stays empty and
``emotion`` holds the intended (acted) label, so the labels commands fall back to ``emotion``
(one-hot). The corpus's own listening test (``perception_test.tsv`` beside ``wav/``, 20
listeners) is attached as ``recognition`` / ``naturalness`` (percent) when present.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path


from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter, audio_duration
from emostore.manifests.records import Utterance

# German initial -> English class name (Burkhardt et al. 2005, file naming documentation).
LETTERS = {
    "W": "anger",  # Wut
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}
# Speaker sex from the corpus documentation (SOURCES.md).
SEX = {"03": "m", "10": "m", "11": "m", "12": "m", "15": "m", "08": "f", "09": "f", "13": "f", "14": "f", "16": "f"}

CLASS_MAP = ClassMap(
    corpus="emodb",
    version="1",
    classes=tuple(LETTERS.values()),
    mapping={k.lower(): v for k, v in LETTERS.items()},  # the raw letters map too
    source="Burkhardt et al. (2005) 'A Database of German Emotional Speech', Interspeech: "
    "file-name emotion letters W/L/E/A/F/T/N; the seven acted classes as used by EmoBox",
)

_NAME = re.compile(r"^(\d{2})([ab]\d{2})([WLEAFTN])([a-z])$")


def _perception(root: Path) -> dict[str, tuple[float, float]]:
    for p in (root / "perception_test.tsv", root.parent / "perception_test.tsv"):
        if p.is_file():
            out = {}
            with p.open(encoding="utf-8", newline="") as fh:
                for r in csv.DictReader(fh, delimiter="\t"):
                    name = Path(str(r.get("Satz", "")).strip()).stem
                    try:
                        out[name] = (float(r["erkannt"].replace(",", ".")), float(r["natuerlich"].replace(",", ".")))
                    except (KeyError, ValueError, AttributeError):
                        continue
            return out
    return {}


@register_adapter("emodb", CLASS_MAP)
def build(root: Path, **options) -> list[Utterance]:
    """ROOT is the EmoDB folder (holding ``wav/``) or the ``wav/`` folder itself (``.wav`` or ``.flac``)."""
    if options:
        raise AdapterError(f"emodb takes no options (got {', '.join(sorted(options))})")
    root = Path(root)
    wav = root / "wav" if (root / "wav").is_dir() else root
    files = sorted([*wav.glob("*.wav"), *wav.glob("*.flac")])
    if not files:
        raise AdapterError(f"{wav}: no .wav or .flac files (expected EmoDB's wav/ folder of SSTTTEV.wav files)")
    perception = _perception(wav.parent) or _perception(wav)
    rows = []
    for f in files:
        m = _NAME.match(f.stem)
        if not m:
            raise AdapterError(f"{f}: not an EmoDB file name (expected SSTTTEV.wav, e.g. 03a01Fa.wav)")
        spk, text, letter, version = m.groups()
        extra = {"text": text, "version": version, "sex": SEX.get(spk), "emotion_code": letter}
        if f.stem in perception:
            extra["recognition"], extra["naturalness"] = perception[f.stem]
        duration = audio_duration(f)
        rows.append(Utterance(id=f.stem, audio=str(f), speaker=spk, session=None, duration=duration,
                              emotion=LETTERS[letter], extra=extra))
    return rows
