"""EMO-SUPERB's FBANK baseline: Kaldi-compatible 80-dim log-mel filterbank as a one-layer encoder."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from emostore.extract.encoders.base import Encoder, EncoderError, Usage, register

FBANK_OPTIONS = dict(
    num_mel_bins=80,
    frame_length=25.0,
    frame_shift=10.0,
    dither=0.0,
    window_type="povey",
    use_energy=False,
    snip_edges=True,
)


@register("fbank", Usage("fbank", "nothing after the name: Kaldi-compatible 80-dim log-mel filterbank "
                                    "(torchaudio), EMO-SUPERB's FBANK baseline", "fbank"))
class FbankEncoder(Encoder):
    """Computed per utterance on int16-scaled samples, as Kaldi does; dither 0 keeps it deterministic."""

    padding = "per-utterance"

    def __init__(self, path: str | None, device: torch.device):
        if path:
            raise EncoderError("the fbank encoder takes no path (use --encoder fbank)")
        self.name = "fbank"
        self.device = device
        self.frame_rate = 100.0
        self.num_layers = 1
        self.dim = FBANK_OPTIONS["num_mel_bins"]

    def num_frames(self, num_samples: int) -> int:
        # snip_edges: 1 + (N - 400) // 160 frames, none below one window.
        win, hop = 400, 160
        return 0 if num_samples < win else 1 + (num_samples - win) // hop

    def encode(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        out = []
        for w in waves:
            x = torch.from_numpy(w).to(self.device).unsqueeze(0) * 32768.0
            feats = kaldi.fbank(x, sample_frequency=self.sample_rate, **FBANK_OPTIONS)
            out.append(feats.unsqueeze(1))  # [T, 1, 80]
        return out

    def describe(self) -> dict:
        return {"backend": self.backend, "name": self.name, "weights": None, "weights_sha256": None,
                "config": {**FBANK_OPTIONS, "input_scale": 32768.0}}
