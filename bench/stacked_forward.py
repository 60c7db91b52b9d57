"""Stacked heads on the CPU: batched matrix products (``torch.baddbmm``) vs ``torch.func.vmap``.

    nice -n 10 python bench/stacked_forward.py [--members 100] [--steps 200] [--threads 1]

One training step's forward and backward (no optimiser) of K heads on K different batches
[32, 384] (Whisper tiny.en's D): a probe (Linear(384, 7)) and an ar-mlp-sized MLP
(384 -> 256 -> 256 -> 7), three ways, same inputs:

* ``baddbmm``: weights stacked as [K, out, in], ``x wᵀ + b``; ``(w xᵀ)ᵀ``: the same product as
  ``(w xᵀ + b)ᵀ`` (what :mod:`emostore.heads.stacked` does);
* ``vmap``: ``torch.func.stack_module_state`` + ``vmap(functional_call)`` of the single module;
* ``loop``: the K single modules one after another (what one-at-a-time training does per step).

``--frames N``: instead, the EmoBox head's per-frame part (LayerNorm -> Linear(384, 256) -> ReLU) on
K members x N frames each, unfused (``F.layer_norm`` with the affine, then ``baddbmm``: autograd's
three products) against :func:`emostore.heads.fused.norm_linear_relu` (two), and their largest
gradient difference.

Prints milliseconds per step (median of ``--steps``) and the load average.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
from torch import nn


def make(kind: str) -> nn.Module:
    if kind == "probe":
        return nn.Linear(384, 7)
    return nn.Sequential(nn.Linear(384, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 7))


def stacked_forward(kind: str, params: dict, x: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """``transposed``: each product as ``(w xᵀ + b)ᵀ`` (what emostore.heads.shared.linear does)."""
    def lin(h, name):
        w, b = params[f"{name}.weight" if name else "weight"], params[f"{name}.bias" if name else "bias"]
        if transposed:
            return torch.baddbmm(b.unsqueeze(2), w, h.transpose(1, 2)).transpose(1, 2)
        return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))

    if kind == "probe":
        return lin(x, "")
    return lin(torch.relu(lin(torch.relu(lin(x, "0")), "2")), "4")


def median_ms(fn, steps: int) -> float:
    fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def frames_case(k: int, frames: int, steps: int) -> None:
    """Unfused vs fused LayerNorm + Linear + ReLU on [k, frames, 384] -> 256, forward + backward."""
    import torch.nn.functional as F

    from emostore.heads.fused import norm_linear_relu

    torch.manual_seed(0)
    d, h = 384, 256
    x = torch.randn(k, frames, d)
    gamma, beta = (1 + 0.1 * torch.randn(k, d)).requires_grad_(), (0.1 * torch.randn(k, d)).requires_grad_()
    w, b = (0.05 * torch.randn(k, h, d)).requires_grad_(), torch.zeros(k, h, requires_grad=True)
    probe = torch.randn(k, frames, h)

    def unfused():
        y = F.layer_norm(x, (d,)) * gamma.unsqueeze(1) + beta.unsqueeze(1)
        (torch.relu(torch.baddbmm(b.unsqueeze(1), y, w.transpose(1, 2))) * probe).sum().backward()

    def fused():
        (norm_linear_relu(x, gamma, beta, w, b) * probe).sum().backward()

    grads = []
    for fn in (unfused, fused):
        for p in (gamma, beta, w, b):
            p.grad = None
        fn()
        grads.append([p.grad.clone() for p in (gamma, beta, w, b)])
    diff = max(float((a - c).abs().max() / a.abs().max()) for a, c in zip(*grads))
    print(f"emobox per-frame part, K = {k} x {frames} frames x {d} -> {h}: "
          f"unfused {median_ms(unfused, steps):7.1f} ms   fused {median_ms(fused, steps):7.1f} ms   "
          f"(largest relative gradient difference {diff:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=0, help="frames per member: the fused-vs-unfused frame case")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.frames:
        print(f"torch {torch.__version__}, {args.threads} thread(s), load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        frames_case(args.members, args.frames, args.steps)
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return
    from torch.func import functional_call, stack_module_state, vmap

    k = args.members
    print(f"K = {k} members, batch 32 x 384, torch {torch.__version__}, {args.threads} thread(s), "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for kind in ("probe", "mlp"):
        torch.manual_seed(0)
        heads = [make(kind) for _ in range(k)]
        x = torch.randn(k, 32, 384)
        params, buffers = stack_module_state(heads)
        stacked = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        base = copy.deepcopy(heads[0]).to("meta")

        def by_bmm():
            stacked_forward(kind, stacked, x).logsumexp(-1).sum().backward()

        def by_bmm_t():
            stacked_forward(kind, stacked, x, transposed=True).logsumexp(-1).sum().backward()

        def by_vmap():
            out = vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))(params, buffers, x)
            out.logsumexp(-1).sum().backward()

        def by_loop():
            for h, xi in zip(heads, x):
                h(xi).logsumexp(-1).sum().backward()

        with torch.no_grad():
            same = torch.allclose(stacked_forward(kind, stacked, x),
                                  vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))(params, buffers, x),
                                  atol=1e-5)
        print(f"{kind:<6} baddbmm {median_ms(by_bmm, args.steps):7.2f} ms   (w x^T)^T {median_ms(by_bmm_t, args.steps):7.2f} ms"
              f"   vmap {median_ms(by_vmap, args.steps):7.2f} ms"
              f"   loop {median_ms(by_loop, args.steps):7.2f} ms   (same outputs: {same})")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
