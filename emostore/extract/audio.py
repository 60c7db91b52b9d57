"""Decode, check and normalise one utterance's audio.

Every problem with a file becomes an ``AudioError`` whose message names the file, so the runner
can record it in the store's ``errors`` and go on with the rest of the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emostore.errors import EmostoreError

NORMALISATIONS = ("none", "utterance", "dataset")


class AudioError(EmostoreError, ValueError):
    """One utterance's audio cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class AudioPolicy:
    """How raw files become encoder input; recorded verbatim in the store's attrs.

    ``normalise``: ``none``; ``utterance`` (zero mean, unit variance per clip, as wav2vec2-style
    models expect); ``dataset`` (subtract ``mean`` and divide by ``std`` computed over the training
    set, EMO-SUPERB's choice). ``allow_upsample``: a file recorded below the encoder's rate carries
    no energy above its Nyquist band, so by default it is refused rather than silently upsampled.
    """

    sample_rate: int = 16000
    normalise: str = "none"
    mean: float = 0.0
    std: float = 1.0
    min_seconds: float = 0.05
    allow_upsample: bool = False

    def __post_init__(self):
        if self.normalise not in NORMALISATIONS:
            raise AudioError(f"normalise must be one of {', '.join(NORMALISATIONS)}, not {self.normalise!r}")
        if self.normalise == "dataset" and not self.std > 0:
            raise AudioError(f"dataset normalisation needs std > 0, got {self.std}")

    def as_attrs(self) -> dict:
        return dict(
            sample_rate=self.sample_rate,
            normalise=self.normalise,
            mean=self.mean,
            std=self.std,
            min_seconds=self.min_seconds,
            allow_upsample=self.allow_upsample,
            resampler="soxr HQ",
            downmix="mean of channels",
        )


def probe(path: str) -> tuple[int, int]:
    """(frames, sample rate) from the header, without decoding; raises AudioError."""
    if "://" not in path and not Path(path).exists():
        raise AudioError(f"{path}: file not found")
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise AudioError(f"{path}: unreadable audio ({exc})") from None
    return int(info.frames), int(info.samplerate)


def decode(path: str) -> tuple[np.ndarray, int]:
    """Raw float32 samples [frames, channels] and the file's rate."""
    if "://" not in path and not Path(path).exists():
        raise AudioError(f"{path}: file not found")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio ({exc})") from None
    return data, int(rate)


def load(path: str, policy: AudioPolicy) -> np.ndarray:
    """Mono float32 waveform at ``policy.sample_rate``, checked and normalised."""
    data, rate = decode(path)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if rate < policy.sample_rate and not policy.allow_upsample:
        raise AudioError(
            f"{path}: sample rate {rate} Hz is below the encoder's {policy.sample_rate} Hz "
            f"({data.shape[1]} channel(s)); upsampling cannot restore the missing band "
            "(pass --allow-upsample to accept it)"
        )
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != policy.sample_rate:
        wave = soxr.resample(wave, rate, policy.sample_rate, quality="HQ")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if wave.shape[0] < policy.min_seconds * policy.sample_rate:
        raise AudioError(
            f"{path}: too short ({wave.shape[0] / policy.sample_rate:.3f} s < {policy.min_seconds} s)"
        )
    return normalise(wave, policy)


def normalise(wave: np.ndarray, policy: AudioPolicy) -> np.ndarray:
    if policy.normalise == "utterance":
        std = float(wave.std())
        return ((wave - wave.mean()) / (std if std > 1e-7 else 1.0)).astype(np.float32)
    if policy.normalise == "dataset":
        return ((wave - policy.mean) / policy.std).astype(np.float32)
    return wave


def dataset_stats(paths: list[str], policy: AudioPolicy) -> tuple[float, float]:
    """Mean and std of all samples of ``paths`` (the training set), at the encoder's rate.

    Files that fail to load are skipped here; extraction reports them.
    """
    raw = AudioPolicy(**{**policy.__dict__, "normalise": "none"})
    n, s, ss = 0, 0.0, 0.0
    for p in paths:
        try:
            w = load(p, raw).astype(np.float64)
        except AudioError:
            continue
        n += w.size
        s += float(w.sum())
        ss += float((w * w).sum())
    if n == 0:
        raise AudioError("dataset normalisation: none of the training files could be read")
    mean = s / n
    return mean, max(ss / n - mean * mean, 0.0) ** 0.5
