"""The heads' registry names and what each reads, without torch.

The CLI's ``--head`` choice, a sweep's expansion and the settings check read these, so parsing
``emostore train`` / ``sweep`` options imports no torch; :mod:`emostore.heads.heads` maps each
name to its class (tests/test_sweep_cli.py holds the two to the same names).
"""

from __future__ import annotations

from emostore.errors import EmostoreError

HEAD_NAMES = ("weighted-sum", "emobox", "ar-mlp", "probe")
LAYERED = ("emobox", "ar-mlp", "probe")  # heads reading one chosen layer (the others read every layer)


class HeadError(EmostoreError, ValueError):
    """A head was asked for with impossible settings."""
