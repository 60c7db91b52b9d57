"""K heads of one kind as one module: every parameter stacked on a leading member axis, and AdamW per member.

A :class:`StackedHead` is built from K ordinary heads (each made by :func:`~emostore.heads.heads.build_head`
under its own seed, so its initialisation is a single run's), keeps their parameters as tensors
``[K, ...]`` named as in the heads' ``state_dict`` and runs all K forward with batched matrix
products (``torch.baddbmm``). Members may differ in hidden size: each parameter is zero-padded to
the largest member's shape. Padding is exact: a padded hidden unit has zero weights in and out, so
its activation, its gradient and (AdamW on a zero parameter with a zero gradient) its update are
zero, and :meth:`StackedHead.state_dict` cuts each member back to its own shapes.

The forward is split at the head's pooling (``pre``: what a head does per frame, ``post``: what it
does on the pooled vector), so one definition serves pooled features (``post(pre(p))``: the
operations before the pooling are affine for the pooled-exact heads) and frames
(``post(mean(pre(x)))``), in the order the single heads compute them.

Measured with bench/stacked_forward.py (K = 100 members, batch 32 x 384, forward + backward of one
step, 1 thread, 2 CPU cores at load average ~20, median wall ms): probe ``baddbmm`` 43, ``torch.func``
``vmap(functional_call)`` 55, a loop over the single modules 339; a 384-256-256-7 MLP 1197, 1106 and
1909. ``vmap`` lowers to the same batched products and is no faster; ``baddbmm`` on plain stacked
tensors also keeps each member's state dict a slice, so that is what this module uses.

:class:`StackedAdamW` is torch's fused AdamW kernel run on the stacked tensors with a learning
rate, weight decay, step count and warm-up per member; a member that does not step (its epoch has
fewer batches, it has stopped) is left untouched. It does not go through ``torch.optim`` (whose
``step`` imports ``torch._dynamo``).
"""

from __future__ import annotations

import numpy as np
import torch

from emostore.heads.fused import norm_linear_relu
from emostore.heads.heads import LAYERED, ARMLPHead, Head, HeadError
from emostore.heads.shared import Sharing, linear, shared_linear


