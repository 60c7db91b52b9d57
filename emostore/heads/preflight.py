"""A run's inputs checked before anything is written and before any feature array is read.

Everything that the store's attributes and small arrays (ids, done), the label set and the
partition can answer is checked up front, for all runs at once: the settings and the device, the
layer against the store's layers, the fold's ids against the label set and the store, the label
set's class count against its targets, and that the head's features exist in the store. So
``train --layer 7`` or a label set that does not cover the fold is one line before a run folder
(or its TensorBoard log) exists, and a sweep with one such run trains none of them.
"""

from __future__ import annotations

from emostore.errors import EmostoreError
from emostore.heads.config import TrainConfig, TrainError


def check_inputs(store: str, labels: str, partition: str, cfg: TrainConfig, allow_overlap: bool = False,
                 _cache: dict | None = None) -> None:
    """Raise the error training ``cfg`` on these inputs would stop with, if it can be known now.

    ``_cache`` (a dict the caller keeps): opened stores and read files shared across calls.
    """
    from emostore.heads.config import check
    from emostore.heads.data import choose_features, load_fold
    from emostore.heads.names import layer_position
    from emostore.labels.aggregate import read_label_set
    from emostore.manifests.partitions import read_partition
    from emostore.store.reader import open as open_store

    cache = {} if _cache is None else _cache

    def once(kind, path, read):
        if (kind, path) not in cache:
            cache[(kind, path)] = read(path)
        return cache[(kind, path)]

    check(cfg)
    fs = once("store", store, open_store)
    records, meta = once("labels", labels, read_label_set)
    part = once("partition", partition, read_partition)
    choose_features(cfg.head, cfg.features, fs)
    if cfg.head != "weighted-sum":
        layer_position(fs.layers, cfg.layer)
    fold_key = ("fold", store, labels, partition, cfg.fold, cfg.valid_fraction,
                cfg.seed if cfg.valid_fraction else None, allow_overlap)
    if fold_key not in cache:
        data = load_fold(fs, records, part, cfg.fold, cfg.valid_fraction, cfg.seed, allow_overlap)
        width, classes = data.targets["train"].shape[1], meta.get("classes")
        if classes and width != len(classes):
            raise TrainError(f"{labels}: the targets have {width} classes, the label set names "
                             f"{len(classes)} ({', '.join(classes)})")
        cache[fold_key] = True


def check_runs(runs, allow_overlap: bool = False) -> None:
    """:func:`check_inputs` for every run (``.store``, ``.labels``, ``.partition``, ``.config``,
    ``.run_id``); one :class:`TrainError` naming how many cannot start and the first of them."""
    cache: dict = {}
    bad = []
    for r in runs:
        try:
            check_inputs(r.store, r.labels, r.partition, r.config, allow_overlap, cache)
        except EmostoreError as exc:
            bad.append(f"run {r.run_id}: {exc}")
    if bad:
        raise TrainError(f"{len(bad)} of {len(runs)} runs cannot start, nothing was trained; first: {bad[0]}")
