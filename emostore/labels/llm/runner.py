"""Send batches to an OpenAI-compatible chat API, validate, re-ask, cache, and stay within budget.

Flow: every manifest row with typed descriptions and an in-class vote becomes one item (its text is
"descriptions#reference distribution"); items already in the cache are served from it; the rest go
out in batches of ``batch_size`` on ``concurrency`` threads. Each response is validated per item;
valid items are cached at once, failed ones are re-asked on their own (``max_reasks`` times). HTTP
429 / 5xx / connection errors are retried with exponential backoff (``max_retries``); other HTTP
errors (bad key, unknown model) abort the run, keeping what is done. Before every request the cost
is estimated from the token usage seen so far; a request that would take the running total past
``max_cost`` is not sent, nor is anything after it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from emostore.labels.llm.cache import AnswerCache
from emostore.labels.llm.prompt import (
    DEFAULT_CLASSES,
    default_prompt,
    format_item,
    format_request,
    prompt_sha256,
    validate_response,
)
from emostore.labels.relabeled import meta_path, write_relabeling
from emostore.labels.votes import class_set, count_votes
from emostore.errors import EmostoreError

API_KEY_ENV = "OPENAI_API_KEY"
RESPONSE_FORMAT = {"type": "json_object"}
_sleep = time.sleep  # tests replace it to record the backoff delays


class LLMError(EmostoreError, ValueError):
    """A run that cannot go on (no key, key refused, unknown model...): one line for the CLI."""


@dataclass
class LLMSettings:
    model: str = "gpt-4-0125-preview"
    base_url: str | None = None
    temperature: float = 0.0
    seed: int | None = 7
    batch_size: int = 30
    concurrency: int = 4
    max_cost: float | None = None  # USD; None = no budget
    price_in: float = 0.01  # USD per 1k prompt tokens (gpt-4-0125-preview)
    price_out: float = 0.03  # USD per 1k completion tokens
    max_retries: int = 5  # per request, on 429 / 5xx / connection errors
    backoff: float = 1.0  # first retry delay in seconds; doubles each time
    max_backoff: float = 60.0
    max_reasks: int = 2  # extra requests for items whose answer was invalid
    tolerance: float = 0.05  # |sum - 1| accepted (then renormalised)
    timeout: float = 120.0  # seconds per HTTP request
    prompt: str | None = None  # None = the built-in prompt for the classes
    prompt_source: str = "builtin"

    def check(self) -> None:
        if self.batch_size < 1:
            raise LLMError("--batch-size must be at least 1")
        if self.concurrency < 1:
            raise LLMError("--concurrency must be at least 1")
        if self.max_cost is not None and self.max_cost < 0:
            raise LLMError("--max-cost must not be negative")
        if self.max_retries < 0 or self.max_reasks < 0:
            raise LLMError("retry counts must not be negative")


@dataclass
class LLMResult:
    classes: tuple[str, ...]
    rows: list[dict]  # {"id", "distribution", "reason", "source"} in manifest order
    meta: dict
    error: str | None = None


def redact_url(url: str | None) -> str | None:
    """Drop user:password@ and the query string: neither belongs in metadata."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _redact(text: str, api_key: str | None) -> str:
    if api_key:
        text = text.replace(api_key, "***")
    return re.sub(r"sk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


def _descriptions(row: dict) -> list[str]:
    desc = row.get("description") or []
    if isinstance(desc, str):
        desc = [desc]
    return [str(d) for d in desc if str(d).strip()]


class _Budget:
    """Running cost from token usage, plus reservations for requests in flight."""

    def __init__(self, settings: LLMSettings):
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


class _Fatal(Exception):
    pass


class _GaveUp(Exception):
    pass


def _retry_delay(exc, attempt: int, settings: LLMSettings) -> float:
    delay = settings.backoff * (2 ** attempt)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            delay = max(delay, float(response.headers.get("retry-after", "")))
        except ValueError:
            pass
    return min(delay, settings.max_backoff)


def _request(client, settings: LLMSettings, prompt: str, user: str, api_key: str | None, stats: dict):
    """One chat completion with retries on 429 / 5xx / connection errors: (content, usage)."""
    import openai

    kwargs = dict(
        model=settings.model,
        messages=[{"role": "system", "content": prompt}, {"role": "user", "content": user}],
        temperature=settings.temperature,
        response_format=RESPONSE_FORMAT,
    )
    if settings.seed is not None:
        kwargs["seed"] = settings.seed
    for attempt in range(settings.max_retries + 1):
        failure = None
        try:
            resp = client.chat.completions.create(**kwargs)
            content = resp.choices[0].message.content if resp.choices else None
            return content, (resp.usage if resp.usage is not None else True)
        except openai.APIStatusError as exc:
            status, failure = exc.status_code, exc
            body = exc.body if isinstance(exc.body, dict) else {}
            code = body.get("code") or (body.get("error") or {}).get("code") if body else None
            if status == 429 and code == "insufficient_quota":
                raise _Fatal("HTTP 429 insufficient_quota: the account has no credit left") from None
            if not (status in (408, 409, 429) or status >= 500):
                msg = exc.message if isinstance(exc.message, str) else str(exc)
                raise _Fatal(_redact(f"the API refused the request: HTTP {status}: {msg}", api_key)[:300]) from None
            why = f"HTTP {status}"
        except openai.APIConnectionError as exc:  # includes timeouts
            why, failure = type(exc).__name__, exc
        except (openai.APIResponseValidationError, ValueError):  # a body that is not a chat completion
            why = "an unreadable HTTP response"
        except openai.APIError as exc:
            raise _Fatal(_redact(f"API error: {exc}", api_key)[:300]) from None
        if attempt == settings.max_retries:
            raise _GaveUp(f"{why} after {settings.max_retries} retries")
        with stats["lock"]:
            stats["retries"] += 1
        _sleep(_retry_delay(failure, attempt, settings))
    raise AssertionError("unreachable")


def relabel_llm(rows: list[dict], classes: list[str] | tuple[str, ...] | None = None,
                settings: LLMSettings | None = None, cache: AnswerCache | None = None,
                api_key: str | None = None, progress: bool = False, client=None) -> LLMResult:
    """Adjusted distributions for ``rows`` (manifest dicts with ratings and descriptions).

    ``api_key`` defaults to $OPENAI_API_KEY, needed only when something must be sent.
    """
    settings = settings or LLMSettings()
    settings.check()
    cs = class_set(rows, list(classes or DEFAULT_CLASSES))
    cls = cs.classes
    prompt = settings.prompt if settings.prompt is not None else default_prompt(cls)
    psha = prompt_sha256(prompt)
    cache = cache if cache is not None else AnswerCache(None)

    # rows -> items (deduplicated by text) ------------------------------------------------------------
    out_rows: list[dict] = []
    item_rows: dict[str, list[int]] = {}
    no_reference: list[str] = []
    n_described = 0
    for row in rows:
        ref = count_votes(row, cs).shares()
        desc = _descriptions(row)
        n_described += bool(desc)
        out_rows.append({"id": str(row["id"]), "distribution": None if ref is None else [float(x) for x in ref],
                         "reason": None, "source": "reference"})
        if ref is None:
            no_reference.append(str(row["id"]))
            continue
        if desc:
            item_rows.setdefault(format_item(desc, cls, ref), []).append(len(out_rows) - 1)

    answers: dict[str, tuple[np.ndarray, str | None, str]] = {}
    for text in item_rows:
        hit = cache.get(settings.model, psha, text)
        if hit is not None:
            answers[text] = (hit[0], hit[1], "cache")
    todo = [t for t in item_rows if t not in answers]

    budget = _Budget(settings)
    stats = {"lock": threading.Lock(), "retries": 0, "reasks": 0}
    failed: dict[str, str] = {}
    attempted: set[str] = set()
    stop = threading.Event()
    errors: list[str] = []

    if todo:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV) or None
        if not api_key:
            raise LLMError(f"{API_KEY_ENV} is not set: export it to use the LLM relabeler "
                           f"(the key is read only from the environment)")
        if client is None:
            try:
                import openai
            except ImportError:
                raise LLMError("the LLM relabeler needs the openai package: pip install 'emostore[llm]'") from None
            client = openai.OpenAI(api_key=api_key, base_url=settings.base_url, max_retries=0,
                                   timeout=settings.timeout)
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="item", desc="relabel llm", disable=not progress)
        lock = threading.Lock()

        def run_batch(batch: list[str]) -> None:
            pending = list(batch)
            for round_ in range(settings.max_reasks + 1):
                if stop.is_set() or not pending:
                    return
                user = format_request(pending)
                chars = len(prompt) + len(user)
                est = budget.reserve(chars, len(pending))
                if est is None:
                    return
                usage, content = None, None
                if round_:
                    with stats["lock"]:
                        stats["reasks"] += 1
                try:
                    content, usage = _request(client, settings, prompt, user, api_key, stats)
                except _Fatal as exc:
                    with lock:
                        errors.append(str(exc))
                    stop.set()
                    return
                except _GaveUp as exc:
                    with lock:
                        for t in pending:
                            failed[t] = str(exc)
                            attempted.add(t)
                    return
                finally:
                    budget.settle(est, usage, chars, len(pending), len(content or ""))
                ok, bad = validate_response(content, len(pending), cls, settings.tolerance)
                cache.put_many(settings.model, psha, [(pending[i], d, r) for i, (d, r) in ok.items()])
                with lock:
                    for i, (d, r) in ok.items():
                        answers[pending[i]] = (d, r, "llm")
                        failed.pop(pending[i], None)
                    for i, why in bad.items():
                        failed[pending[i]] = why
                    attempted.update(pending)
                bar.update(len(ok))
                pending = [pending[i] for i in sorted(bad)]

        batches = [todo[i:i + settings.batch_size] for i in range(0, len(todo), settings.batch_size)]
        try:
            if settings.concurrency == 1:
                for b in batches:
                    run_batch(b)
            else:
                with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="relabel-llm") as pool:
                    list(pool.map(run_batch, batches))
        finally:
            bar.close()

    # results -> rows --------------------------------------------------------------------------------
    counts = {"llm": 0, "cache": 0}
    failed_ids: dict[str, str] = {}
    unsent_ids: list[str] = []
    for text, idxs in item_rows.items():
        for i in idxs:
            if text in answers:
                d, r, src = answers[text]
                out_rows[i].update(distribution=[float(x) for x in d], reason=r, source=src)
                counts[src] += 1
            elif text in attempted:
                failed_ids[out_rows[i]["id"]] = failed.get(text, "no valid answer")
            else:
                unsent_ids.append(out_rows[i]["id"])
    error = errors[0] if errors else None
    meta = {
        "kind": "relabel-llm",
        "classes": list(cls),
        "settings": {
            "model": settings.model, "base_url": redact_url(settings.base_url),
            "temperature": settings.temperature, "seed": settings.seed, "response_format": RESPONSE_FORMAT,
            "batch_size": settings.batch_size, "concurrency": settings.concurrency,
            "max_cost_usd": settings.max_cost, "price_in_per_1k": settings.price_in,
            "price_out_per_1k": settings.price_out, "max_retries": settings.max_retries,
            "max_reasks": settings.max_reasks, "tolerance": settings.tolerance,
        },
        "prompt": {"source": settings.prompt_source, "sha256": psha},
        "cache": str(cache.path) if cache.path else None,
        "counts": {
            "rows": len(rows), "with_descriptions": n_described, "no_reference": len(no_reference),
            "items": len(item_rows), "llm": counts["llm"], "cache": counts["cache"],
            "reference": sum(r["source"] == "reference" for r in out_rows),
            "failed": len(failed_ids), "unsent": len(unsent_ids),
        },
        "cost": {
            "usd": round(budget.spent, 6), "prompt_tokens": budget.prompt_tokens,
            "completion_tokens": budget.completion_tokens, "requests": budget.requests,
            "requests_without_usage": budget.requests_without_usage,
            "retries": stats["retries"], "reasks": stats["reasks"],
        },
        "budget_exhausted": budget.exhausted,
        "failed": failed_ids,
        "unsent": unsent_ids,
        "no_reference": no_reference,
        "error": error,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return LLMResult(cls, out_rows, meta, error)


def write_result(result: LLMResult, out: str | Path, manifest: dict | None = None) -> tuple[Path, Path]:
    """Rows to ``out`` and settings/counts to the sibling ``x.meta.json`` (the shared relabeling format)."""
    meta = {"manifest": manifest, **result.meta} if manifest else dict(result.meta)
    out = write_relabeling(out, result.rows, meta)
    return out, meta_path(out)
