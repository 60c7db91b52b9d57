"""A fold's inputs: ids, store rows and targets per part, the dev hold-out, and the feature source.

Dev part: the partition's; a fold with an empty dev part needs ``valid_fraction`` (EmoBox: 20% of
train, drawn by the seed, stratified by the targets' argmax).

Overlap: an id in both train and test (or dev and test) of the fold would be scored on data the
model trained on (or was selected on); such a fold is refused, naming the count and the first ids,
unless ``allow_overlap`` is given.

Test predictions cover every test utterance of the fold that has features, including those the
training label set excludes (a model trained on MR labels is scored on the AR test set too).

Features: pooled features whole in memory where the head is exact on them, else frames streamed by
blocks through a cache bounded by ``memory_mb`` (see :mod:`emostore.heads.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emostore.heads.config import TrainConfig, TrainError
from emostore.heads.names import LAYERED, POOLED_EXACT


@dataclass
class FoldData:
    ids: dict[str, list[str]]  # part -> kept ids (excluded label rows dropped)
    rows: dict[str, np.ndarray]  # part -> store row numbers
    targets: dict[str, np.ndarray]  # part -> [n, C] float32 train targets
    skipped: dict[str, int]  # part -> excluded label rows dropped
    predict_ids: list[str] = field(default_factory=list)  # test ids with features, excluded ones included
    predict_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dev_source: str = "partition"  # or "valid_fraction"
    overlap: dict[str, int] = field(default_factory=dict)  # "train&test"/"dev&test" -> ids in both (allowed)


def _first(ids: list[str], n: int = 10) -> str:
    return ", ".join(ids[:n]) + (" ..." if len(ids) > n else "")


def fold_overlap(fold: dict[str, list[str]]) -> dict[str, list[str]]:
    """Ids of the test part also in train or in dev: ``{"train&test": [...], "dev&test": [...]}``,
    in test order, non-empty entries only."""
    out = {}
    for part in ("train", "dev"):
        seen = set(fold[part])
        both = [u for u in fold["test"] if u in seen]
        if both:
            out[f"{part}&test"] = both
    return out


def check_overlap(fold_name: str, fold: dict[str, list[str]], allow: bool = False) -> dict[str, int]:
    """Refuse a fold that tests on ids it trains or selects on (unless ``allow``); the counts."""
    both = fold_overlap(fold)
    if both and not allow:
        what = "; ".join(f"{len(ids)} id(s) in both {k.replace('&', ' and ')}: {_first(ids, 5)}"
                         for k, ids in both.items())
        raise TrainError(f"fold {fold_name!r} tests on utterances it trains or selects on ({what}); fix the "
                         "partition, or pass --allow-overlap (allow_overlap=True) to score them anyway")
    return {k: len(v) for k, v in both.items()}


def load_fold(fs, records, partition, fold: str, valid_fraction: float = 0.0, seed: int = 0,
              allow_overlap: bool = False) -> FoldData:
    """Kept ids, store rows and targets of each part of ``fold``; clear errors for missing ids."""
    if fold not in partition.folds:
        raise TrainError(f"no fold {fold!r} in the partition (folds: {', '.join(partition.folds)})")
    if not 0.0 <= valid_fraction < 1.0:
        raise TrainError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    overlap = check_overlap(fold, partition.folds[fold], allow_overlap)
    by_id = {r.id: r for r in records}
    index = {u: i for i, u in enumerate(fs.ids.tolist())}
    out = FoldData({}, {}, {}, {}, overlap=overlap)
    for part in ("train", "dev", "test"):
        ids = partition.folds[fold][part]
        if part == "dev" and not ids:
            continue
        no_label = [u for u in ids if u not in by_id]
        if no_label:
            raise TrainError(f"fold {fold!r} {part}: {len(no_label)} id(s) not in the label set: {_first(no_label)}")
        kept = [u for u in ids if by_id[u].excluded is None]
        missing = [u for u in kept if u not in index]
        if missing:
            raise TrainError(f"fold {fold!r} {part}: {len(missing)} id(s) not in the store {fs.path}: "
                             f"{_first(missing)}")
        rows = np.asarray([index[u] for u in kept], dtype=np.int64)
        undone = [u for u, i in zip(kept, rows) if not fs.done[i]]
        if undone:
            raise TrainError(f"fold {fold!r} {part}: {len(undone)} id(s) have no features in {fs.path} "
                             f"(extraction errors, see `emostore store info`): {_first(undone)}")
        if not kept:
            raise TrainError(f"fold {fold!r} {part}: no utterance left (all excluded by the label set)")
        out.ids[part] = kept
        out.rows[part] = rows
        out.targets[part] = np.asarray([by_id[u].train for u in kept], dtype=np.float32)
        out.skipped[part] = len(ids) - len(kept)
        if part == "test":
            out.predict_ids = [u for u in ids if u in index and fs.done[index[u]]]
            out.predict_rows = np.asarray([index[u] for u in out.predict_ids], dtype=np.int64)
    if "dev" not in out.ids:
        if valid_fraction <= 0:
            raise TrainError(f"fold {fold!r} has no dev part; hold out a share of train with "
                             "--valid-fraction (EmoBox: 0.2)")
        hold_out(out, valid_fraction, seed)
    return out


def hold_out(data: FoldData, share: float, seed: int) -> None:
    """Move ``share`` of the train rows to dev, per class of the targets' argmax, drawn by ``seed``."""
    rng = np.random.default_rng(seed)
    cls = data.targets["train"].argmax(axis=1)
    dev = np.zeros(len(cls), dtype=bool)
    for c in np.unique(cls):
        members = np.flatnonzero(cls == c)
        take = int(round(share * len(members)))
        dev[rng.permutation(members)[:take]] = True
    if not dev.any() or dev.all():
        raise TrainError(f"--valid-fraction {share} leaves no train or no dev utterance "
                         f"({len(cls)} training utterances)")
    ids = np.asarray(data.ids["train"], dtype=object)
    for part, sel in (("dev", dev), ("train", ~dev)):
        data.ids[part] = ids[sel].tolist()
        data.rows[part] = data.rows["train"][sel]
        data.targets[part] = data.targets["train"][sel]
    data.skipped["dev"] = 0
    data.dev_source = "valid_fraction"


