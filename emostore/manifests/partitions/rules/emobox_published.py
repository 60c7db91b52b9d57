"""``emobox``: EmoBox's published fold lists (the protocol of its Table 4), via :mod:`emostore.manifests.emobox_published`.

Train and test exactly as published; dev is EmoBox's published valid list or its recipe's 20 %
split of train (seed 1993 unless given). Options: ``source_dir`` (read the lists from an EmoBox
checkout instead of the shipped copy), ``allow_mismatch`` (published ids the manifest lacks are
dropped and counted), ``allow_extra`` (manifest rows no list names are left out and counted).
Corpora without published lists: the paper's stated rule is ``emobox-rule``.
"""

from __future__ import annotations

from emostore.manifests.partitions.io import Partition
from emostore.manifests.partitions.registry import register_rule


@register_rule("emobox", default_seed=1993, options=("source_dir", "allow_mismatch", "allow_extra"))
def _make(corpus: str, rows: list[dict], seed: int, source_dir=None, allow_mismatch: bool = False,
          allow_extra: bool = False) -> Partition:
    from emostore.manifests import emobox_published as published

    folds, meta = published.build_folds(corpus, rows, emobox_dir=source_dir, seed=seed,
                                        allow_mismatch=allow_mismatch, allow_extra=allow_extra)
    return Partition(folds, meta)
