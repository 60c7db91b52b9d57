"""The system prompt, the "descriptions#distribution|..." request format, and response validation.

EMO-SUPERB (Wu et al., 2024) sends GPT-4 batches of utterances, each as its annotators' typed
descriptions plus the reference distribution of votes, and asks for an adjusted distribution and a
short reason per item, keyed by item index. Two prompt presets (:data:`PRESETS`, CLI ``--prompt``):

* ``emostore`` (default): our own wording of the paper's five parts, for any class set; items
  ``desc one; desc two#angry:0.5,sad:0.5,...``.
* ``emo-superb``: EMO-SUPERB's published ``chatGPT/Prompt.txt`` byte for byte (shipped in
  ``prompts/``, MIT) and its item form ``Concerned,Interest#0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0``
  (descriptions joined by commas, the reference as bare numbers in the prompt's class order),
  30 items per request, joined by ``|``; only for EMO-SUPERB's 8 classes in that order.

``--prompt-file`` substitutes any other system prompt (items keep the preset's form).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Callable

import numpy as np

from emostore.labels.relabeled import RelabelingError
from emostore.labels.votes import EMO_SUPERB_CLASSES as DEFAULT_CLASSES
from emostore.errors import EmostoreError

ITEM_SEP = "|"
FIELD_SEP = "#"
DESC_JOIN = "; "


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x else "0"


def format_distribution(classes: tuple[str, ...], dist) -> str:
    """``angry:0.5,sad:0,...`` in class order (3 decimals, trailing zeros dropped)."""
    return ",".join(f"{c}:{_fmt(float(p))}" for c, p in zip(classes, dist))


def clean_description(text: str) -> str:
    """One line without the two separators, so a description can never split an item."""
    text = re.sub(r"[|#]", "/", str(text))
    return re.sub(r"\s+", " ", text).strip()


def format_item(descriptions: list[str], classes: tuple[str, ...], reference) -> str:
    """One item: ``desc one; desc two#angry:0.5,sad:0.5,...``; this text is also the cache key."""
    desc = DESC_JOIN.join(d for d in (clean_description(x) for x in descriptions) if d)
    return f"{desc}{FIELD_SEP}{format_distribution(classes, reference)}"


def format_request(items: list[str]) -> str:
    return ITEM_SEP.join(items)


def default_prompt(classes: tuple[str, ...] = DEFAULT_CLASSES) -> str:
    """Objective, input format, one worked example, output format, rules (the paper's five parts)."""
    if len(classes) < 2:
        raise RelabelingError("the LLM relabeler needs at least two classes")
    c0, c1 = classes[0], classes[1]
    n = len(classes)
    ref = {c: 0.0 for c in classes} | {c0: 0.5, c1: 0.5}
    ref2 = {c: 0.0 for c in classes} | {c0: 1.0}
    out0 = {c: 0.0 for c in classes} | {c0: 0.4, c1: 0.6}
    out1 = {c: 0.0 for c in classes} | {c0: 1.0}
    example_in = format_request([
        f"the speaker sounds {c1}, voice low and tense; mostly {c1} with a little {c0}"
        f"{FIELD_SEP}{format_distribution(classes, ref.values())}",
        f"clearly {c0} throughout{FIELD_SEP}{format_distribution(classes, ref2.values())}",
    ])
    example_out = json.dumps({
        "0": out0 | {"reason": f"Votes split evenly, but both descriptions clearly stress {c1}, so {c1} gains some weight over {c0}."},
        "1": out1 | {"reason": f"Votes and the typed description agree completely that the speaker is {c0}, so the distribution stays unchanged."},
    })
    keys = ", ".join(f'"{c}"' for c in classes)
    return f"""\
# Objective
You are an expert annotator of emotion in speech. Listeners heard each utterance, voted for one or \
more of {n} emotion classes ({", ".join(classes)}), and typed free-text descriptions of what they \
heard. For every item, combine the reference distribution of votes with the typed descriptions into \
one adjusted emotion distribution over the {n} classes, and give a short reason.

# Input format
Items are separated by "{ITEM_SEP}". Each item is "descriptions{FIELD_SEP}reference distribution": \
the typed descriptions (several descriptions joined by "{DESC_JOIN.strip()}"), then "{FIELD_SEP}", \
then the reference distribution as class:share pairs separated by commas. Items are numbered from \
0 in the order given.

# Example
Input:
{example_in}
Output:
{example_out}

# Output format
Return one JSON object. Its keys are the item indices as strings ("0", "1", ...). Each value is an \
object with exactly the keys {keys} (numbers between 0 and 1) and "reason" (one sentence of 15 to 20 \
words explaining the adjustment).

# Rules
1. Complete every item: return an entry for every index, none skipped, none added.
2. The {n} values of each item must sum to 1.
3. Weigh the reference distribution about 75% and the descriptions about 25%.
4. Use only the {n} classes listed; output nothing but the JSON object.
"""


def format_item_emo_superb(descriptions: list[str], classes: tuple[str, ...], reference) -> str:
    """EMO-SUPERB's item: ``Concerned,Interest#0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0`` (Python float text)."""
    desc = ",".join(d for d in (clean_description(x) for x in descriptions) if d)
    return f"{desc}{FIELD_SEP}{','.join(repr(float(p)) for p in reference)}"


