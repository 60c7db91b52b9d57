"""Test hook: die, as if SIGKILLed, just before a chosen store write (tests/test_kill_points.py).

With ``EMOSTORE_TEST_KILL_AT=n`` in the environment, the n-th object the store writer stores (a
chunk or a ``zarr.json``, counted over the process) is not written: the process exits at once
with status 137, skipping every cleanup, as a SIGKILL or power loss would. Unset, nothing is
wrapped and nothing is counted.
"""

from __future__ import annotations

import os

from zarr.storage import WrapperStore

KILL_AT_ENV = "EMOSTORE_TEST_KILL_AT"
KILLED_EXIT = 137  # what a shell reports for a SIGKILLed process


class KillBeforeWrite(WrapperStore):
    writes = 0  # stores counted so far in this process

    def __init__(self, store, kill_at: int):
        super().__init__(store)
        self.kill_at = kill_at

    async def set(self, key, value):
        KillBeforeWrite.writes += 1
        if KillBeforeWrite.writes >= self.kill_at:
            os._exit(KILLED_EXIT)
        return await self._store.set(key, value)


def wrap(store):
    """``store`` itself, or wrapped to die before the n-th write when the hook is set."""
    n = os.environ.get(KILL_AT_ENV)
    return KillBeforeWrite(store, int(n)) if n else store
