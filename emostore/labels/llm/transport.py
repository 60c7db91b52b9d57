"""One chat-completion request, retried with exponential backoff on 429 / 5xx / connection errors.

Other HTTP errors (bad key, unknown model, no credit) are :class:`Fatal`: the run stops. A request
still failing after ``max_retries`` retries is :class:`GaveUp`: its items fail, the run goes on.
"""

from __future__ import annotations

import re
import time

RESPONSE_FORMAT = {"type": "json_object"}


class Fatal(Exception):
    """The API refused in a way retrying cannot fix; the run stops."""


class GaveUp(Exception):
    """Retries ran out for this request."""


def redact(text: str, api_key: str | None) -> str:
    """``text`` without the API key or anything that looks like one."""
    if api_key:
        text = text.replace(api_key, "***")
    return re.sub(r"sk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


def retry_delay(exc, attempt: int, settings) -> float:
    """``backoff * 2^attempt`` (or the server's retry-after, if longer), at most ``max_backoff``."""
    delay = settings.backoff * (2 ** attempt)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            delay = max(delay, float(response.headers.get("retry-after", "")))
        except ValueError:
            pass
    return min(delay, settings.max_backoff)


def request(client, settings, prompt: str, user: str, api_key: str | None, stats: dict, sleep=time.sleep):
    """One chat completion with retries on 429 / 5xx / connection errors: (content, usage).

    ``usage`` is True when the server sent none. ``stats["retries"]`` counts retries (under
    ``stats["lock"]``); ``sleep`` waits between them.
    """
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
                raise Fatal("HTTP 429 insufficient_quota: the account has no credit left") from None
            if not (status in (408, 409, 429) or status >= 500):
                msg = exc.message if isinstance(exc.message, str) else str(exc)
                raise Fatal(redact(f"the API refused the request: HTTP {status}: {msg}", api_key)[:300]) from None
            why = f"HTTP {status}"
        except openai.APIConnectionError as exc:  # includes timeouts
            why, failure = type(exc).__name__, exc
        except (openai.APIResponseValidationError, ValueError):  # a body that is not a chat completion
            why = "an unreadable HTTP response"
        except openai.APIError as exc:
            raise Fatal(redact(f"API error: {exc}", api_key)[:300]) from None
        if attempt == settings.max_retries:
            raise GaveUp(f"{why} after {settings.max_retries} retries")
        with stats["lock"]:
            stats["retries"] += 1
        sleep(retry_delay(failure, attempt, settings))
    raise AssertionError("unreachable")
