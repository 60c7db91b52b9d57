"""Partitions: named folds of ``{train, dev, test}`` utterance ids, made by a rule from a manifest.

The file holds the folds only (:mod:`.io`); metadata (rule, corpus, seed, class-map version,
``speaker_independent``, manifest sha256, what each fold tests on, rows left out and why) goes to
the sibling ``NAME.meta.json``.

Rules (one module each under :mod:`.rules`, registered by name in :mod:`.registry`; see
docs/partitions.md for the tables and the reasoning):

* ``emo-superb`` — EMO-SUPERB's published splits (its ``labels_consensus_<k>.csv`` files; shipped
  for IEMOCAP, CREMA-D, MSP-IMPROV, NNIME, MSP-Podcast from a checkout with ``source_dir``).
* ``emo-superb-paper`` — the session tables the EMO-SUPERB paper prints, and the official MSP-Podcast
  sets. IEMOCAP fold 5 trains on sessions 1, 2, 5 (the paper prints 1, 2, 4, which contains fold 5's
  own test session 4; the rotation and the leakage rule both give 1, 2, 5).
* ``emobox`` — EmoBox's published fold lists (the protocol of its Table 4; :mod:`.rules.emobox_published`).
* ``emobox-rule`` (:func:`emobox_rule`) — the speaker rules EmoBox's paper states, over any manifest
  (official split if the rows carry ``split``; otherwise by speaker count), 20% of each fold's
  training part held out as dev.
* ``official`` — only the corpus's official train/dev/test split.

:func:`check_leakage` (:mod:`.leakage`) refuses a speaker-independent partition whose train/dev
speakers reappear in its test part, an id listed twice in a fold, or an id the manifest does not
have. The dev hold-out the rules share is in :mod:`.holdout`.
"""

from emostore.manifests.partitions.io import (
    FORMAT, PARTS, Partition, PartitionError, meta_path, read_partition, write_partition,
)
from emostore.manifests.partitions.leakage import check_leakage
from emostore.manifests.partitions.registry import make_partition, normalise_corpus, register_rule, rule_names
from emostore.manifests.partitions.rules.emo_superb import emo_superb
from emostore.manifests.partitions.rules.emo_superb_paper import emo_superb_paper
from emostore.manifests.partitions.rules.emobox_stated import emobox_rule
from emostore.manifests.partitions.rules.official import official

RULES = rule_names()  # every rule the modules of .rules register, alphabetically

__all__ = ["FORMAT", "PARTS", "RULES", "Partition", "PartitionError", "check_leakage", "emo_superb", "emo_superb_paper",
           "emobox_rule",
           "make_partition", "meta_path", "normalise_corpus", "official", "read_partition", "register_rule",
           "rule_names", "write_partition"]
