"""Partition rules, one module each (importing this package registers every module listed here)."""

import importlib

_MODULES = ("emo_superb", "emo_superb_paper", "emobox_published", "emobox_stated", "official")

for _m in _MODULES:
    importlib.import_module(f"emostore.manifests.partitions.rules.{_m}")
