"""Members that read identical inputs: one gather and one wide product per distinct input.

In a grid, many members of a pooled stack read the very same rows at a step: members that differ
only in lr, weight decay or smoothing share their fold, seed (hence batch order) and layer, so their
batches are equal row for row (the 100-probe grid of bench/grouped_sweep.py: 25 distinct inputs for
100 members, 4 lrs each). Gathering each member's rows reads every distinct batch once per member;
:class:`Sharing` finds the distinct ones by content at each step (nothing is assumed about which
settings give equal batches), so the feed gathers ``U`` batches instead of ``K``, and
:func:`shared_linear` computes the members' first Linear as ``U`` products of a distinct input with
its members' weights side by side (``[M·O, D]``): the same dot products as one product per member,
in fewer, wider matrix products (measured at K = 100, U = 25, [32, 384] -> 7, one thread: gather
1.19 -> 0.28 ms, forward 0.76 -> 0.55 ms, weight gradient 0.61 -> 0.23 ms).

A member's numbers are unchanged up to float rounding (its dot products are the same; a wider
product may block its sums differently): tests/test_grouped_training.py holds grouped members to
their single runs within 1e-5 with and without sharing.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

# The side-by-side layout pads every distinct input to the largest number of members reading it;
# past this much padding (in member products) the plain per-member product is cheaper.
MAX_PADDING = 1.5


class Sharing:
    """Which of K members read which of U distinct inputs: ``reps`` (a member reading each distinct
    input, first seen first) and ``cls`` (each member's distinct input)."""

    def __init__(self, keys: np.ndarray, device="cpu"):
        """``keys [K, B]``: what member k reads at each of its B positions (equal rows: equal inputs)."""
        k, width = keys.shape
        packed = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.dtype.itemsize * width))).ravel()
        _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
        # number the distinct inputs in first-seen order, so that an unshared stack is the identity
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        self.cls = rank[inverse.reshape(-1)]
        self.reps = np.sort(first)
        self.members, self.distinct, self.device = k, len(first), device

    @property
    def identity(self) -> bool:
        """Every member reads its own input (then input u is member u's)."""
        return self.distinct == self.members

    @cached_property
    def cls_t(self) -> torch.Tensor:
        return torch.from_numpy(self.cls).to(self.device)

    @cached_property
    def layout(self) -> tuple[int, torch.Tensor, torch.Tensor]:
        """``(M, pad [U·M], pos [K])``: member ``pad[u·M + j]`` is the j-th reading input u (a slot past
        its readers repeats one of them, its output unused); member k's output is slot ``pos[k]``."""
        counts = np.bincount(self.cls, minlength=self.distinct)
        m = int(counts.max())
        order = np.argsort(self.cls, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.empty(self.members, dtype=np.int64)
        slot[order] = np.arange(self.members) - starts[self.cls[order]]
        pad = np.repeat(self.reps, m)  # unused slots: the input's first reader again
        pos = self.cls * m + slot
        pad[pos] = np.arange(self.members)
        return m, torch.from_numpy(pad).to(self.device), torch.from_numpy(pos).to(self.device)

    @property
    def side_by_side(self) -> bool:
        """Whether :func:`shared_linear` should use the side-by-side layout (shared, little padding)."""
        return not self.identity and self.distinct * self.layout[0] <= MAX_PADDING * self.members

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """``x [U, ...]`` per distinct input -> ``[K, ...]`` per member."""
        return x if self.identity else x.index_select(0, self.cls_t)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``nn.Linear`` per member: ``x [K, N, in]``, ``w [K, out, in]``, ``b [K, out]`` -> ``[K, N, out]``.

    Computed as ``(w xᵀ + b)ᵀ``: the same sums as ``x wᵀ + b``, and on the CPU 1.1-1.7x faster
    forward + backward at a sweep's shapes (bench/stacked_forward.py: K = 250-500 probes [32, 384]
    -> 7, 100 MLP layers 384 -> 1024, 8 x 384 -> 256).
    """
    return torch.baddbmm(b.unsqueeze(2), w, x.transpose(1, 2)).transpose(1, 2)


def shared_linear(x: torch.Tensor, share: Sharing, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``nn.Linear`` per member on shared inputs: ``x [U, N, D]``, ``w [K, O, D]``, ``b [K, O]`` -> ``[K, N, O]``."""
    if not share.side_by_side:
        return linear(share.expand(x), w, b)
    m, pad, pos = share.layout
    u, n = x.shape[0], x.shape[1]
    o = w.shape[1]
    wp = w.index_select(0, pad).reshape(u, m * o, w.shape[2])
    bp = b.index_select(0, pad).reshape(u, m * o, 1)
    out = torch.baddbmm(bp, wp, x.transpose(1, 2))  # [U, M·O, N]
    return out.reshape(u * m, o, n).index_select(0, pos).transpose(1, 2)