EMO_SUPERB_PROMPT_SHA256 = "4d0c9654c0c0ddbc0651201166a206292f7cd5081b6466b2fb123b66a8bc77a9"


def emo_superb_prompt(classes: tuple[str, ...] = DEFAULT_CLASSES) -> str:
    """EMO-SUPERB's Prompt.txt, exactly; it names the 8 classes in their order, so only those."""
    if tuple(classes) != tuple(DEFAULT_CLASSES):
        raise RelabelingError(f"the emo-superb prompt is written for the classes {', '.join(DEFAULT_CLASSES)} in "
                              f"that order, not {', '.join(classes)} (use --prompt emostore)")
    data = resources.files("emostore.labels.llm").joinpath("prompts", "emo-superb.txt").read_bytes()
    if hashlib.sha256(data).hexdigest() != EMO_SUPERB_PROMPT_SHA256:
        raise RelabelingError("the shipped emo-superb prompt differs from EMO-SUPERB's Prompt.txt (sha256)")
    return data.decode("utf-8")


@dataclass(frozen=True)
class PromptPreset:
    """A system prompt for a class set, and the item text it expects (also the cache key)."""

    name: str
    prompt: Callable[[tuple[str, ...]], str]
    format_item: Callable[[list[str], tuple[str, ...], object], str]


PRESETS = {
    "emostore": PromptPreset("emostore", default_prompt, format_item),
    "emo-superb": PromptPreset("emo-superb", emo_superb_prompt, format_item_emo_superb),
}


def preset(name: str) -> PromptPreset:
    if name not in PRESETS:
        raise RelabelingError(f"unknown prompt preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


class ItemError(EmostoreError, ValueError):
    """One item of a response is unusable (missing, unknown class, out of range, bad sum)."""


def parse_response(content: str | None, n_items: int) -> dict:
    """The JSON object keyed by item index; tolerates one wrapping object ({"items": {...}}), the
    Python-literal form of EMO-SUPERB's prompt example (``{'angry': 0.1, ...}``) and keys 1..n."""
    if not content:
        raise ItemError("empty response")
    try:
        obj = json.loads(content)
    except json.JSONDecodeError as exc:
        try:
            obj = ast.literal_eval(content.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ItemError(f"response is not JSON ({exc.msg})") from None
    if isinstance(obj, list):
        obj = {str(i): v for i, v in enumerate(obj)}
    if not isinstance(obj, dict):
        raise ItemError("response is not a JSON object")
    if len(obj) == 1 and "0" not in {str(k).strip() for k in obj}:
        (inner,) = obj.values()
        if isinstance(inner, dict) and any(str(k).strip() == "0" for k in inner):
            obj = inner
        elif isinstance(inner, list):
            obj = {str(i): v for i, v in enumerate(inner)}
    obj = {str(k).strip(): v for k, v in obj.items()}
    if n_items and set(obj) == {str(i) for i in range(1, n_items + 1)}:  # numbered from 1
        obj = {str(int(k) - 1): v for k, v in obj.items()}
    return obj


def validate_item(entry, classes: tuple[str, ...], tolerance: float) -> tuple[np.ndarray, str | None]:
    """(distribution renormalised to sum 1, reason) or ItemError."""
    if not isinstance(entry, dict):
        raise ItemError("entry is not an object")
    lowered = {str(k).strip().lower(): v for k, v in entry.items()}
    reason = lowered.pop("reason", None)
    unknown = sorted(set(lowered) - set(classes))
    if unknown:
        raise ItemError(f"unknown classes {unknown}")
    missing = [c for c in classes if c not in lowered]
    if missing:
        raise ItemError(f"missing classes {missing}")
    values = []
    for c in classes:
        v = lowered[c]
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise ItemError(f"{c}: {v!r} is not a number") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ItemError(f"{c}: {v!r} is not a number")
        if not 0.0 <= v <= 1.0:
            raise ItemError(f"{c}: {v} outside [0, 1]")
        values.append(float(v))
    dist = np.asarray(values)
    total = dist.sum()
    if total <= 0 or abs(total - 1.0) > tolerance:
        raise ItemError(f"values sum to {total:.3f}, not 1 (tolerance {tolerance})")
    if reason is not None:
        reason = str(reason).strip() or None
    return dist / total, reason


def validate_response(content: str | None, n_items: int, classes: tuple[str, ...], tolerance: float
                      ) -> tuple[dict[int, tuple[np.ndarray, str | None]], dict[int, str]]:
    """({index: (distribution, reason)} for valid items, {index: why} for the others)."""
    try:
        obj = parse_response(content, n_items)
    except ValueError as exc:
        return {}, {i: str(exc) for i in range(n_items)}
    ok, bad = {}, {}
    for i in range(n_items):
        if str(i) not in obj:
            bad[i] = "missing from the response"
            continue
        try:
            ok[i] = validate_item(obj[str(i)], classes, tolerance)
        except ItemError as exc:
            bad[i] = str(exc)
    return ok, bad
