"""EmoBox's published fold lists vs the rule its paper states (emostore's rule-based ``emobox``).

Run from the repository root (a few seconds)::

    python bench/emobox_lists_vs_rule.py [--shared ../shared/data]

Prints the table in docs/partitions.md ("EmoBox: the published lists vs the stated rule"): per
corpus, folds, test sizes and how many test speakers also appear in the same fold's train/dev,
once for the shipped published lists (emostore.manifests.emobox_published) and once for
``emostore.manifests.partitions.emobox_rule`` (the stated rule, read-only use).

Rows: the real EmoDB and CREMA-D manifests where ``--shared`` has them (EmoDB audio, CREMA-D
rating tables), else rows made from the published ids. Speaker and emotion come from the file
names (EmoDB ``SS...E.``, CREMA-D ``AAAA_SSS_EEE_LL``, RAVDESS ``..-EE-..-AA``); IEMOCAP's
speaker is ``SesNN`` + the gender of the turn, its emotion is not in the name (None: the rule's
speaker folds do not use it, only its dev hold-out might). The rule sees only the ids EmoBox
lists (IEMOCAP: the 5,531 of its four classes, RAVDESS: speech only), so both columns cover the
same utterances.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emostore.manifests import emobox_lists
from emostore.manifests import partitions
from emostore.manifests.adapters.base import adapters

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _row(corpus: str, uid: str) -> dict:
    if corpus == "emodb":
        spk, emo = uid[:2], uid[5]
    elif corpus == "crema-d":
        spk, _, emo, _ = uid.split("_")
    elif corpus == "ravdess":
        f = uid.split("-")
        spk, emo = f[6], f[2]
    elif corpus == "iemocap":
        spk, emo = uid[:5] + uid.rsplit("_", 1)[1][0], None
    else:
        raise ValueError(corpus)
    return {"id": uid, "speaker": spk, "emotion": emo, "session": None}


def _rows(corpus: str, lists: emobox_lists.PublishedLists, shared: Path) -> tuple[list[dict], str]:
    roots = {"emodb": shared / "emodb", "crema-d": shared / "crema-d"}
    root = roots.get(corpus)
    if root is not None and root.is_dir():
        rows = [u.to_json() for u in adapters()[corpus].build(root)]
        return rows, f"real manifest ({root})"
    order = sorted(lists.ids())
    return [_row(corpus, i) for i in order], "rows from the published ids"


def _overlap(folds: dict, by_id: dict) -> list[int]:
    out = []
    for f in folds.values():
        test = {by_id[i]["speaker"] for i in f["test"]}
        rest = {by_id[i]["speaker"] for p in ("train", "dev", "valid") for i in f.get(p, [])}
        out.append(len(test & rest))
    return out


def _speakers(folds: dict, by_id: dict) -> int:
    return len({by_id[i]["speaker"] for f in folds.values() for p in f.values() for i in p})


def _fmt(xs: list[int]) -> str:
    return str(xs[0]) if len(set(xs)) == 1 else "/".join(map(str, xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=SHARED)
    args = ap.parse_args()
    print("| corpus | rows | published: folds | test sizes | test speakers also in train | "
          "stated rule: scheme | folds | test sizes | test speakers also in train |")
    print("|---|---|---|---|---|---|---|---|---|")
    for corpus in ("emodb", "crema-d", "ravdess", "iemocap"):
        lists = emobox_lists.shipped(corpus)
        rows, where = _rows(corpus, lists, args.shared)
        by_id = {str(r["id"]): r for r in rows}
        pub = lists.folds
        rule = partitions.emobox_rule(rows, seed=0, corpus=corpus)
        print(f"| {corpus} | {len(rows)} ({where}) | {len(pub)} | {_fmt([len(f['test']) for f in pub.values()])} | "
              f"{_fmt(_overlap(pub, by_id))} of {_speakers(pub, by_id)} | {rule.meta.get('scheme')} | "
              f"{len(rule.folds)} | {_fmt([len(f['test']) for f in rule.folds.values()])} | "
              f"{_fmt(_overlap(rule.folds, by_id))} |")


if __name__ == "__main__":
    main()
