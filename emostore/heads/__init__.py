"""Downstream heads and their training from a feature store (no encoder runs here)."""

from emostore.heads.heads import (  # noqa: F401
    HEADS, ARMLPHead, EmoBoxHead, Head, HeadError, ProbeHead, WeightedSumHead, build_head, head_class,
    layer_position, masked_mean,
)
