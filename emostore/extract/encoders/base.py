"""The encoder interface and its registry (``--encoder NAME[:PATH]``).

An encoder turns a batch of mono 16 kHz waveforms into every layer's hidden states. Its
``padding`` says why batching is exact for it, and the store records that:

- ``mask``: padded batch with an attention mask; valid frames equal unbatched ones (float tolerance).
- ``window``: every input is padded to a fixed window anyway (Whisper's 30 s), so a batch is
  just several independent windows.
- ``per-utterance``: computed one clip at a time (no cross-frame interaction to pad).
- ``same-length``: no usable mask (e.g. group-norm wav2vec2/HuBERT base), so the runner only
  batches clips of identical length and runs the rest one at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch

from emostore.errors import EmostoreError

PADDING_KINDS = ("mask", "window", "per-utterance", "same-length")


class EncoderError(EmostoreError, ValueError):
    """The encoder spec or its weights are unusable."""


class Encoder(ABC):
    """Frozen feature encoder yielding all hidden states, layer 0 = embedding output."""

    backend: ClassVar[str]
    padding: ClassVar[str]
    sample_rate: int = 16000

    name: str
    frame_rate: float
    num_layers: int
    dim: int
    device: torch.device

    @abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """Frames this encoder yields for a clip of ``num_samples`` (for planning and checks)."""

    def cost_seconds(self, num_samples: int) -> float:
        """Compute cost of one clip in audio seconds, used to fill batches."""
        return num_samples / self.sample_rate

    @abstractmethod
    def encode(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Hidden states per clip, each [T_i, L, D] float32 on ``self.device``.

        A clip the encoder cannot take raises :class:`emostore.extract.audio.AudioError` (that row's
        error; the rest of the batch is retried clip by clip); any other exception is a bug and
        stops extraction with its traceback."""

    def default_normalise(self) -> str:
        """Waveform normalisation the model was trained with."""
        return "none"

    @abstractmethod
    def describe(self) -> dict:
        """What the store records: backend, name, weights path and sha256, config."""


_REGISTRY: dict[str, Callable[..., Encoder]] = {}


@dataclass(frozen=True)
class Usage:
    """What ``--encoder`` takes for one backend: the spec's form, what its part after ``:`` means,
    and an example (``emostore encoders`` prints these)."""

    form: str  # e.g. "hf:DIR"
    takes: str
    example: str


_USAGE: dict[str, Usage] = {}


def register(backend: str, usage: Usage):
    """Decorator: make an encoder (class or factory) reachable as ``--encoder BACKEND[:PATH]``."""

    def deco(cls):
        cls.backend = backend
        _REGISTRY[backend] = cls
        _USAGE[backend] = usage
        return cls

    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def usage(backend: str) -> Usage:
    """How ``--encoder`` spells ``backend`` and what it takes."""
    return _USAGE[backend]


def parse_spec(spec: str) -> tuple[str, str | None]:
    backend, _, path = spec.partition(":")
    return backend.strip(), (path.strip() or None)


def load_encoder(spec: str, device: str = "cpu") -> Encoder:
    """Build the encoder named by ``NAME[:PATH]`` on ``device``."""
    backend, path = parse_spec(spec)
    if backend not in _REGISTRY:
        raise EncoderError(f"unknown encoder {backend!r}; available: {', '.join(available())}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise EncoderError(f"bad --device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EncoderError(f"--device {device} asked for CUDA, but torch sees no GPU here")
    return _REGISTRY[backend](path, dev)
