"""Send batches to an OpenAI-compatible chat API, validate, re-ask, cache, and stay within budget.

Flow: every manifest row with typed descriptions and an in-class vote becomes one item (its text is
"descriptions#reference distribution", :mod:`.items`); items already in the cache are served from
it; the rest go out in batches of ``batch_size`` on ``concurrency`` threads (:mod:`.worker`). Each
response is validated per item; valid items are cached at once, failed ones are re-asked on their
own (``max_reasks`` times). HTTP 429 / 5xx / connection errors are retried with exponential backoff
(``max_retries``, :mod:`.transport`); other HTTP errors (bad key, unknown model) abort the run,
keeping what is done. Before every request the cost is estimated from the token usage seen so far
(:mod:`.budget`); a request that would take the running total past ``max_cost`` is not sent, nor is
anything after it. What the run did is recorded by :mod:`.meta`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from emostore.errors import EmostoreError
from emostore.labels.llm.cache import AnswerCache
from emostore.labels.llm.items import apply_answers, build_items, cached_answers
from emostore.labels.llm.meta import run_meta
from emostore.labels.llm.prompt import DEFAULT_CLASSES, preset, prompt_sha256
from emostore.labels.llm.worker import Worker
from emostore.labels.relabeled import meta_path, write_relabeling
from emostore.labels.votes import class_set

API_KEY_ENV = "OPENAI_API_KEY"
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
    prompt: str | None = None  # None = the preset's prompt for the classes
    prompt_source: str = "builtin"
    prompt_preset: str = "emostore"  # prompt.PRESETS: the prompt (unless `prompt` is given) and the item form

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


def _api_key(api_key: str | None) -> str:
    """The key given, else $OPENAI_API_KEY; an LLMError when there is none."""
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    if not api_key:
        raise LLMError(f"{API_KEY_ENV} is not set: export it to use the LLM relabeler "
                       f"(the key is read only from the environment)")
    return api_key


def _client(settings: LLMSettings, api_key: str):
    """An OpenAI client for ``settings`` (no retries of its own: :mod:`.transport` retries)."""
    try:
        import openai
    except ImportError:
        raise LLMError("the LLM relabeler needs the openai package: pip install 'emostore[llm]'") from None
    return openai.OpenAI(api_key=api_key, base_url=settings.base_url, max_retries=0, timeout=settings.timeout)


def relabel_llm(rows: list[dict], classes: list[str] | tuple[str, ...] | None = None,
                settings: LLMSettings | None = None, cache: AnswerCache | None = None,
                api_key: str | None = None, progress=None, client=None) -> LLMResult:
    """Adjusted distributions for ``rows`` (manifest dicts with ratings and descriptions).

    ``api_key`` defaults to $OPENAI_API_KEY, needed only when something must be sent. ``progress``:
    a :class:`~emostore.progress.Progress` factory, one unit per item sent (default: quiet).
    """
    settings = settings or LLMSettings()
    settings.check()
    cs = class_set(rows, list(classes or DEFAULT_CLASSES))
    cls = cs.classes
    spec = preset(settings.prompt_preset)
    prompt = settings.prompt if settings.prompt is not None else spec.prompt(cls)
    psha = prompt_sha256(prompt)
    cache = cache if cache is not None else AnswerCache(None)

    items = build_items(rows, cs, spec.format_item)
    answers = cached_answers(items, cache, settings.model, psha)
    todo = [t for t in items.rows_of if t not in answers]
    worker = Worker(client, settings, prompt, psha, cls, cache, api_key, answers, sleep=_sleep)
    if todo:
        worker.api_key = _api_key(api_key)
        if client is None:
            worker.client = _client(settings, worker.api_key)
        from emostore.progress import as_factory

        worker.bar = as_factory(progress)(len(todo), "relabel llm", "item")
        try:
            worker.run(todo)
        finally:
            worker.bar.close()

    outcome = apply_answers(items, answers, worker.attempted, worker.failed)
    error = worker.errors[0] if worker.errors else None
    meta = run_meta(cls, settings, psha, cache, len(rows), items, outcome, worker.budget, worker.stats, error)
    return LLMResult(cls, items.out_rows, meta, error)


def write_result(result: LLMResult, out: str | Path, manifest: dict | None = None) -> tuple[Path, Path]:
    """Rows to ``out`` and settings/counts to the sibling ``x.meta.json`` (the shared relabeling format)."""
    meta = {"manifest": manifest, **result.meta} if manifest else dict(result.meta)
    out = write_relabeling(out, result.rows, meta)
    return out, meta_path(out)
