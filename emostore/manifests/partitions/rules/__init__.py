"""Partition rules, one module each (importing this package registers every module listed here)."""

import importlib

_MODULES = ("emo_superb", "emobox", "emobox_lists", "official")

for _m in _MODULES:
    importlib.import_module(f"emostore.manifests.partitions.rules.{_m}")