def choose_features(head_name: str, requested: str, fs, store_frames: bool = True) -> str:
    """pooled or frames for this head; ``store_frames``: the frames must come from the store."""
    exact = head_name in POOLED_EXACT
    if requested == "pooled" and not exact:
        raise TrainError(f"the {head_name} head is not exact on pooled features (non-linear before "
                         "pooling); it needs frames")
    use = requested if requested != "auto" else ("pooled" if exact else "frames")
    if use == "frames" and store_frames and not fs.has_frames:
        why = "the" if requested == "auto" else "--features frames asks for the"
        raise TrainError(f"{why} {head_name} head needs frame-level features, but {fs.path} was extracted "
                         f"with --no-frames; re-extract it with `emostore extract MANIFEST --frames --out NEW.zarr`")
    return use


def make_source(fs, head_name: str, features: str, cfg: TrainConfig, layer_pos: int | None):
    """The store's source for this head: pooled in memory, or frames of the layers it reads."""
    from emostore.heads.sources import FramesSource, PooledSource  # torch: preflight imports this module without it

    if features == "pooled":
        return PooledSource(fs, cfg.device)
    layers = [layer_pos] if head_name in LAYERED else None
    return FramesSource(fs, layers, cfg.memory_mb << 20, cfg.device)


def orderer(fs, head_name: str, features: str, cfg: TrainConfig, rows: np.ndarray):
    """A function gen -> positions into ``rows`` for one epoch (see sources.epoch_order)."""
    from emostore.heads.sources import block_frames, block_rows, epoch_order, frame_bytes

    shuffle = cfg.shuffle if cfg.shuffle != "auto" else ("blocks" if features == "frames" else "full")
    n_layers = 1 if head_name in LAYERED else fs.num_layers
    window = max(1, (cfg.memory_mb << 20) // 2 // frame_bytes(fs, n_layers))
    block = block_rows(fs)
    cost = block_frames(fs, block)
    return lambda gen: epoch_order(rows, gen, shuffle, block, cost, window)
