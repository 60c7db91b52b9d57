"""The small EmoDB subset bundled inside the package, so the first command needs no corpus.

Two clips per (speaker, emotion) of the 10 speakers × 7 emotions (one combination has a single clip
in the corpus, three have one: 135 clips, 270 s), picked by the corpus's own listening test
(highest recognition, then naturalness, then id), resampled to 16 kHz with soxr HQ and stored as
16-bit FLAC in EmoDB's native layout (``wav/`` and ``perception_test.tsv``), so the ordinary
``emodb`` adapter reads it. :func:`build_subset` rebuilds it from a full EmoDB copy; a test checks
the shipped files equal what it builds from ``../shared/data/emodb``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

PER_CELL = 2
SAMPLE_RATE = 16000


def bundled_root() -> Path:
    """Folder of the bundled subset inside the installed package."""
    return Path(str(resources.files("emostore.recipe") / "data" / "emodb16k"))


def _perception(root: Path) -> dict[str, tuple[float, float, str]]:
    """stem -> (recognition %, naturalness %, the row as written) from ``perception_test.tsv``."""
    path = root / "perception_test.tsv"
    out = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)
        for row in reader:
            stem = Path(row[1]).stem
            out[stem] = (float(row[2].replace(",", ".")), float(row[3].replace(",", ".")), row)
    return out


def select(root: str | Path, per_cell: int = PER_CELL) -> list[str]:
    """Ids of the subset: per (speaker, emotion letter) the ``per_cell`` best-recognised clips."""
    root = Path(root)
    perception = _perception(root)
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in sorted((root / "wav").glob("*.wav")):
        cells[(f.stem[:2], f.stem[5])].append(f.stem)
    chosen = []
    for key in sorted(cells):
        ranked = sorted(cells[key], key=lambda s: (-perception.get(s, (0, 0))[0], -perception.get(s, (0, 0))[1], s))
        chosen.extend(ranked[:per_cell])
    return sorted(chosen)


def build_subset(src: str | Path, out: str | Path, per_cell: int = PER_CELL) -> list[str]:
    """Write the subset of the EmoDB copy at ``src`` to ``out`` (``wav/*.flac`` + ``perception_test.tsv``)."""
    import soundfile as sf
    import soxr

    src, out = Path(src), Path(out)
    ids = select(src, per_cell)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    for stem in ids:
        wave, rate = sf.read(src / "wav" / f"{stem}.wav", dtype="float64", always_2d=True)
        wave = soxr.resample(wave.mean(axis=1), rate, SAMPLE_RATE, quality="HQ")
        sf.write(out / "wav" / f"{stem}.flac", np.clip(wave, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    perception = _perception(src)
    with (out / "perception_test.tsv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["Nr.", "Satz", "erkannt", "natuerlich"])
        writer.writerows(perception[s][2] for s in ids if s in perception)
    return ids
