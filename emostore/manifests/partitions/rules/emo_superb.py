"""``emo-superb``: the splits EMO-SUPERB published (its ``labels_consensus_<k>.csv`` files), i.e. the
partitions its Table 2 was computed on.

Shipped in the package for IEMOCAP, CREMA-D, MSP-IMPROV and NNIME (ids only, via
:mod:`emostore.manifests.emo_superb_lists`); MSP-Podcast (and BIIC-Podcast) are read from a user's
EMO-SUPERB checkout with the ``source_dir`` option (CLI ``--from DIR``), as is any corpus when given.
Each published fold is a rotation of sessions, but not the paper's Tables 6-8 (those are
``emo-superb-paper``; docs/partitions.md has both tables). Train, dev and test are exactly the
published parts; a manifest lacking published ids, or with rows no fold names, is refused with
counts unless ``allow_mismatch`` / ``allow_extra`` say otherwise (as for ``emobox``).
"""

from __future__ import annotations

from emostore.manifests.partitions.io import PARTS, Partition
from emostore.manifests.partitions.leakage import leaks, rows_of, speaker
from emostore.manifests.partitions.registry import normalise_corpus, register_rule

PROTOCOL = "EMO-SUPERB's published splits"


def _sessions(ids: list[str], by_id: dict, resolve) -> list[int] | None:
    from emostore.manifests.partitions.rules.emo_superb_paper import session

    try:
        found = {session(by_id[i], resolve) for i in ids}
    except Exception:  # sessions are a description here, not a requirement
        return None
    return None if None in found else sorted(found)


def emo_superb(corpus: str, rows, source_dir=None, allow_mismatch: bool = False, allow_extra: bool = False) -> Partition:
    """EMO-SUPERB's published folds of ``corpus`` over ``rows`` (shipped, or from ``source_dir``)."""
    from emostore.manifests import emo_superb_lists as lists_mod
    from emostore.manifests.emobox_published import membership, mismatch_message

    c = normalise_corpus(corpus)
    splits = lists_mod.from_dir(source_dir, c) if source_dir is not None else lists_mod.shipped(c)
    rows = rows_of(rows)
    report = membership(splits, rows)
    missing = sum(p["missing"] for fold in report["folds"].values() for p in fold.values())
    if (missing and not allow_mismatch) or (report["extra"] and not (allow_extra or allow_mismatch)):
        hint = ("pass allow_mismatch (CLI --allow-mismatch) to use the published folds restricted to the manifest"
                if missing else "pass allow_extra (CLI --allow-extra) to leave those rows out of every fold")
        raise lists_mod.PublishedSplitError(f"{mismatch_message(c, report, PROTOCOL)}; {hint}")
    by_id = {str(r["id"]): r for r in rows}
    try:
        from emostore.manifests.adapters.base import get_adapter

        resolve = get_adapter(c).session
    except Exception:  # a corpus without an adapter: no sessions to describe
        resolve = None
    folds, info = {}, {}
    for name, fold in splits.folds.items():
        folds[name] = {p: [i for i in fold[p] if i in by_id] for p in PARTS}
        test_spk = {s for i in folds[name]["test"] if (s := speaker(by_id[i])) is not None}
        rest_spk = {s for p in ("train", "dev") for i in folds[name][p] if (s := speaker(by_id[i])) is not None}
        info[name] = {"test_speakers_also_in_train": len(test_spk & rest_spk)}
        sessions = {p: _sessions(folds[name][p], by_id, resolve) for p in PARTS}
        if all(s is not None for s in sessions.values()):
            info[name].update({f"{p}_sessions": sessions[p] for p in PARTS})
    meta = {"rule": "emo-superb", "corpus": c, "protocol": PROTOCOL, "source": splits.source,
            "speaker_independent": not leaks(folds, rows), "folds": info}
    if report["extra"]:
        meta["excluded"] = {"not in EMO-SUPERB's published splits": report["extra"]}
    if missing:
        meta["mismatch"] = {name: {p: v["missing"] for p, v in fold.items() if v["missing"]}
                            for name, fold in report["folds"].items() if any(v["missing"] for v in fold.values())}
        meta["note"] = (f"{report['missing_ids']} published ids ({missing} fold entries) are not in the manifest "
                        "and are left out (see mismatch)")
    return Partition(folds, meta)


@register_rule("emo-superb", seeded=False, options=("source_dir", "allow_mismatch", "allow_extra"))
def _make(corpus: str, rows: list[dict], seed: int, source_dir=None, allow_mismatch: bool = False,
          allow_extra: bool = False) -> Partition:
    return emo_superb(corpus, rows, source_dir=source_dir, allow_mismatch=allow_mismatch, allow_extra=allow_extra)
