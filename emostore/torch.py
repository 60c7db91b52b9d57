"""PyTorch view of a store: a Dataset over (store, label set, partition, fold, part) and a block sampler.

lhotse-style: :class:`BlockSampler` chooses each batch (positions into the dataset), and the
dataset's ``__getitem__`` receives the whole batch and reads it through the training loop's own
sources (:mod:`emostore.heads.sources`): pooled features from memory, frames by blocks through the
bounded block cache, padded with a validity mask. The sampler's order is the training loop's
(:func:`~emostore.heads.sources.epoch_order` with the same seed, block size and cache window), so
``DataLoader(ds, sampler=BlockSampler(ds, 32, seed=s), batch_size=None)`` yields exactly the batches
``emostore train`` feeds its heads (tests/test_torch_dataset.py pins that).

>>> from emostore.torch import StoreDataset, BlockSampler
>>> ds = StoreDataset("emodb.zarr", "mr.jsonl", "part.json", fold="f1", part="train", features="frames")
>>> loader = torch.utils.data.DataLoader(ds, sampler=BlockSampler(ds, batch_size=32), batch_size=None)
>>> for b in loader: b["x"], b["mask"], b["target"]   # [B, T, L, D], [B, T], [B, C]

Single items (``ds[i]``) and :meth:`StoreDataset.collate` serve a plain ``DataLoader(ds, batch_size=B,
collate_fn=ds.collate)`` too, at the cost of reading frames utterance by utterance.
Keep ``num_workers=0`` with frames: each worker process would hold its own block cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from emostore.errors import EmostoreError
from emostore.heads.data import load_fold
from emostore.heads.names import layer_position
from emostore.heads.sources import FramesSource, PooledSource, block_frames, block_rows, epoch_order, frame_bytes
from emostore.heads.train import label_classes
from emostore.manifests.partitions import PARTS, Partition, read_partition
from emostore.store.reader import FeatureStore
from emostore.store.reader import open as open_store

FEATURES = ("pooled", "frames")
ORDERS = ("auto", "full", "blocks", "none")  # none: store order (how the loop evaluates)


class DatasetError(EmostoreError, ValueError):
    """A dataset or sampler argument that cannot work (unknown part, features, order...)."""


def _choice(name: str, value, known) -> None:
    if value not in known:
        raise DatasetError(f"{name} must be one of {', '.join(map(str, known))}; got {value!r}")


class StoreDataset(Dataset):
    """One part of one fold: its kept ids, store rows and train targets, and their features.

    ``store``: a path/URL or an opened :class:`~emostore.store.FeatureStore`; ``labels``: a label-set
    file or ``(records, meta)`` as :func:`~emostore.labels.aggregate.read_label_set` returns;
    ``partition``: a partition file or a :class:`~emostore.manifests.partitions.Partition`.
    ``layers``: encoder layer numbers to read (-1: the last stored; default: every stored layer). The fold is loaded by
    :func:`emostore.heads.data.load_fold` (excluded rows dropped, overlap refused, ``valid_fraction``
    for a fold without dev), so a part here is the part a training run uses.
    """

    def __init__(self, store, labels, partition, fold: str, part: str = "train", features: str = "pooled",
                 layers: list[int] | None = None, valid_fraction: float = 0.0, seed: int = 0,
                 allow_overlap: bool = False, memory_mb: int = 1024):
        from emostore.labels.aggregate import read_label_set

        _choice("part", part, PARTS)
        _choice("features", features, FEATURES)
        self.store = store if isinstance(store, FeatureStore) else open_store(store)
        records, meta = labels if isinstance(labels, tuple) else read_label_set(labels)
        partition = partition if isinstance(partition, Partition) else read_partition(partition)
        data = load_fold(self.store, records, partition, fold, valid_fraction, seed, allow_overlap)
        self.fold, self.part, self.features, self.memory_mb = fold, part, features, int(memory_mb)
        self.classes = label_classes(records, meta, labels if isinstance(labels, (str, Path)) else "label set")
        self.ids: list[str] = list(data.ids[part])
        self.rows: np.ndarray = data.rows[part]  # store row of each item
        self.targets: np.ndarray = data.targets[part]  # [n, C] float32 train targets
        self.layers = list(self.store.layers) if layers is None else list(layers)
        self.layer_positions = None if layers is None else [layer_position(self.store.layers, k) for k in layers]
        if features == "pooled":
            self.source = PooledSource(self.store)
        else:
            if not self.store.has_frames:
                raise DatasetError(f"{self.store.path} was extracted with --no-frames; features='frames' needs a "
                                   "store extracted with --frames (or use features='pooled')")
            self.source = FramesSource(self.store, self.layer_positions, self.memory_mb << 20)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        """``ds[i]``: one item ``{"id", "x", "target"}`` (x: [L, D] pooled, [T, L, D] frames);
        ``ds[[i, j, ...]]`` (what :class:`BlockSampler` passes): that batch collated, see :meth:`batch`."""
        if isinstance(index, (int, np.integer)):
            b = self.batch([int(index)])
            x = b["x"][0] if self.features == "pooled" else b["x"][0, : int(b["mask"][0].sum())]
            return {"id": b["ids"][0], "x": x, "target": b["target"][0]}
        return self.batch(index)

    def batch(self, positions) -> dict:
        """Items ``positions`` read as the training loop reads them: ``ids``, ``rows`` (store rows),
        ``x`` float32 ([B, L, D] pooled; [B, T, L, D] frames, zero-padded), ``mask`` [B, T] (frames
        only: True on valid frames) and ``target`` [B, C]."""
        pos = np.asarray(positions, dtype=np.int64)
        rows = self.rows[pos]
        out = {"ids": [self.ids[p] for p in pos], "rows": rows, "target": torch.from_numpy(self.targets[pos])}
        if self.features == "pooled":
            x = self.source.pooled[torch.from_numpy(rows)]
            out["x"] = x if self.layer_positions is None else x[:, self.layer_positions]
        else:
            out["x"], out["mask"] = self.source.batch(rows)
        return out

    def collate(self, items: list[dict]) -> dict:
        """Single items (``ds[i]``) into a batch: pooled stacked; frames zero-padded with a mask."""
        out = {"ids": [it["id"] for it in items], "target": torch.stack([it["target"] for it in items])}
        if self.features == "pooled":
            out["x"] = torch.stack([it["x"] for it in items])
            return out
        t = max(it["x"].shape[0] for it in items)
        x = items[0]["x"].new_zeros((len(items), t) + tuple(items[0]["x"].shape[1:]))
        mask = torch.zeros((len(items), t), dtype=torch.bool)
        for k, it in enumerate(items):
            x[k, : it["x"].shape[0]] = it["x"]
            mask[k, : it["x"].shape[0]] = True
        out["x"], out["mask"] = x, mask
        return out


class BlockSampler(Sampler):
    """Batches of dataset positions in the training loop's order.

    ``order``: ``blocks`` (shuffle blocks of store rows, then rows within a window of blocks that fits
    the dataset's cache: every batch reads cached blocks), ``full`` (all rows shuffled), ``none``
    (store order, for evaluation), ``auto`` (blocks for frames, full for pooled, as ``emostore
    train``). One generator seeded with ``seed`` runs across epochs, like the loop's.
    """

    def __init__(self, dataset: StoreDataset, batch_size: int, order: str = "auto", seed: int = 0,
                 drop_last: bool = False):
        _choice("order", order, ORDERS)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DatasetError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        self.ds, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.order = order if order != "auto" else ("blocks" if dataset.features == "frames" else "full")
        self.gen = torch.Generator().manual_seed(seed)
        fs = dataset.store
        n_layers = len(dataset.layer_positions) if dataset.layer_positions is not None else fs.num_layers
        self.block = block_rows(fs)
        self.block_cost = block_frames(fs, self.block)
        # the cache window of emostore.heads.data.orderer: half the frames budget
        self.window = max(1, (dataset.memory_mb << 20) // 2 // frame_bytes(fs, n_layers))

    def epoch_positions(self) -> np.ndarray:
        """The next epoch's positions into the dataset, in order (advances the generator)."""
        if self.order == "none":
            return np.argsort(self.ds.rows, kind="stable")
        return epoch_order(self.ds.rows, self.gen, self.order, self.block, self.block_cost, self.window)

    def __iter__(self):
        order = self.epoch_positions()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for s in range(0, stop, self.batch_size):
            yield order[s:s + self.batch_size]

    def __len__(self) -> int:
        n = len(self.ds)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
