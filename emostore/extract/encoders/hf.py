"""Any transformers audio encoder from a local directory (``--encoder hf:PATH``).

wav2vec2 / wav2vec2-robust / XLS-R, HuBERT, WavLM, data2vec-audio and Whisper. Models whose
convolutional front end uses layer norm accept an attention mask, so padded batches are exact
(``mask``); group-norm models (wav2vec2-base, HuBERT-base) normalise over time, padding would
change every frame, so they are only batched with clips of identical length (``same-length``).
data2vec-audio's positional embedding is a stack of convolutions and transformers zeroes padded
frames only before the first one, so padding would leak into valid frames: emostore re-zeroes the
padded frames after every positional conv layer (forward hooks), which makes its padded batches
exact again (``mask``); without those modules it falls back to ``same-length``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from emostore.extract.encoders.base import Encoder, EncoderError, Usage, register
from emostore.provenance import files_sha256
from emostore.extract.encoders.whisper import WhisperWindowEncoder, _load_hf_whisper_encoder

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _weight_files(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()]


def _describe(enc: Encoder, path: Path) -> dict:
    cfg = enc.model_config
    return {"backend": "hf", "name": enc.name, "weights": str(path),
            "weights_sha256": files_sha256(_weight_files(path)),
            "config": {"model_type": cfg.model_type, "hidden_size": enc.dim,
                       "num_layers": enc.num_layers, "padding": enc.padding}}


class HFWhisperEncoder(WhisperWindowEncoder):
    backend = "hf"

    def __init__(self, path: Path, device: torch.device):
        encoder, fe = _load_hf_whisper_encoder(path)
        self._setup(encoder, device, fe)
        self.path, self.model_config, self.name = path, encoder.config, f"hf:{path.name}"

    def describe(self) -> dict:
        return _describe(self, self.path)


class HFMaskedEncoder(Encoder):
    """wav2vec2-family encoders: zero-padded batch + attention mask (or same-length batches)."""

    backend = "hf"

    def __init__(self, path: Path, device: torch.device, config):
        from transformers import AutoModel

        self.path, self.model_config, self.device = path, config, device
        # float32 whatever the checkpoint's dtype: inputs are float32 (transformers 5 loads dtype="auto").
        self.model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32).to(device).eval()
        self.name = f"hf:{path.name}"
        self.num_layers = config.num_hidden_layers + 1
        self.dim = config.hidden_size
        self.frame_rate = 16000 / float(np.prod(config.conv_stride))
        uses_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        self._frame_mask: torch.Tensor | None = None
        if config.model_type == "data2vec-audio":
            uses_mask = self._mask_between_pos_convs()
        self.padding = "mask" if uses_mask else "same-length"
        pre = path / "preprocessor_config.json"
        self._normalise = "none"
        if pre.exists() and json.loads(pre.read_text()).get("do_normalize"):
            self._normalise = "utterance"

    def _mask_between_pos_convs(self) -> bool:
        """Zero padded frames after each positional conv layer, as an unpadded clip would see."""
        layers = getattr(getattr(getattr(self.model, "encoder", None), "pos_conv_embed", None), "layers", None)
        if layers is None:
            return False

        def zero_padding(module, inputs, output):  # output [B, C, T]
            m = self._frame_mask
            return output if m is None else output * m[:, None, : output.shape[-1]].to(output.dtype)

        for layer in layers:
            layer.register_forward_hook(zero_padding)
        return True

    def default_normalise(self) -> str:
        return self._normalise

    def num_frames(self, num_samples: int) -> int:
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(num_samples)))

    @torch.inference_mode()
    def encode(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        lengths = [len(w) for w in waves]
        if self.padding != "mask" and len(set(lengths)) > 1:
            raise EncoderError(f"{self.name} has no attention mask; batch clips of one length only")
        batch = torch.zeros(len(waves), max(lengths))
        mask = torch.zeros(len(waves), max(lengths), dtype=torch.long)
        for i, w in enumerate(waves):
            batch[i, : len(w)] = torch.from_numpy(w)
            mask[i, : len(w)] = 1
        kwargs = {"attention_mask": mask.to(self.device)} if self.padding == "mask" else {}
        frames = [self.num_frames(n) for n in lengths]
        self._frame_mask = (torch.arange(max(frames))[None, :] < torch.tensor(frames)[:, None]).to(self.device)
        try:
            out = self.model(batch.to(self.device), output_hidden_states=True, **kwargs)
        finally:
            self._frame_mask = None
        hidden = torch.stack(out.hidden_states, dim=2)  # [B, T, L, D]
        return [hidden[i, :t].float() for i, t in enumerate(frames)]

    def describe(self) -> dict:
        return _describe(self, self.path)


@register("hf", Usage("hf:DIR", "DIR, a local transformers model directory (config.json + weights; never "
                             "downloaded): wav2vec2 / XLS-R, HuBERT, WavLM, data2vec-audio, Whisper",
                      "hf:/models/wavlm-base-plus"))
def load_hf(path: str | None, device: torch.device) -> Encoder:
    from transformers import AutoConfig

    if not path:
        raise EncoderError("the hf encoder needs a local model directory: --encoder hf:PATH")
    p = Path(path).expanduser()
    if not (p / "config.json").exists():
        raise EncoderError(f"{p}: no config.json (not a transformers model directory)")
    config = AutoConfig.from_pretrained(p, local_files_only=True)
    if config.model_type == "whisper":
        return HFWhisperEncoder(p, device)
    if not hasattr(config, "conv_stride"):
        raise EncoderError(f"{p}: model type {config.model_type!r} is not a supported audio encoder")
    return HFMaskedEncoder(p, device, config)
