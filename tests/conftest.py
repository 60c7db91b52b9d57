"""Shared fixtures: real EmoDB clips and manifests built from them, from any clone.

Real data is found through one setting, ``EMOSTORE_TEST_DATA`` (default ``../shared/data`` beside
the repository; the layout of ``shared/data/SOURCES.md``). Tests that need only *some* EmoDB clips
use the full corpus there when it exists and otherwise the subset bundled in the package
(``emostore/recipe/data/emodb16k``: 135 clips, 16 kHz FLAC); tests that need data a clone cannot
have call :func:`need_data`, which skips with one line naming the data and where it comes from —
and fails instead under ``CI=true``, where every data test must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostore.recipe.demo_data import bundled_root

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("EMOSTORE_TEST_DATA") or REPO.parent / "shared" / "data").expanduser().resolve()
FULL_EMODB = TEST_DATA / "emodb" / "wav"
#: EmoDB clips the EmoDB-only tests read: the full corpus when present, else the bundled subset.
EMODB_IS_FULL = FULL_EMODB.is_dir()
EMODB = FULL_EMODB if EMODB_IS_FULL else bundled_root() / "wav"
EMODB_SUFFIX = ".wav" if EMODB_IS_FULL else ".flac"
CREMA = TEST_DATA / "crema-d"
RAVDESS = TEST_DATA / "ravdess"
EMO_SUPERB_CHATGPT = TEST_DATA / "emo-superb-chatgpt"
#: where each corpus a test may need comes from (the data folder's SOURCES.md has the details)
EMODB_SOURCE = ("EmoDB, Burkhardt et al. 2005: wav/ + perception_test.tsv, e.g. from github.com/"
                "sylaschacko/voice-emotion-analysis")
CREMA_SOURCE = "CREMA-D's rating tables (tabulatedVotes.csv, ...) from github.com/CheyneyComputerScience/CREMA-D"
RAVDESS_SOURCE = "RAVDESS (Livingstone & Russo 2018, zenodo.org/record/1188976), Actor_*/ of 16 kHz FLAC"
EMO_SUPERB_CHATGPT_SOURCE = ("EMO-SUPERB's GPT-4 relabeling (input_train.csv, output_train.csv, Prompt.txt) "
                             "from github.com/ag027592/EMO-SUPERB")


#: marks a test that reads RAVDESS: it skips without it (fails under CI=true), see ``ravdess_dir``
needs_ravdess = pytest.mark.usefixtures("ravdess_dir")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def need_data(path: Path, what: str) -> Path:
    """``path`` if it exists; else skip with one line (``what``, where it comes from, where it was
    looked for), or fail under ``CI=true``."""
    if path.exists():
        return path
    line = f"needs {what}: not at {path} (point EMOSTORE_TEST_DATA at a folder that has it)"
    if in_ci():
        pytest.fail(f"CI=true runs every data test: {line}", pytrace=False)
    pytest.skip(line)


def need_full_emodb() -> Path:
    """The full 535-clip EmoDB ``wav/`` folder (tests whose assertions are the corpus's own counts)."""
    return need_data(FULL_EMODB, f"all 535 clips of {EMODB_SOURCE}")


def emodb_clips(pattern: str = "*") -> list[Path]:
    """EmoDB clips whose stem matches ``pattern``, sorted (``.wav`` in the corpus, ``.flac`` bundled)."""
    return sorted(EMODB.glob(pattern + EMODB_SUFFIX))


def _package_files() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file of the package (bytecode caches aside)."""
    pkg = REPO / "emostore"
    return {str(p.relative_to(pkg)): (p.stat().st_size, p.stat().st_mtime_ns) for p in pkg.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="session", autouse=True)
def package_folder_untouched():
    """The suite writes only to temporary folders: the package (and its bundled data) stays as it was."""
    before = _package_files()
    yield
    after = _package_files()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into the package folder: {', '.join(changed[:10])}"


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    """An EmoDB ``wav/`` folder: the full corpus if present, else the bundled 135-clip subset."""
    return EMODB


@pytest.fixture(scope="session")
def full_emodb_dir() -> Path:
    return need_full_emodb()


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    """RAVDESS's 1,440 clips (never bundled: CC BY-NC-SA)."""
    return need_data(RAVDESS, RAVDESS_SOURCE)


@pytest.fixture(scope="session")
def emo_superb_chatgpt_dir() -> Path:
    return need_data(EMO_SUPERB_CHATGPT, EMO_SUPERB_CHATGPT_SOURCE)


@pytest.fixture(scope="session")
def shortest_clips(emodb_dir) -> list[Path]:
    """The 12 shortest EmoDB clips (fast to encode, still real speech)."""
    clips = sorted(emodb_clips(), key=lambda p: (sf.info(p).frames, p.name))
    return clips[:12]


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def small_manifest(tmp_path, shortest_clips) -> Path:
    """JSONL manifest over 8 real clips, audio given relative to the manifest's folder."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = []
    for clip in shortest_clips[:8]:
        shutil.copy(clip, audio / clip.name)
        rows.append({"id": clip.stem, "audio": f"audio/{clip.name}", "speaker": clip.stem[:2]})
    return write_manifest(tmp_path / "manifest.jsonl", rows)


@pytest.fixture(scope="session")
def spoken_sentence(tmp_path_factory) -> tuple[Path, str]:
    """A sentence spoken by espeak-ng (a real synthesiser, no network)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is required for the Whisper decoding test (apt-get install espeak-ng)")
    text = "Please call me tomorrow morning about the meeting with my family"
    out = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "140", "-w", str(out), text], check=True, timeout=60)
    return out, text


