"""What a relabeling run records beside its rows: settings (URL redacted), prompt hash, counts,
cost, and which rows failed or were never sent, and why."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

from emostore.labels.llm.transport import RESPONSE_FORMAT


def redact_url(url: str | None) -> str | None:
    """Drop user:password@ and the query string: neither belongs in metadata."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def settings_meta(settings) -> dict:
    return {
        "model": settings.model, "base_url": redact_url(settings.base_url),
        "temperature": settings.temperature, "seed": settings.seed, "response_format": RESPONSE_FORMAT,
        "batch_size": settings.batch_size, "concurrency": settings.concurrency,
        "max_cost_usd": settings.max_cost, "price_in_per_1k": settings.price_in,
        "price_out_per_1k": settings.price_out, "max_retries": settings.max_retries,
        "max_reasks": settings.max_reasks, "tolerance": settings.tolerance,
    }


def run_meta(classes, settings, prompt_sha: str, cache, n_rows: int, items, outcome, budget, stats: dict,
             error: str | None) -> dict:
    """The metadata of one run (``items``: :class:`~.items.Items`, ``outcome``: :class:`~.items.Outcome`)."""
    return {
        "kind": "relabel-llm",
        "classes": list(classes),
        "settings": settings_meta(settings),
        "prompt": {"preset": settings.prompt_preset, "source": settings.prompt_source, "sha256": prompt_sha},
        "cache": str(cache.path) if cache.path else None,
        "counts": {
            "rows": n_rows, "with_descriptions": items.n_described, "no_reference": len(items.no_reference),
            "items": len(items.rows_of), "llm": outcome.counts["llm"], "cache": outcome.counts["cache"],
            "reference": sum(r["source"] == "reference" for r in items.out_rows),
            "failed": len(outcome.failed_ids), "unsent": len(outcome.unsent_ids),
        },
        "cost": {
            "usd": round(budget.spent, 6), "prompt_tokens": budget.prompt_tokens,
            "completion_tokens": budget.completion_tokens, "requests": budget.requests,
            "requests_without_usage": budget.requests_without_usage,
            "retries": stats["retries"], "reasks": stats["reasks"],
        },
        "budget_exhausted": budget.exhausted,
        "failed": outcome.failed_ids,
        "unsent": outcome.unsent_ids,
        "no_reference": items.no_reference,
        "error": error,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
