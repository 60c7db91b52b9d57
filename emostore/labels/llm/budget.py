"""The cost budget: spend from the token usage the server reports, plus reservations in flight.

Before every request the cost is estimated from the usage seen so far (0.25 tokens per character
and 80 completion tokens per item before any); a request that would take the running total past
``max_cost`` is not sent, nor is anything after it.
"""

from __future__ import annotations

import threading


class Budget:
    """Running cost from token usage, plus reservations for requests in flight."""

    def __init__(self, settings):
        self.max_cost = settings.max_cost
        self.price_in, self.price_out = settings.price_in, settings.price_out
        self.lock = threading.Lock()
        self.spent = self.reserved = 0.0
        self.prompt_tokens = self.completion_tokens = 0
        self.chars_sent = self.items_answered = 0
        self.requests = self.requests_without_usage = 0
        self.exhausted = False

    def estimate(self, chars: int, n_items: int) -> float:
        per_char = self.prompt_tokens / self.chars_sent if self.chars_sent else 0.25
        per_item = self.completion_tokens / self.items_answered if self.items_answered else 80.0
        return (chars * per_char * self.price_in + n_items * per_item * self.price_out) / 1000

    def reserve(self, chars: int, n_items: int) -> float | None:
        with self.lock:
            if self.exhausted:
                return None
            est = self.estimate(chars, n_items)
            if self.max_cost is not None and self.spent + self.reserved + est > self.max_cost + 1e-12:
                self.exhausted = True
                return None
            self.reserved += est
            return est

    def settle(self, est: float, usage, chars: int, n_items: int, out_chars: int) -> None:
        with self.lock:
            self.reserved -= est
            if usage is None:  # the request failed: nothing billed
                return
            self.requests += 1
            pt = getattr(usage, "prompt_tokens", None) if not isinstance(usage, bool) else None
            ct = getattr(usage, "completion_tokens", None) if not isinstance(usage, bool) else None
            if pt is None or ct is None:  # server sent no usage: estimate from characters
                self.requests_without_usage += 1
                pt, ct = -(-chars // 4), -(-out_chars // 4)
            self.prompt_tokens += int(pt)
            self.completion_tokens += int(ct)
            self.chars_sent += chars
            self.items_answered += n_items
            self.spent += (int(pt) * self.price_in + int(ct) * self.price_out) / 1000