class StackedHead:
    """K heads of kind ``name`` stacked; ``params`` maps state-dict names to ``[K, ...]`` leaf tensors."""

    def __init__(self, heads: list[Head], device: str = "cpu"):
        if not heads or len({h.name for h in heads}) != 1:
            raise HeadError("a stacked head needs one or more heads of one kind")
        self.name = heads[0].name
        states = [{k: v.detach() for k, v in h.state_dict().items()} for h in heads]
        self.shapes = [{k: tuple(v.shape) for k, v in s.items()} for s in states]
        self.params = {}
        for key in states[0]:
            size = tuple(max(dims) for dims in zip(*(s[key] for s in self.shapes)))
            stacked = torch.zeros((len(heads),) + size, dtype=states[0][key].dtype)
            for k, s in enumerate(states):
                stacked[(k,) + tuple(slice(0, d) for d in s[key].shape)] = s[key]
            self.params[key] = stacked.to(device).requires_grad_()
        self.layers = [getattr(h, "layer", None) for h in heads]
        self.dropout = [h.mlp[2].p if isinstance(h, ARMLPHead) else 0.0 for h in heads]
        self.hidden = [self._hidden_size(s) for s in self.shapes]

    def _hidden_size(self, shapes: dict) -> int | None:
        for key in ("mlp.0.weight", "hidden.weight", "proj.weight"):
            if key in shapes:
                return shapes[key][0]
        return None

    def __len__(self) -> int:
        return len(self.shapes)

    def keep(self, idx: list[int]) -> None:
        """Keep only the members at positions ``idx`` (a stopped member leaves the stack)."""
        sel = torch.as_tensor(idx, dtype=torch.long, device=next(iter(self.params.values())).device)
        self.params = {k: p.detach().index_select(0, sel).requires_grad_() for k, p in self.params.items()}
        for attr in ("shapes", "layers", "dropout", "hidden"):
            setattr(self, attr, [getattr(self, attr)[i] for i in idx])

    def state_dict(self, k: int, params: dict | None = None) -> dict:
        """Member ``k``'s state dict in its own shapes (from ``params``, default the live ones), on the CPU."""
        params = self.params if params is None else params
        return {key: p[k][tuple(slice(0, d) for d in self.shapes[k][key])].detach().cpu().clone()
                for key, p in params.items()}

    def layer_weights(self, k: int) -> list[float] | None:
        """Member ``k``'s softmax layer weights (weighted-sum), else None."""
        if self.name != "weighted-sum":
            return None
        return torch.softmax(self.params["weights"][k].detach(), dim=0).cpu().tolist()

    # -- forward ------------------------------------------------------------------------------

    @property
    def normalises(self) -> bool:
        """Whether :meth:`pre` starts with a parameter-free LayerNorm (``normalised`` inputs can skip it)."""
        return self.name == "emobox"

    def pre(self, x: torch.Tensor, normalised: bool = False) -> torch.Tensor:
        """The per-frame part: ``x [K, N, L, D]`` (weighted-sum) or ``[K, N, D]`` (one-layer heads);
        ``normalised``: ``x`` is already LayerNorm'ed without affine (:func:`emostore.heads.fused.normalise`)."""
        p = self.params
        if self.name == "weighted-sum":
            h = torch.einsum("knld,kl->knd", x, torch.softmax(p["weights"], dim=1))
            return linear(h, p["proj.weight"], p["proj.bias"])
        if self.name == "emobox":
            return norm_linear_relu(x, p["norm.weight"], p["norm.bias"], p["hidden.weight"], p["hidden.bias"],
                                    normalised=normalised)
        return x  # probe, ar-mlp: the mean of the layer itself

    def post(self, h: torch.Tensor, dropout=None, share: Sharing | None = None) -> torch.Tensor:
        """The part after the pooling, ``h [K, B, E]`` -> logits ``[K, B, C]``; ``dropout(h)`` draws the
        training-mode dropout (None: eval mode); ``share``: ``h`` is ``[U, B, E]``, one per distinct input
        (:mod:`emostore.heads.shared`), read by the first Linear."""
        p = self.params
        keys = ("mlp.0", "mlp.3", "mlp.6") if self.name == "ar-mlp" else ("out",)
        for i, key in enumerate(keys):
            w, b = p[f"{key}.weight"], p[f"{key}.bias"]
            h = shared_linear(h, share, w, b) if i == 0 and share is not None else linear(h, w, b)
            if i < len(keys) - 1:
                h = torch.relu(h)
                if dropout is not None:
                    h = dropout(h)
        return h

    def pooled(self, x: torch.Tensor, share: Sharing, dropout=None) -> torch.Tensor:
        """Logits ``[K, B, C]`` from pooled features read once per distinct input, ``x [U, B, ...]``: what
        ``post(pre(x))`` gives on each member's own copy (probe, ar-mlp: the first Linear reads the shared
        copy; weighted-sum mixes layers per member first, so each member gets its copy)."""
        if self.name == "weighted-sum":
            return self.post(self.pre(share.expand(x)), dropout)
        return self.post(self.pre(x), dropout, share)

    def dropout_masks(self, gens: list, counts: list[int], shape: tuple, device) -> torch.Tensor:
        """Inverted-dropout multipliers ``[K, B, H]`` drawn as a single run's ``nn.Dropout`` draws them:
        ``bernoulli_(1 - p)`` on member k's own ``[B_k, H_k]`` from its own generator, then ``/ (1 - p)``."""
        noise = torch.zeros(shape, device=device)
        for k, (g, b) in enumerate(zip(gens, counts)):
            q = self.dropout[k]
            if b and q > 0:
                m = torch.empty((b, self.hidden[k]), device=device).bernoulli_(1 - q, generator=g)
                noise[k, :b, :self.hidden[k]] = m.div_(1 - q)
            elif b:
                noise[k, :b] = 1.0
        return noise


def reads_one_layer(name: str) -> bool:
    """Whether a head of kind ``name`` reads one chosen layer (its input is ``[K, N, D]``)."""
    return name in LAYERED


