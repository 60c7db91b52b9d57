"""Encoder backends, one registry: ``fbank``, ``hf:PATH``, ``ct2-whisper[:PATH]``, ``s3prl:NAME[:CKPT]``."""

from emostore.extract.encoders import fbank, hf, s3prl_upstream, whisper  # noqa: F401  (register backends)
from emostore.extract.encoders.base import (
    PADDING_KINDS,
    Encoder,
    EncoderError,
    available,
    load_encoder,
)

DEFAULT_ENCODER = "ct2-whisper"

__all__ = ["DEFAULT_ENCODER", "PADDING_KINDS", "Encoder", "EncoderError", "available", "load_encoder"]
