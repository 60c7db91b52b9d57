"""The heads' registry names and what each reads, without torch.

The CLI's ``--head`` choice, a sweep's expansion, grouping and preflight and the settings check
read these, so parsing ``emostore train`` / ``sweep`` options, and a multi-process sweep's parent,
import no torch; :mod:`emostore.heads.heads` maps each
name to its class (tests/test_sweep_cli.py holds the two to the same names).
"""

from __future__ import annotations

from emostore.errors import EmostoreError

HEAD_NAMES = ("weighted-sum", "emobox", "ar-mlp", "probe")
LAYERED = ("emobox", "ar-mlp", "probe")  # heads reading one chosen layer (the others read every layer)
# heads exact on pooled features (affine before the pooling; each class's ``pooled_exact``, held equal
# by tests/test_sweep_cli.py); the others read frames
POOLED_EXACT = ("weighted-sum", "ar-mlp", "probe")
FRAME_HEADS = tuple(h for h in HEAD_NAMES if h not in POOLED_EXACT)


class HeadError(EmostoreError, ValueError):
    """A head was asked for with impossible settings."""


def layer_position(layers: list[int], layer: int | None) -> int:
    """Position in the store's layer axis of encoder layer ``layer`` (None or -1 = the last stored)."""
    if layer is None or layer == -1:
        return len(layers) - 1
    if layer in layers:
        return layers.index(layer)
    raise HeadError(f"layer {layer} is not in the store (stored layers: {layers})")
