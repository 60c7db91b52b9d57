"""The package's one exception base: an ``EmostoreError`` is a problem the user can fix.

Every room's own error (``StoreError``, ``ManifestError``, ``TrainError``...) derives from it, so
the ``emostore`` command prints those as one line and lets anything else, a bug, keep its traceback.
Most also derive from ``ValueError``, which callers catching that keep working with.
"""

from __future__ import annotations


class EmostoreError(Exception):
    """A user-fixable problem; the message names the bad thing (file, option, value)."""

    def __str__(self) -> str:
        # A KeyError subclass would print its message quoted; the one-line message is the point.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()
