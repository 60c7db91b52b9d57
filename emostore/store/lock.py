"""The one-writer rule for a store (and a sweep folder): a second writer must not write while one runs.

Local folder: an exclusive ``flock`` on ``STORE/.lock`` (released by the kernel when the process
dies). Object storage has no flock, so the lock there is a lease object ``STORE/.lock``: it is
created only if absent (a conditional PUT, ``If-None-Match: *`` on S3), names its owner and is
renewed by a heartbeat thread every ``ttl / 4`` seconds. A lock whose heartbeat is older than
its ``ttl`` belonged to a coordinator that died; the next extraction deletes and re-creates it.
The holder re-reads the object at every heartbeat and before every commit, and stops with an
error if the lock is no longer its own. Both name their holder (host:pid) to the writer refused.
``what`` names the writer in messages: an extraction for a store, a sweep for a sweep folder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from emostore.store import urls
from emostore.store.writer import StoreError

LOCK_NAME = ".lock"
DEFAULT_TTL = 60.0


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _taken(folder, what: str) -> str:
    """``STORE: another extraction is writing this store`` (or ``sweep`` / ``sweep folder``)."""
    noun = "sweep folder" if what == "sweep" else "store"
    return f"{folder}: another {what} is writing this {noun}"


class FileLock:
    """flock on a local file holding its owner; ``check`` has nothing to do (the kernel keeps it ours)."""

    def __init__(self, folder, what: str = "extraction"):
        import fcntl

        path = urls.local_path(folder) / LOCK_NAME
        self._fh = open(path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "?"
            self._fh.close()
            raise StoreError(f"{_taken(folder, what)} (lock {path} held by {holder})") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{_owner()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._fh.flush()

    def check(self) -> None:
        pass

    def close(self) -> None:
        """Empty the holder line (still under the flock, so no waiter reads half of it), then release:
        a finished store's bytes do not depend on when it was written."""
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.close()


class LeaseLock:
    """A lease object in a bucket (see the module docstring)."""

    def __init__(self, store: str, ttl: float = DEFAULT_TTL, what: str = "extraction"):
        self.fs, root = urls.filesystem(store)
        self.key = f"{root}/{LOCK_NAME}"
        self.store, self.ttl, self.what = store, float(ttl), what
        self.owner = f"{_owner()}:{uuid.uuid4().hex[:12]}"
        self.lost: str | None = None
        self._stop = threading.Event()
        self._acquire()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="emostore-lock")
        self._thread.start()

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "heartbeat": time.time(), "ttl": self.ttl}).encode()

    def _read(self) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.key))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign object: treat as held, never as ours
            return {"owner": "?", "heartbeat": time.time(), "ttl": self.ttl}

    def _acquire(self) -> None:
        for _ in range(2):
            try:
                self.fs.pipe_file(self.key, self._body(), mode="create")
                return
            except FileExistsError:
                held = self._read()
                if held is None:
                    continue
                age = time.time() - float(held.get("heartbeat", 0))
                if age <= float(held.get("ttl", DEFAULT_TTL)):
                    raise StoreError(
                        f"{_taken(self.store, self.what)} (lock {LOCK_NAME} held by "
                        f"{held.get('owner')}, heartbeat {age:.0f} s ago; a dead holder's lock expires after "
                        f"{float(held.get('ttl', DEFAULT_TTL)):.0f} s)") from None
                self.fs.rm_file(self.key)  # the holder died: its lease ran out
        raise StoreError(f"{self.store}: could not take the lock {LOCK_NAME} (another {self.what} raced for it)")

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                held = self._read()
                if not held or held.get("owner") != self.owner:
                    self.lost = f"held by {held.get('owner') if held else 'nobody'}"
                    return
                self.fs.pipe_file(self.key, self._body())
            except Exception as exc:  # noqa: BLE001 - a failed renewal is reported at the next check
                self.lost = f"renewal failed: {type(exc).__name__}: {exc}"
                return

    def check(self) -> None:
        """Raise if the lease was lost (taken over after a missed heartbeat); called before commits."""
        if self.lost is None:
            held = self._read()
            if not held or held.get("owner") != self.owner:
                self.lost = f"held by {held.get('owner') if held else 'nobody'}"
        if self.lost is not None:
            raise StoreError(f"{self.store}: this {self.what} lost its lock ({self.lost}); stopping before it "
                             "writes again")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        held = self._read()
        if held and held.get("owner") == self.owner:
            self.fs.rm_file(self.key)


def lock_store(store, ttl: float = DEFAULT_TTL, what: str = "extraction"):
    """Take the writer lock of a store or sweep folder (flock locally, a lease object on object storage)."""
    if urls.local_path(store) is not None:
        return FileLock(store, what)
    return LeaseLock(urls.normalise(store), ttl, what)
