"""``official``: only the corpus's official train/dev/test split, as one fold named ``official``.

The rows' ``split`` column names the set (train/dev/test and their usual spellings); rows of other
sets (e.g. MSP-Podcast's Test2) are left out and counted. Without an official dev set, 20% of train
is held out (speaker-disjoint when possible). The EMO-SUPERB rule (MSP-Podcast) and the EmoBox rule
(any manifest with ``split``) use the same fold.
"""

from __future__ import annotations

from collections import Counter

from emostore.manifests.partitions.holdout import hold_out_dev
from emostore.manifests.partitions.io import PARTS, Partition, PartitionError
from emostore.manifests.partitions.leakage import leaks, rows_of
from emostore.manifests.partitions.registry import register_rule

SPLIT_NAMES = {
    "train": "train", "training": "train", "tr": "train",
    "dev": "dev", "development": "dev", "devel": "dev", "valid": "dev", "validation": "dev", "val": "dev",
    "test": "test", "test1": "test", "testing": "test",
}


def official_fold(corpus: str, rows: list[dict], seed: int) -> tuple[dict, dict]:
    """(folds, meta) of the official split: ``{"official": {train, dev, test}}``."""
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    excluded: Counter = Counter()
    any_split = False
    for r in rows:
        raw = r.get("split")
        if raw is None or str(raw).strip() == "":
            # e.g. MSP-Podcast's Test2/Test3: split None, the raw set name in `split_set`
            other = r.get("split_set")
            excluded[f"split {str(other).strip()!r}" if other else "no split"] += 1
            continue
        any_split = True
        p = SPLIT_NAMES.get(str(raw).strip().lower())
        if p is None:
            excluded[f"split {str(raw).strip()!r}"] += 1
            continue
        parts[p].append(str(r["id"]))
    if not any_split:
        raise PartitionError(f"{corpus}: the manifest's rows carry no official `split` column")
    if not parts["train"] or not parts["test"]:
        raise PartitionError(f"{corpus}: the official split needs train and test rows "
                             f"(train {len(parts['train'])}, test {len(parts['test'])})")
    by_id = {str(r["id"]): r for r in rows}
    info: dict = {"test": "official test set", "dev_method": "official"}
    if not parts["dev"]:
        parts["train"], parts["dev"], info = hold_out_dev(
            parts["train"], by_id, seed, "official", speaker_disjoint=True)
        info = {"test": "official test set", **info, "dev_note": "no official dev set: held out 20% of train"}
    meta = {"excluded": dict(excluded)} if excluded else {}
    folds = {"official": parts}
    meta["speaker_independent"] = not leaks(folds, rows)
    if not meta["speaker_independent"]:
        meta["note"] = "the official split shares speakers between train/dev and test"
    meta["folds"] = {"official": info}
    return folds, meta


def official(rows, corpus: str | None = None, seed: int = 0) -> Partition:
    """The corpus's official split only, as one fold named ``official``."""
    rows = rows_of(rows)
    folds, meta = official_fold(corpus or "corpus", rows, seed)
    return Partition(folds, {"rule": "official", "corpus": corpus, "seed": seed, **meta})


@register_rule("official")
def _make(corpus: str, rows: list[dict], seed: int) -> Partition:
    return official(rows, corpus=corpus, seed=seed)
