"""LayerNorm's affine folded into the Linear after it: two matrix products per step instead of three.

The EmoBox head computes ``ReLU(Linear(LayerNorm(x)))`` on every frame, and on the CPU that product is
what a frame run costs. Written out, with ``x̂`` the normalised frames (no parameters),

    y = (x̂ ⊙ γ + β) Wᵀ + b = x̂ (W ⊙ γ)ᵀ + (W β + b)

so the forward is one product of ``x̂`` with ``W ⊙ γ``. Autograd on the unfused form computes
three products per step (the forward, ``∂y/∂W``, and ``∂y/∂(x̂ ⊙ γ + β)`` to reach ``γ`` and
``β``); :class:`AffineLinearReLU` gets every gradient from one: with ``g = ∂L/∂y`` (after the ReLU's mask) and
``G = gᵀ x̂`` (``[H, D]``), ``s = Σₙ gₙ``,

    ∂L/∂W = G ⊙ γ + s βᵀ,   ∂L/∂γ = Σₕ W ⊙ G,   ∂L/∂β = sᵀ W,   ∂L/∂b = s.

The gradients are the unfused form's exactly in real arithmetic (tests/test_fused.py: agreement
with autograd on ``nn.LayerNorm`` + ``nn.Linear`` to float rounding); the parameters stay
LayerNorm's and Linear's, so state dicts and AdamW's updates are unchanged. Measured
(bench/stacked_forward.py --members 8 --frames 4500): forward + backward of 8 members x 4,500 frames x 384 -> 256,
one thread, load ~1: 487-501 ms unfused, 266-300 ms fused; fusing the ReLU (an in-place pass and its
mask in the backward) took 222 to 211 ms in interleaved runs of the two. ``x̂`` is taken as a constant (frames need no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class AffineLinearReLU(torch.autograd.Function):
    """``[K, N, D]`` normalised frames -> ``[K, N, H]``: K members' LayerNorm affine + Linear + ReLU."""

    @staticmethod
    def forward(ctx, xh, gamma, beta, weight, bias):
        folded_bias = torch.baddbmm(bias.unsqueeze(2), weight, beta.unsqueeze(2)).squeeze(2)
        # bmm, then the bias in place: baddbmm with a bias broadcast over the frames took twice the time
        y = torch.bmm(xh, (weight * gamma.unsqueeze(1)).transpose(1, 2)).add_(folded_bias.unsqueeze(1)).relu_()
        ctx.save_for_backward(xh, gamma, beta, weight, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        xh, gamma, beta, weight, y = ctx.saved_tensors
        gy = torch.ops.aten.threshold_backward(gy, y, 0)  # the ReLU: no gradient where the output is 0
        G = torch.bmm(gy.transpose(1, 2), xh)  # [K, H, D]
        s = gy.sum(1)  # [K, H]
        g_weight = torch.addcmul(G * gamma.unsqueeze(1), s.unsqueeze(2), beta.unsqueeze(1))
        g_gamma = (weight * G).sum(1)
        g_beta = torch.bmm(s.unsqueeze(1), weight).squeeze(1)
        return None, g_gamma, g_beta, g_weight, s


def normalise(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm without its affine (``x̂``), row by row: the same values for a frame whatever else is in
    the tensor, so a clip's ``x̂`` can be computed once and reused (:mod:`emostore.heads.group`)."""
    return F.layer_norm(x.detach(), (x.shape[-1],), eps=eps)


def norm_linear_relu(x: torch.Tensor, gamma, beta, weight, bias, eps: float = 1e-5, normalised: bool = False):
    """``ReLU(Linear(LayerNorm(x)))`` per member: ``x [K, N, D]``, ``gamma``/``beta [K, D]``,
    ``weight [K, H, D]``, ``bias [K, H]`` -> ``[K, N, H]`` (``x`` itself gets no gradient);
    ``normalised``: ``x`` is already :func:`normalise`'s output."""
    return AffineLinearReLU.apply(x if normalised else normalise(x, eps), gamma, beta, weight, bias)
