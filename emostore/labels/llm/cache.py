"""On-disk cache of validated LLM answers, keyed by (model, prompt sha256, item text).

SQLite, one row per answered item, committed as soon as a response is validated: a re-run, or a
run resumed after a crash or a spent budget, never pays twice for an item. Only answers are kept
(distribution, reason, model, prompt hash, item text); no credentials and no request settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "emostore" / "relabel-llm.sqlite"


def cache_key(model: str, prompt_sha: str, item: str) -> str:
    return hashlib.sha256(json.dumps([model, prompt_sha, item]).encode("utf-8")).hexdigest()


class AnswerCache:
    """Thread-safe get/put; ``path=None`` keeps it in memory (nothing on disk)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, prompt_sha256 TEXT, "
                "item TEXT, distribution TEXT, reason TEXT, created REAL)"
            )

    def get(self, model: str, prompt_sha: str, item: str) -> tuple[np.ndarray, str | None] | None:
        with self._lock:
            row = self._db.execute("SELECT distribution, reason FROM answers WHERE key = ?",
                                   (cache_key(model, prompt_sha, item),)).fetchone()
        if row is None:
            return None
        return np.asarray(json.loads(row[0]), dtype=np.float64), row[1]

    def put_many(self, model: str, prompt_sha: str, answers: list[tuple[str, np.ndarray, str | None]]) -> None:
        now = time.time()
        rows = [(cache_key(model, prompt_sha, item), model, prompt_sha, item,
                 json.dumps([float(x) for x in dist]), reason, now) for item, dist, reason in answers]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
