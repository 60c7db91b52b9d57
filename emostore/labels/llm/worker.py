"""Batches of items sent on a thread pool: each answer validated per item, valid items cached at
once, invalid ones re-asked on their own (``max_reasks`` times); a fatal API error stops all."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from emostore.labels.llm.budget import Budget
from emostore.labels.llm.prompt import format_request, validate_response
from emostore.labels.llm.transport import Fatal, GaveUp, request


class Worker:
    """Shared state of one run's requests: answers, failures, what was attempted, budget, stats."""

    def __init__(self, client, settings, prompt: str, prompt_sha: str, classes, cache, api_key: str | None,
                 answers: dict, bar=None, sleep=time.sleep):
        self.client, self.settings, self.prompt, self.psha = client, settings, prompt, prompt_sha
        self.classes, self.cache, self.api_key, self.bar, self.sleep = classes, cache, api_key, bar, sleep
        self.answers = answers  # text -> (distribution, reason, source)
        self.failed: dict[str, str] = {}  # text -> why
        self.attempted: set[str] = set()
        self.errors: list[str] = []  # fatal errors; the first one ends the run
        self.budget = Budget(settings)
        self.stats = {"lock": threading.Lock(), "retries": 0, "reasks": 0}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self, todo: list[str]) -> None:
        """Send ``todo`` in batches of ``batch_size`` on ``concurrency`` threads."""
        size = self.settings.batch_size
        batches = [todo[i:i + size] for i in range(0, len(todo), size)]
        if self.settings.concurrency == 1:
            for b in batches:
                self.batch(b)
        else:
            with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="relabel-llm") as pool:
                list(pool.map(self.batch, batches))

    def batch(self, batch: list[str]) -> None:
        """One batch: ask, keep the valid answers, re-ask the invalid items until none or no re-asks left."""
        settings, budget, stats = self.settings, self.budget, self.stats
        pending = list(batch)
        for round_ in range(settings.max_reasks + 1):
            if self.stop.is_set() or not pending:
                return
            user = format_request(pending)
            chars = len(self.prompt) + len(user)
            est = budget.reserve(chars, len(pending))
            if est is None:
                return
            usage, content = None, None
            if round_:
                with stats["lock"]:
                    stats["reasks"] += 1
            try:
                content, usage = request(self.client, settings, self.prompt, user, self.api_key, stats, self.sleep)
            except Fatal as exc:
                with self.lock:
                    self.errors.append(str(exc))
                self.stop.set()
                return
            except GaveUp as exc:
                with self.lock:
                    for t in pending:
                        self.failed[t] = str(exc)
                        self.attempted.add(t)
                return
            finally:
                budget.settle(est, usage, chars, len(pending), len(content or ""))
            ok, bad = validate_response(content, len(pending), self.classes, settings.tolerance)
            self.cache.put_many(settings.model, self.psha, [(pending[i], d, r) for i, (d, r) in ok.items()])
            with self.lock:
                for i, (d, r) in ok.items():
                    self.answers[pending[i]] = (d, r, "llm")
                    self.failed.pop(pending[i], None)
                for i, why in bad.items():
                    self.failed[pending[i]] = why
                self.attempted.update(pending)
            if self.bar is not None:
                self.bar.update(len(ok))
            pending = [pending[i] for i in sorted(bad)]
