"""A custom PyTorch head on frames: attention pooling over one layer, trained with emostore.torch.

    python examples/frames_head.py STORE LABELS PARTITION FOLD [LAYER [EPOCHS]]

The sampler reads frames block-wise through a bounded cache, as `emostore train` does; the dataset
pads each batch and gives the validity mask. Prints the train loss per epoch and the dev UA.
"""

import sys

import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.utils.data import DataLoader

from emostore.torch import BlockSampler, StoreDataset


class AttentionPool(nn.Module):
    """LayerNorm -> a score per frame -> softmax over valid frames -> weighted mean -> Linear."""

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.norm, self.score, self.out = nn.LayerNorm(dim), nn.Linear(dim, 1), nn.Linear(dim, classes)

    def forward(self, x, mask):                    # x [B, T, D], mask [B, T]
        x = self.norm(x)
        w = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(dim=1)
        return self.out((w.unsqueeze(-1) * x).sum(dim=1))


def train_head(store, labels, partition, fold, layer=-1, epochs=10, batch_size=8, seed=0):
    """Train on the fold's train part; return (train loss per epoch, dev UA, dev probabilities)."""
    torch.manual_seed(seed)
    parts = {p: StoreDataset(store, labels, partition, fold, p, features="frames", layers=[layer])
             for p in ("train", "dev")}
    train = parts["train"]
    head = AttentionPool(train.store.dim, len(train.classes))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    loader = DataLoader(train, sampler=BlockSampler(train, batch_size, seed=seed), batch_size=None)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for b in loader:
            logits = head(b["x"][:, :, 0], b["mask"])          # the one layer read
            loss = -(b["target"] * logits.log_softmax(dim=1)).sum(dim=1).mean()   # soft cross-entropy
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b["ids"])
        losses.append(total / len(train))
    dev = parts["dev"]
    with torch.no_grad():
        b = dev[list(range(len(dev)))]
        probs = head(b["x"][:, :, 0], b["mask"]).softmax(dim=1)
    ua = balanced_accuracy_score(b["target"].argmax(1).numpy(), probs.argmax(1).numpy())
    return losses, ua, probs


if __name__ == "__main__":
    store, labels, partition, fold, *rest = sys.argv[1:]
    losses, ua, _ = train_head(store, labels, partition, fold, *map(int, rest))
    for epoch, loss in enumerate(losses, 1):
        print(f"epoch {epoch:2d}  train loss {loss:.4f}")
    print(f"dev UA {ua:.3f}")