class StackedAdamW:
    """AdamW on stacked parameters with a learning rate, weight decay, step count and warm-up per member.

    ``lrs``, ``weight_decays``: per member; ``warmup_steps[k]``: member k's lr rises as torch's
    ``LambdaLR(lambda t: min(1, (t + 1) / steps))`` does. Each step is torch's fused AdamW kernel
    (``torch._fused_adamw_``, what ``torch.optim.AdamW(fused=True)`` runs, and what a single run
    uses: :func:`emostore.heads.loop.train`) on each contiguous slice of members that share this
    step's lr, weight decay and step count: an update per member bit-for-bit a single run's (the
    kernel is elementwise), in one pass over the memory instead of the ~10 of elementwise torch ops
    (measured: 0.6 ms against 5.6 ms for 250 probes' [7, 384] weights). Members are best ordered by
    their schedule (:func:`schedule_order`), so that the slices are few. A member that does not step
    (its epoch has fewer batches, it has stopped) is left untouched.
    """

    def __init__(self, params: dict, lrs, weight_decays, warmup_steps, betas=(0.9, 0.999), eps=1e-8):
        self.lr = np.asarray(lrs, dtype=np.float64)
        self.wd = np.asarray(weight_decays, dtype=np.float64)
        self.warmup = np.asarray(warmup_steps, dtype=np.int64)
        self.steps = np.zeros(len(self.lr), dtype=np.int64)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.state = {k: (torch.zeros_like(p, memory_format=torch.preserve_format),
                          torch.zeros_like(p, memory_format=torch.preserve_format)) for k, p in params.items()}

    def current_lr(self) -> np.ndarray:
        """Each member's learning rate for its next step (what LambdaLR leaves in the param group)."""
        factor = np.where(self.warmup > 0, np.minimum(1.0, (self.steps + 1) / np.maximum(self.warmup, 1)), 1.0)
        return self.lr * factor

    def keep(self, idx: list[int], params: dict) -> None:
        """Keep the members at ``idx`` (after :meth:`StackedHead.keep`: ``params`` are the kept ones)."""
        sel = torch.as_tensor(idx, dtype=torch.long, device=next(iter(params.values())).device)
        self.state = {k: (m.index_select(0, sel), v.index_select(0, sel)) for k, (m, v) in self.state.items()}
        for attr in ("lr", "wd", "warmup", "steps"):
            setattr(self, attr, getattr(self, attr)[idx])

    def step(self, params: dict, stepping: np.ndarray) -> None:
        """One update of the members where ``stepping`` (bool [K]); the others keep params and moments."""
        lr = self.current_lr()
        self.steps = self.steps + stepping.astype(np.int64)
        device = next(iter(params.values())).device
        with torch.no_grad():
            for lo, hi in _runs(stepping, lr, self.wd, self.steps):
                step = torch.tensor(float(self.steps[lo]), dtype=torch.float32, device=device)
                ps = [p[lo:hi] for p in params.values()]
                grads = [p.grad[lo:hi] if p.grad is not None else torch.zeros_like(q) for p, q in zip(params.values(), ps)]
                moments = [self.state[key] for key in params]
                # one call for all of the slice's tensors (the kernel only reads the step count)
                torch._fused_adamw_(ps, grads, [m[lo:hi] for m, _ in moments], [v[lo:hi] for _, v in moments], [],
                                    [step] * len(ps), lr=float(lr[lo]), beta1=self.beta1, beta2=self.beta2,
                                    weight_decay=float(self.wd[lo]), eps=self.eps, amsgrad=False, maximize=False)
            for p in params.values():
                p.grad = None


def _runs(stepping: np.ndarray, *columns: np.ndarray) -> list[tuple[int, int]]:
    """``[lo, hi)`` of each maximal run of stepping members equal in every column."""
    k = len(stepping)
    change = np.zeros(k, dtype=bool)
    change[0] = True
    for c in (stepping,) + columns:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], k)
    return [(int(a), int(b)) for a, b in zip(starts, ends) if stepping[a]]


def schedule_order(lrs, weight_decays, warmup_steps, steps_per_epoch) -> list[int]:
    """Positions of members sorted so that those stepping alike are adjacent (:class:`StackedAdamW`)."""
    keys = list(zip(lrs, weight_decays, warmup_steps, steps_per_epoch))
    return sorted(range(len(keys)), key=lambda i: keys[i])
