"""EmoBox's published fold lists: the partitions its benchmark was run on, as emostore folds.

EmoBox (Ma et al., Interspeech 2024; github.com/emo-box/EmoBox, MIT) publishes, per corpus,
``data/<corpus>/fold_<k>/<corpus>_{train,test[,valid]}_fold_<k>.jsonl``. Those lists are the
protocol of its Table 4, and they differ from the rule its paper states (EmoDB: 5 folds of 107
test utterances sharing every speaker, not speaker-disjoint folds; see docs/partitions.md).

This module reads the lists (shipped in the package as ids only, or from a user's EmoBox
checkout with :func:`from_dir`), maps EmoBox keys to emostore manifest ids (the native file
name without extension: what the adapters use as ``id``), and builds folds for a manifest with
:func:`build_folds`: train and test exactly as published; dev = EmoBox's valid list where it
publishes one (MSP-Podcast), else EmoBox's recipe split of the published train list (20%,
``random.seed(seed)`` then ``random.shuffle`` of the train positions, seed 1993 as in every
recipe config). A manifest that lacks published ids, or has rows no list names, is refused with
per-fold counts unless the caller allows it: a protocol is never silently renumbered.

Shipped data: ``published/emobox/<corpus>.json.gz`` (format below, written by :func:`encode`;
regenerate with ``python -m emostore.manifests.emobox_lists pack EMOBOX_DIR``).
"""

from __future__ import annotations

import random
from pathlib import Path

from emostore.manifests.emobox_lists import PublishedListError, PublishedLists, from_dir, names, shipped

# EmoBox recipe (examples/sb/dataset_prepare.py with hparams/*.yaml): split_ratio [0.8, 0.2], seed 1993.
RECIPE_SEED = 1993
RECIPE_TRAIN_SHARE = 0.8
_SHOW = 5  # ids quoted per mismatch

# --------------------------------------------------------------------------------------------
# Membership check and fold building
# --------------------------------------------------------------------------------------------


def _row_ids(rows) -> list[str]:
    rows = rows.rows if hasattr(rows, "rows") else rows
    return [str(r["id"]) for r in rows]


def membership(lists: PublishedLists, rows) -> dict:
    """What the manifest lacks per fold and part, and what it has that no list names.

    ``{"folds": {"fold1": {"test": {"published": 107, "missing": 2, "first_missing": [...]}, ...}},
    "extra": n, "first_extra": [...]}``
    """
    have = _row_ids(rows)
    have_set = set(have)
    published = lists.ids()
    report: dict = {"folds": {}}
    for name, fold in lists.folds.items():
        report["folds"][name] = {}
        for part, ids in fold.items():
            miss = [i for i in ids if i not in have_set]
            report["folds"][name][part] = {"published": len(ids), "missing": len(miss), "first_missing": miss[:_SHOW]}
    extra = [i for i in have if i not in published]
    report["missing_ids"] = len(set(published) - have_set)
    report["extra"] = len(extra)
    report["first_extra"] = extra[:_SHOW]
    return report


def _missing_total(report: dict) -> int:
    return sum(p["missing"] for fold in report["folds"].values() for p in fold.values())


def mismatch_message(corpus: str, report: dict, lists_name: str = "EmoBox's published lists") -> str:
    """One line: per fold and part, how many published ids the manifest lacks; the extra rows."""
    bits = []
    for name, fold in report["folds"].items():
        parts = [f"{part} lacks {p['missing']} of {p['published']} ({', '.join(p['first_missing'])}"
                 f"{', ...' if p['missing'] > len(p['first_missing']) else ''})"
                 for part, p in fold.items() if p["missing"]]
        if parts:
            bits.append(f"{name} " + ", ".join(parts))
    if report["extra"]:
        more = ", ..." if report["extra"] > len(report["first_extra"]) else ""
        bits.append(f"{report['extra']} manifest rows are in no published list ({', '.join(report['first_extra'])}{more})")
    return f"{corpus}: the manifest does not match {lists_name}: " + "; ".join(bits)


def recipe_dev_split(train: list[str], seed: int = RECIPE_SEED) -> tuple[list[str], list[str]]:
    """EmoBox's valid split of a train list: (train, dev), both in the list's order.

    As examples/sb/dataset_prepare.py does it: ``random.seed(seed)``, shuffle the positions
    0..n-1 with ``random.shuffle``, the first ``int(n * 0.8)`` stay in train, the rest are dev.
    Not stratified by emotion: EmoBox's split is a plain random 80/20 one.
    """
    rng = random.Random(seed)
    idx = list(range(len(train)))
    rng.shuffle(idx)
    dev = set(idx[int(len(train) * RECIPE_TRAIN_SHARE):])
    return [i for n, i in enumerate(train) if n not in dev], [i for n, i in enumerate(train) if n in dev]


