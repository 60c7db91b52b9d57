"""A stack's batches, a window of steps at a time: each member's rows, validity and loss weights.

A grouped step used to rebuild, at every step, each member's rows, its targets, the sharing of
inputs (:class:`~emostore.heads.shared.Sharing`) and the dozen small tensor ops of the loss and
their autograd nodes: on 100 probes, ~2 ms of interpreter time in a ~5 ms step. A
:class:`Window` makes all of that for many steps at once (numpy and a few tensor ops over
``[S, K, B]``), and :func:`ce_loss_and_grad` gives the loss and its gradient with respect to the
logits in closed form, so the autograd graph starts at the logits.

The loss is each member's batch mean of PyTorch's probability-target, class-weighted
cross-entropy (what a single run minimises, :func:`emostore.heads.losses.soft_cross_entropy`):
with ``tw = t · w · valid / n`` (``n`` the member's rows in the batch) and ``a = Σ_c tw``,
``loss_k = Σ_b a·lse(x) − Σ_bc tw·x`` and ``∂loss/∂x = a·softmax(x) − tw``.
"""

from __future__ import annotations

import numpy as np
import torch

# a window holds at most this many target floats ([S, K, B, C]), 16 MiB of them
WINDOW_FLOATS = 1 << 22


class Rows:
    """Per-member row lists as one table: member k's position j -> its store row and target."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray]], device):
        lengths = [len(r) for r, _ in parts]
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.rows = np.concatenate([r for r, _ in parts]).astype(np.int64)
        self.targets = torch.from_numpy(np.concatenate([t for _, t in parts])).to(device)
        self.cache = None  # what a caller keeps while these rows stand (the dev windows)

    def step(self, order: np.ndarray, start: np.ndarray, size: np.ndarray, width: int):
        """Global indices and validity of each member's positions ``order[k, start_k : start_k + size_k]``:
        ``start [K]`` gives ``[K, width]``; ``start [S, K]`` (S steps at once) gives ``[S, K, width]``."""
        cols = start[..., None] + np.arange(width)
        valid = (np.arange(width) < size[:, None]) & (cols < self.lengths[:, None])
        safe = np.minimum(np.where(valid, cols, 0), order.shape[1] - 1)
        pos = order[np.arange(len(order))[:, None], safe]
        return np.where(valid, self.offsets[:, None] + pos, 0), valid


def padded(orders: list[np.ndarray]) -> np.ndarray:
    """Per-member position orders as one zero-padded ``[K, W]`` array (``W`` the longest, at least 1)."""
    out = np.zeros((len(orders), max([len(o) for o in orders] + [1])), dtype=np.int64)
    for j, o in enumerate(orders):
        out[j, :len(o)] = o
    return out


class Window:
    """Steps ``steps`` of every member: ``g [S, K, B]`` (global row indices), ``valid``, ``counts [S, K]``,
    the loss weights ``tw [S, K, B, C]`` and ``a [S, K, B]`` (:func:`ce_weights`), and the store
    rows ``rows [S, K, B]``. ``mean``: a member's loss is its batch mean (training), else the sum over
    its rows (dev: the caller divides by all of a member's dev rows)."""

    def __init__(self, rows: Rows, order: np.ndarray, steps: np.ndarray, size: np.ndarray, width: int,
                 weights: torch.Tensor, smoothing: torch.Tensor | None = None, mean: bool = True):
        self.g, self.valid = rows.step(order, steps[:, None] * size, size, width)
        self.counts = self.valid.sum(axis=2)
        self.rows = rows.rows[self.g]
        device = weights.device
        targets = rows.targets[torch.from_numpy(self.g).to(device)]
        valid = torch.from_numpy(self.valid).to(device=device, dtype=torch.float32)
        if mean:
            valid = valid / torch.from_numpy(np.maximum(self.counts, 1)).to(device=device, dtype=torch.float32)[..., None]
        self.tw, self.a = ce_weights(targets, valid, weights, smoothing)

    def __len__(self) -> int:
        return len(self.g)

    @staticmethod
    def per_member(keys: np.ndarray) -> np.ndarray:
        """``keys [S, K, B]`` (what each member reads at each step) as ``[K, S·B]``: one row per member
        over the whole window; equal rows, equal inputs at every step."""
        return keys.transpose(1, 0, 2).reshape(keys.shape[1], -1)


def windows(n_steps: int, members: int, width: int, classes: int) -> list[np.ndarray]:
    """Step numbers ``0 .. n_steps - 1`` cut into windows of at most :data:`WINDOW_FLOATS` target floats."""
    per = max(1, WINDOW_FLOATS // max(1, members * width * classes))
    return [np.arange(s, min(s + per, n_steps)) for s in range(0, n_steps, per)]


def ce_weights(targets: torch.Tensor, scale: torch.Tensor, weights: torch.Tensor,
               smoothing: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tw, a)`` from soft targets ``[..., K, B, C]``, per-row ``scale [..., K, B]`` (validity / n), class
    weights ``[K, C]`` and label smoothing ``[K]`` (``t (1 - s) + s / C``, PyTorch's)."""
    if smoothing is not None:
        c = targets.shape[-1]
        targets = targets * (1 - smoothing)[:, None, None] + (smoothing / c)[:, None, None]
    tw = targets * weights[:, None, :] * scale[..., None]
    return tw, tw.sum(-1)


def ce_loss_and_grad(logits: torch.Tensor, tw: torch.Tensor, a: torch.Tensor, grad: bool = True):
    """Each member's loss ``[K]`` (``Σ_b a·lse − Σ_bc tw·x``) and ``∂(Σ_k loss_k)/∂logits`` (None unless ``grad``)."""
    logits = logits.detach()
    lse = torch.logsumexp(logits, dim=-1)
    loss = (lse * a).sum(-1) - (logits * tw).sum((-2, -1))
    if not grad:
        return loss, None
    return loss, torch.exp(logits - lse[..., None]).mul_(a[..., None]).sub_(tw)
