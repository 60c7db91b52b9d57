"""Downstream heads over a feature store, each knowing whether it is exact on ``pooled/mean``.

Every head takes frames ``x [B, T, L, D]`` (all stored layers) with a validity mask ``[B, T]``
(:meth:`forward_frames`). A head whose operations before the pooling are all affine
(``pooled_exact = True``) also takes the store's pooled features ``p [B, L, D]``
(:meth:`forward_pooled`) and gives the same outputs for the same weights: an affine map commutes
with a mean (see DESIGN.md, "Why pooled features matter"). A head with a non-linearity before the
pooling (EmoBox: layer norm, linear, ReLU, then pool) needs frames.

Heads that read one layer take ``layer`` = the *position* of that layer in the store's layer axis
(:func:`emostore.heads.names.layer_position` turns an encoder layer number into it). Their ``forward_frames`` also
accepts frames holding only that layer (``L = 1``): a frames source then reads 1/L of the bytes.
"""

from __future__ import annotations

import torch
from torch import nn

from emostore.heads.fused import norm_linear_relu
from emostore.heads.names import LAYERED, HeadError


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the time axis (dim 1) of ``x [B, T, ...]`` counting only frames where ``mask [B, T]``."""
    m = mask.to(x.dtype).reshape(mask.shape + (1,) * (x.dim() - 2))
    count = m.sum(dim=1).clamp_min(1.0)
    return (x * m).sum(dim=1) / count


class Head(nn.Module):
    """Base: ``forward_frames`` always, ``forward_pooled`` only where ``pooled_exact``."""

    name: str = ""
    pooled_exact: bool = False

    def forward_frames(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_pooled(self, p: torch.Tensor) -> torch.Tensor:
        raise HeadError(f"the {self.name} head is not exact on pooled features; it needs frames")


class WeightedSumHead(Head):
    """EMO-SUPERB / SUPERB: softmax layer weights (equal at start) -> Linear(D, 256) -> masked mean -> Linear."""

    name = "weighted-sum"
    pooled_exact = True

    def __init__(self, num_layers: int, dim: int, num_classes: int, hidden: int = 256):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.proj = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def layer_weights(self) -> torch.Tensor:
        """Softmax-normalised layer weights, layer axis order (layer 0 first), detached."""
        return torch.softmax(self.weights, dim=0).detach()

    def forward_frames(self, x, mask):
        h = torch.einsum("btld,l->btd", x, torch.softmax(self.weights, dim=0))
        return self.out(masked_mean(self.proj(h), mask))

    def forward_pooled(self, p):
        h = torch.einsum("bld,l->bd", p, torch.softmax(self.weights, dim=0))
        return self.out(self.proj(h))


class OneLayerHead(Head):
    """A head reading the one layer at position ``self.layer``."""

    layer: int = -1

    def pick(self, x: torch.Tensor) -> torch.Tensor:
        """Layer ``self.layer`` of ``x [B, T, L, D]``, or the only layer when the caller passed L = 1."""
        return x[:, :, 0] if x.shape[2] == 1 else x[:, :, self.layer]


class EmoBoxHead(OneLayerHead):
    """EmoBox: one layer -> LayerNorm -> Linear(D, hidden) -> ReLU -> masked mean -> Linear. Needs frames."""

    name = "emobox"
    pooled_exact = False

    def __init__(self, num_layers: int, dim: int, num_classes: int, layer: int = -1, hidden: int = 256):
        super().__init__()
        self.layer = layer
        self.norm = nn.LayerNorm(dim)
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward_frames(self, x, mask):
        f = self.pick(x)  # [B, T, D]; LayerNorm + Linear as one product (emostore.heads.fused)
        n, h = self.norm, self.hidden
        y = norm_linear_relu(f.reshape(1, -1, f.shape[-1]), n.weight[None], n.bias[None], h.weight[None],
                             h.bias[None], n.eps)
        return self.out(masked_mean(y.reshape(f.shape[:2] + (-1,)), mask))


class ARMLPHead(OneLayerHead):
    """All-inclusive-rule study: mean pool one layer -> 1024 ReLU dropout 0.5 -> 1024 ReLU dropout 0.5 -> Linear."""

    name = "ar-mlp"
    pooled_exact = True

    def __init__(self, num_layers: int, dim: int, num_classes: int, layer: int = -1, hidden: int = 1024,
                 dropout: float = 0.5):
        super().__init__()
        self.layer = layer
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward_frames(self, x, mask):
        return self.mlp(masked_mean(self.pick(x), mask))

    def forward_pooled(self, p):
        return self.mlp(p[:, self.layer])


class ProbeHead(OneLayerHead):
    """Linear probe on one layer's pooled features (layer-wise analysis)."""

    name = "probe"
    pooled_exact = True

    def __init__(self, num_layers: int, dim: int, num_classes: int, layer: int = -1):
        super().__init__()
        self.layer = layer
        self.out = nn.Linear(dim, num_classes)

    def forward_frames(self, x, mask):
        return self.out(masked_mean(self.pick(x), mask))

    def forward_pooled(self, p):
        return self.out(p[:, self.layer])


HEADS: dict[str, type[Head]] = {cls.name: cls for cls in (WeightedSumHead, EmoBoxHead, ARMLPHead, ProbeHead)}


def head_class(name: str) -> type[Head]:
    try:
        return HEADS[name]
    except KeyError:
        raise HeadError(f"unknown head {name!r}; known: {', '.join(HEADS)}") from None


def build_head(name: str, num_layers: int, dim: int, num_classes: int, *, layer: int | None = None,
               hidden: int | None = None) -> Head:
    """A head by registry name; ``layer`` is a position in the layer axis (heads that read one layer)."""
    cls = head_class(name)
    kwargs: dict = {}
    if name in LAYERED:
        pos = num_layers - 1 if layer is None else layer
        if not -num_layers <= pos < num_layers:
            raise HeadError(f"layer position {layer} out of range for {num_layers} stored layers")
        kwargs["layer"] = pos % num_layers
    elif layer is not None:
        raise HeadError(f"the {name} head uses every layer; --layer does not apply")
    if hidden is not None:
        if name == "probe":
            raise HeadError("the probe head has no hidden layer; --hidden does not apply")
        kwargs["hidden"] = hidden
    return cls(num_layers, dim, num_classes, **kwargs)
