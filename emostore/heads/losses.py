"""The training loss: cross-entropy on soft targets, optionally class-balanced.

Class-balanced after Cui et al. (CVPR 2019): ``w_j = (1 - β) / (1 - β^n_j)`` with ``n_j`` the sum of
the training targets' mass on class j, normalised so the weights sum to C (``β = 0`` disables the
weighting: every weight is 1). A class with no training mass gets weight 0 (its target is 0 on
every training row, so only label smoothing could see it). Label smoothing is PyTorch's
(``F.cross_entropy(..., label_smoothing=x)``), train loss only.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from emostore.heads.config import TrainError


def class_balanced_weights(targets: np.ndarray, beta: float = 0.99) -> np.ndarray:
    """Cui et al. weights ``(1-β)/(1-β^n_j)`` from soft targets [N, C], normalised to sum to C.

    ``n_j`` = column sums of ``targets``; a class with ``n_j == 0`` gets 0; ``beta == 0`` -> all ones.
    """
    targets = np.asarray(targets, dtype=np.float64)
    c = targets.shape[1]
    if not 0.0 <= beta < 1.0:
        raise TrainError(f"beta must be in [0, 1), got {beta}")
    if beta == 0.0:
        return np.ones(c)
    n = targets.sum(axis=0)
    w = np.zeros(c)
    seen = n > 0
    w[seen] = (1.0 - beta) / (1.0 - np.power(beta, n[seen]))
    if not seen.any():
        raise TrainError("the training targets are empty")
    return w / w.sum() * c


def soft_cross_entropy(logits, targets, weight=None, smoothing: float = 0.0):
    """Mean over rows of ``-Σ_j w_j t_j log softmax(logits)_j`` (PyTorch's probability-target CE)."""
    return F.cross_entropy(logits, targets, weight=weight, label_smoothing=smoothing)
