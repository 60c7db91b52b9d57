"""Manifest rows -> items to ask about, and answers -> rows.

An item is one text, "descriptions#reference distribution" (:func:`format_item`), for every row
with typed descriptions and an in-class vote; rows with the same text share one item (one answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emostore.labels.llm.prompt import format_item
from emostore.labels.votes import count_votes


@dataclass
class Items:
    out_rows: list[dict]  # {"id", "distribution", "reason", "source"} per row, the reference to start with
    rows_of: dict[str, list[int]]  # item text -> indices into out_rows
    no_reference: list[str] = field(default_factory=list)  # ids without an in-class vote
    n_described: int = 0  # rows with descriptions


def descriptions(row: dict) -> list[str]:
    desc = row.get("description") or []
    if isinstance(desc, str):
        desc = [desc]
    return [str(d) for d in desc if str(d).strip()]


def build_items(rows: list[dict], cs, item=format_item) -> Items:
    """Each row's reference distribution, and the items (deduplicated by text) of the described rows;
    ``item`` writes an item's text (the prompt preset's form)."""
    items = Items([], {})
    for row in rows:
        ref = count_votes(row, cs).shares()
        desc = descriptions(row)
        items.n_described += bool(desc)
        items.out_rows.append({"id": str(row["id"]), "distribution": None if ref is None else [float(x) for x in ref],
                               "reason": None, "source": "reference"})
        if ref is None:
            items.no_reference.append(str(row["id"]))
            continue
        if desc:
            items.rows_of.setdefault(item(desc, cs.classes, ref), []).append(len(items.out_rows) - 1)
    return items


def cached_answers(items: Items, cache, model: str, prompt_sha: str) -> dict[str, tuple[np.ndarray, str | None, str]]:
    """``{text: (distribution, reason, "cache")}`` for the items the cache already answers."""
    answers = {}
    for text in items.rows_of:
        hit = cache.get(model, prompt_sha, text)
        if hit is not None:
            answers[text] = (hit[0], hit[1], "cache")
    return answers


@dataclass
class Outcome:
    counts: dict[str, int]  # rows answered by "llm" / "cache"
    failed_ids: dict[str, str]  # id -> why no valid answer came
    unsent_ids: list[str]  # ids whose item was never sent (budget, abort)


def apply_answers(items: Items, answers: dict, attempted: set[str], failed: dict[str, str]) -> Outcome:
    """Write the answers into ``items.out_rows``; sort the rest into failed and unsent."""
    out = Outcome({"llm": 0, "cache": 0}, {}, [])
    for text, idxs in items.rows_of.items():
        for i in idxs:
            if text in answers:
                d, r, src = answers[text]
                items.out_rows[i].update(distribution=[float(x) for x in d], reason=r, source=src)
                out.counts[src] += 1
            elif text in attempted:
                out.failed_ids[items.out_rows[i]["id"]] = failed.get(text, "no valid answer")
            else:
                out.unsent_ids.append(items.out_rows[i]["id"])
    return out
