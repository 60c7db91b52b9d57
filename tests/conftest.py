"""Shared fixtures: real EmoDB clips from ../shared/data and manifests built from them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "data" / "emodb" / "wav"


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    if not EMODB.is_dir():
        pytest.fail(f"real test data missing: {EMODB} (see shared/data/SOURCES.md)")
    return EMODB


@pytest.fixture(scope="session")
def shortest_clips(emodb_dir) -> list[Path]:
    """The 12 shortest EmoDB clips (fast to encode, still real speech)."""
    clips = sorted(emodb_dir.glob("*.wav"), key=lambda p: (sf.info(p).frames, p.name))
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
    subprocess.run([exe, "-v", "en-us", "-s", "140", "-w", str(out), text], check=True)
    return out, text


def write_wav(path: Path, wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, wave, rate, subtype=subtype)
    return path
