"""Corpus adapters (importing this package registers every adapter module listed here)."""

import importlib

_MODULES = ("emodb", "crema_d", "ravdess", "generic", "iemocap", "msp_improv", "msp_podcast", "nnime")  # adapter modules, e.g. ("emodb", "crema_d"); each registers itself on import

for _m in _MODULES:
    importlib.import_module(f"emostore.manifests.adapters.{_m}")
