"""The windowed batches and the closed-form loss gradient equal what they replace."""

import numpy as np
import torch
import torch.nn.functional as F

from emostore.heads.batches import Rows, Window, ce_loss_and_grad, ce_weights, windows


def _rows(rng, lengths, classes=5):
    parts = []
    for n in lengths:
        t = rng.random((n, classes)).astype(np.float32)
        parts.append((rng.integers(0, 1000, n), t / t.sum(1, keepdims=True)))
    return Rows(parts, "cpu")


def test_closed_form_loss_and_gradient_equal_pytorch_cross_entropy_per_member():
    rng = np.random.default_rng(0)
    k, b, c = 3, 6, 5
    logits = torch.from_numpy(rng.normal(size=(k, b, c)).astype(np.float32) * 3)
    targets = torch.softmax(torch.from_numpy(rng.normal(size=(k, b, c)).astype(np.float32)), -1)
    weights = torch.from_numpy(rng.random((k, c)).astype(np.float32) + 0.5)
    smoothing = torch.tensor([0.0, 0.1, 0.3])
    counts = np.array([6, 4, 1])
    valid = torch.from_numpy(np.arange(b)[None, :] < counts[:, None]).float()
    tw, a = ce_weights(targets, valid / torch.from_numpy(counts).float()[:, None], weights, smoothing)
    loss, grad = ce_loss_and_grad(logits, tw, a)
    x = logits.clone().requires_grad_()
    ref = torch.stack([F.cross_entropy(x[j, :counts[j]], targets[j, :counts[j]], weight=weights[j],
                                       label_smoothing=float(smoothing[j])) for j in range(k)])
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, x.grad, rtol=1e-5, atol=1e-7)
    assert float(grad[2, 1:].abs().max()) == 0.0  # padding rows get no gradient


def test_a_window_equals_its_steps_one_at_a_time():
    rng = np.random.default_rng(1)
    rows = _rows(rng, [13, 7, 10])
    order = np.zeros((3, 13), dtype=np.int64)
    for j, n in enumerate(rows.lengths):
        order[j, :n] = rng.permutation(n)
    size = np.array([4, 3, 4])
    weights = torch.ones((3, 5))
    win = Window(rows, order, np.arange(4), size, 4, weights)
    for s in range(4):
        g, valid = rows.step(order, s * size, size, 4)
        np.testing.assert_array_equal(win.g[s], g)
        np.testing.assert_array_equal(win.valid[s], valid)
        np.testing.assert_array_equal(win.rows[s], rows.rows[g])
    # each member's batch mean: its loss weights sum to 1 over a step with rows
    sums = win.a.sum(-1).numpy()
    np.testing.assert_allclose(sums[win.counts > 0], 1.0, rtol=1e-6)
    assert (sums[win.counts == 0] == 0).all()


def test_windows_cover_every_step_once_within_the_float_budget():
    spans = windows(1000, 500, 32, 7)
    assert np.array_equal(np.concatenate(spans), np.arange(1000))
    assert all(len(s) * 500 * 32 * 7 <= 1 << 22 for s in spans)
    assert [len(s) for s in windows(3, 10**7, 32, 7)] == [1, 1, 1]  # at least a step per window
