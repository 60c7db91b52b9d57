"""emostore.torch: the Dataset and sampler read exactly what the training loop feeds its heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import emostore
from emostore.heads.config import TrainConfig
from emostore.heads.data import make_source
from emostore.heads.heads import LAYERED, HeadError
from emostore.heads.names import layer_position
from emostore.heads.loop import train
from emostore.labels.aggregate import read_label_set
from emostore.manifests.partitions import read_partition
from emostore.torch import BlockSampler, DatasetError, StoreDataset


class Recording:
    """The loop's own source, recording every (rows, inputs) it hands a head."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def logits(self, head, rows):
        if hasattr(self.inner, "batch"):
            x, mask = self.inner.batch(rows)
            self.seen.append((np.array(rows), x.clone(), mask.clone()))
            return head.forward_frames(x, mask)
        x = self.inner.pooled[torch.from_numpy(np.asarray(rows, dtype=np.int64))]
        self.seen.append((np.array(rows), x.clone(), None))
        return head.forward_pooled(x)


def _loop_batches(fb, cfg):
    """The train batches of every epoch of a real ``train`` call, as the heads received them."""
    fs = emostore.open_store(fb["store"])
    records, meta = read_label_set(fb["labels"])
    pos = None if cfg.head == "weighted-sum" else layer_position(fs.layers, cfg.layer)
    features = "frames" if cfg.features == "frames" else "pooled"
    rec = Recording(make_source(fs, cfg.head, features, cfg, pos))
    result = train(fs, records, meta["classes"], read_partition(fb["part"]), cfg, source=rec)
    per_epoch = -(-len(fb["fold"]["train"]) // cfg.batch_size)  # each epoch then evaluates the 3 dev rows
    steps = per_epoch + 1
    epochs = [rec.seen[e * steps:e * steps + per_epoch] for e in range(len(result.train_losses))]
    return epochs, pos


@pytest.mark.parametrize("head, features", [("emobox", "frames"), ("weighted-sum", "pooled"), ("probe", "pooled")])
def test_sampler_batches_equal_the_training_loops_batches(fbank_fold, head, features):
    # a 1 MiB cache: window of ~1640 float32 fbank frames, so an epoch spans several windows and blocks
    cfg = TrainConfig(head=head, fold="f1", features=features, epochs=2, batch_size=4, seed=7, memory_mb=1,
                      hidden=None if head == "probe" else 8)
    epochs, pos = _loop_batches(fbank_fold, cfg)
    fs = emostore.open_store(fbank_fold["store"])
    layers = [fs.layers[pos]] if head in LAYERED and features == "frames" else None
    ds = StoreDataset(fs, fbank_fold["labels"], fbank_fold["part"], "f1", "train", features=features,
                      layers=layers, memory_mb=cfg.memory_mb)
    loader = DataLoader(ds, sampler=BlockSampler(ds, cfg.batch_size, seed=cfg.seed), batch_size=None)
    for loop_epoch in epochs:
        mine = list(loader)
        assert len(mine) == len(loop_epoch)
        for b, (rows, x, mask) in zip(mine, loop_epoch):
            np.testing.assert_array_equal(np.asarray(b["rows"]), rows)
            torch.testing.assert_close(b["x"], x, rtol=0, atol=0)
            if mask is not None:
                assert torch.equal(b["mask"], mask)
            by_row = dict(zip(ds.rows.tolist(), ds.targets))
            np.testing.assert_array_equal(b["target"].numpy(), np.stack([by_row[int(r)] for r in rows]))
    if features == "frames":  # blocks order: within a window, every block was read once per epoch
        assert len({tuple(sorted(r // 8 for r in b[0])) for b in epochs[0]}) > 1


def test_items_and_collate_equal_the_block_batch(fbank_fold):
    ds = StoreDataset(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], "f1", "dev", features="frames")
    fs = ds.store
    assert ds.ids == fbank_fold["fold"]["dev"] and ds.classes == ["anger", "neutral", "sadness"]
    items = [ds[i] for i in range(len(ds))]
    for it in items:  # one item: that utterance's frames as stored, unpadded
        np.testing.assert_array_equal(it["x"].numpy(), fs.frames(it["id"]).astype(np.float32))
    got, want = ds.collate(items), ds[list(range(len(ds)))]
    assert got["ids"] == want["ids"]
    assert torch.equal(got["x"], want["x"]) and torch.equal(got["mask"], want["mask"])
    assert got["mask"].sum(1).tolist() == [int(fs.num_frames[fs.index(u)]) for u in ds.ids]
    batches = list(DataLoader(ds, batch_size=2, collate_fn=ds.collate))
    assert [len(b["ids"]) for b in batches] == [2, 1]


def test_pooled_items_are_the_stores_pooled_rows(fbank_fold):
    fs = emostore.open_store(fbank_fold["store"])
    ds = StoreDataset(fs, fbank_fold["labels"], fbank_fold["part"], "f1", "test")
    for i, u in enumerate(ds.ids):
        np.testing.assert_array_equal(ds[i]["x"].numpy(), fs.pooled()[fs.index(u)])
    order = next(iter(BlockSampler(ds, 10, order="none")))
    assert list(ds.rows[order]) == sorted(ds.rows)


@pytest.mark.parametrize("kw, needle", [
    (dict(part="valid"), "part must be one of train, dev, test"),
    (dict(features="mfcc"), "features must be one of pooled, frames"),
    (dict(layers=[3]), r"layer 3 is not in the store \(stored layers: \[0\]\)"),
])
def test_bad_dataset_arguments_name_the_argument(fbank_fold, kw, needle):
    args = dict(part="train", features="pooled")
    args.update(kw)
    with pytest.raises(HeadError if "layers" in kw else DatasetError, match=needle):
        StoreDataset(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], "f1", **args)


def test_bad_sampler_arguments_name_the_argument(fbank_fold):
    ds = StoreDataset(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], "f1")
    with pytest.raises(DatasetError, match="order must be one of"):
        BlockSampler(ds, 4, order="random")
    with pytest.raises(DatasetError, match="batch_size must be a whole number"):
        BlockSampler(ds, 0)