_UNKNOWN = {"", "unknown", "none", "null", "nan", "n/a", "na", "?"}


def _speakers(ids: list[str], by_id: dict) -> set[str]:
    out = set()
    for i in ids:
        s = by_id[i].get("speaker")
        if s is not None and str(s).strip().lower() not in _UNKNOWN:
            out.add(str(s).strip())
    return out


def build_folds(corpus: str, rows, lists: PublishedLists | None = None, emobox_dir: str | Path | None = None,
                seed: int | None = None, allow_mismatch: bool = False, allow_extra: bool = False) -> tuple[dict, dict]:
    """EmoBox's published folds of ``corpus`` over ``rows``: ``(folds, meta)``.

    ``folds`` is ``{"fold1": {"train": [...], "dev": [...], "test": [...]}, ...}``: test and
    train + dev exactly as published (ids in published order); dev is the published valid list,
    or EmoBox's recipe split of the train list (:func:`recipe_dev_split`, ``seed`` default 1993).
    Lists come from ``lists``, else an EmoBox checkout ``emobox_dir``, else the shipped copy.

    Refuses (:class:`PublishedListError`, counts per fold) a manifest that lacks published ids
    or has rows no list names. ``allow_extra`` leaves rows outside the lists out of every fold
    (counted in ``meta["excluded"]``); ``allow_mismatch`` also drops published ids the manifest
    lacks before the dev split, as EmoBox's recipe drops entries whose features do not exist
    (counted in ``meta["mismatch"]``).
    """
    c, _ = names(corpus)
    if lists is None:
        lists = from_dir(emobox_dir, c) if emobox_dir is not None else shipped(c)
    if lists.unavailable:
        what = "; ".join(f"{f}: {', '.join(p)}" for f, p in lists.unavailable.items())
        raise PublishedListError(f"{c}: the shipped EmoBox lists lack {what} (not in the copy emostore was "
                                 "built from); read them from an EmoBox checkout (--from DIR)")
    rows = list(rows.rows if hasattr(rows, "rows") else rows)
    report = membership(lists, rows)
    missing = _missing_total(report)
    if (missing and not allow_mismatch) or (report["extra"] and not (allow_extra or allow_mismatch)):
        hint = "pass allow_mismatch (CLI --allow-mismatch) to use the published folds restricted to the manifest"
        if not missing:
            hint = "pass allow_extra (CLI --allow-extra) to leave those rows out of every fold"
        raise PublishedListError(f"{mismatch_message(c, report)}; {hint}")
    by_id = {str(r["id"]): r for r in rows}
    seed_used = RECIPE_SEED if seed is None else int(seed)
    folds, info = {}, {}
    for name, fold in lists.folds.items():
        present = {p: [i for i in ids if i in by_id] for p, ids in fold.items()}
        if "valid" in present:
            train, dev = present["train"], present["valid"]
            method = "EmoBox's published valid list"
        else:
            train, dev = recipe_dev_split(present["train"], seed_used)
            method = f"EmoBox recipe: random 20% of the published train list (seed {seed_used})"
        folds[name] = {"train": train, "dev": dev, "test": present["test"]}
        test_spk = _speakers(present["test"], by_id)
        info[name] = {"dev_method": method,
                      "test_speakers_also_in_train": len(test_spk & _speakers(train + dev, by_id))}
    uses_split = any("valid" not in fold for fold in lists.folds.values())
    meta = {
        "rule": "emobox",
        "corpus": c,
        "seed": seed_used if uses_split else None,
        "protocol": "EmoBox's published fold lists",
        "source": lists.source,
        "speaker_independent": all(f["test_speakers_also_in_train"] == 0 for f in info.values()),
        "folds": info,
        "sizes": {name: {p: len(f[p]) for p in ("train", "dev", "test")} for name, f in folds.items()},
    }
    if report["extra"]:
        meta["excluded"] = {"not in EmoBox's published lists": report["extra"]}
    if missing:
        meta["mismatch"] = {name: {p: v["missing"] for p, v in fold.items() if v["missing"]}
                            for name, fold in report["folds"].items()
                            if any(v["missing"] for v in fold.values())}
        meta["note"] = (f"{report['missing_ids']} published ids ({missing} fold entries) are not in the manifest "
                        "and are left out (see mismatch)")
    return folds, meta


