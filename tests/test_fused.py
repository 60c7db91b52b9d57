"""The fused LayerNorm + Linear + ReLU (emostore.heads.fused) against autograd on nn.LayerNorm and nn.Linear."""

import torch
from torch import nn

from emostore.heads.fused import norm_linear_relu
from emostore.heads.heads import EmoBoxHead, masked_mean


def _modules(k, d, h, gen):
    mods = []
    for _ in range(k):
        norm, lin = nn.LayerNorm(d), nn.Linear(d, h)
        with torch.no_grad():  # away from the initial gamma = 1, beta = 0, where part of the algebra vanishes
            norm.weight.copy_(1 + 0.3 * torch.randn(d, generator=gen))
            norm.bias.copy_(0.2 * torch.randn(d, generator=gen))
        mods.append((norm, lin))
    return mods


def _tensors(mods):
    """gamma, beta, W, b of every member, in norm_linear_relu's argument order."""
    return ([n.weight for n, _ in mods], [n.bias for n, _ in mods], [l.weight for _, l in mods],
            [l.bias for _, l in mods])


def test_values_and_every_gradient_equal_autograd_on_the_modules():
    gen = torch.Generator().manual_seed(0)
    k, n, d, h = 3, 57, 24, 16
    x = 2 + 3 * torch.randn(k, n, d, generator=gen)
    mods = _modules(k, d, h, gen)
    probe = torch.randn(k, n, h, generator=gen)
    ref = torch.stack([torch.relu(lin(norm(x[j]))) for j, (norm, lin) in enumerate(mods)])
    (ref * probe).sum().backward()
    params = [torch.stack([t.detach() for t in ts]).requires_grad_() for ts in _tensors(mods)]
    out = norm_linear_relu(x, *params)
    (out * probe).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grads = [torch.stack([t.grad for t in ts]) for ts in _tensors(mods)]
    for got, want in zip((p.grad for p in params), grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_emobox_head_equals_its_unfused_definition():
    torch.manual_seed(1)
    head = EmoBoxHead(num_layers=2, dim=12, num_classes=4, layer=1, hidden=8)
    with torch.no_grad():
        head.norm.weight.mul_(1.5).add_(0.1)
        head.norm.bias.add_(-0.2)
    x = torch.randn(3, 9, 2, 12)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 4, 1])[:, None]
    want = head.out(masked_mean(torch.relu(head.hidden(head.norm(x[:, :, 1]))), mask))
    torch.testing.assert_close(head.forward_frames(x, mask), want, rtol=1e-5, atol=1e-6)