def write_wav(path: Path, wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, wave, rate, subtype=subtype)
    return path


FOLD_EMOTIONS = {"W": "anger", "N": "neutral", "T": "sadness"}
FOLD_SPEAKERS = {"train": ("03", "08", "09"), "dev": ("11",), "test": ("12",)}


def emodb_fold_rows(per_train: int = 2) -> tuple[list[dict], dict[str, list[str]]]:
    """Manifest rows of real EmoDB clips (3 emotions) and a speaker-disjoint fold over them.

    ``per_train`` clips per (train speaker, emotion), one per (dev/test speaker, emotion).
    """
    clips = []
    for spk in sum(FOLD_SPEAKERS.values(), ()):
        mine = [p for p in emodb_clips(f"{spk}*") if p.stem[5] in FOLD_EMOTIONS]
        per = per_train if spk in FOLD_SPEAKERS["train"] else 1
        clips += [q for e in FOLD_EMOTIONS for q in [q for q in mine if q.stem[5] == e][:per]]
    rows = [{"id": p.stem, "audio": str(p), "speaker": p.stem[:2], "emotion": FOLD_EMOTIONS[p.stem[5]]}
            for p in clips]
    fold = {p: [r["id"] for r in rows if r["speaker"] in FOLD_SPEAKERS[p]] for p in ("train", "dev", "test")}
    return rows, fold


@pytest.fixture(scope="session")
def fbank_fold(tmp_path_factory) -> dict:
    """A real fbank store (float32 frames, blocks of 8 rows: several blocks) over 33 EmoDB clips
    (24 from the bundled subset), an MR label set and a speaker-disjoint fold f1 (27 or 18 train,
    3 dev, 3 test)."""
    from emostore.extract.planning import ExtractOptions
    from emostore.extract.runner import extract
    from emostore.labels.aggregate import aggregate_manifest, write_label_set
    from emostore.manifests import load_manifest

    tmp = tmp_path_factory.mktemp("fbank_fold")
    rows, fold = emodb_fold_rows(per_train=3)
    mpath = write_manifest(tmp / "m.jsonl", rows)
    extract(load_manifest(mpath), str(tmp / "s.zarr"),
            ExtractOptions(encoder="fbank", frames_dtype="float32", block_rows=8))
    labels = {}
    for rule in ("mr", "pr", "ar"):
        records, meta = aggregate_manifest(mpath, rule)
        labels[rule] = str(write_label_set(tmp / f"{rule}.jsonl", records, meta))
    (tmp / "part.json").write_text(json.dumps({"f1": fold}))
    return {"tmp": tmp, "store": str(tmp / "s.zarr"), "labels": labels["mr"], "label_sets": labels,
            "part": str(tmp / "part.json"), "fold": fold, "rows": rows, "manifest": str(mpath)}
