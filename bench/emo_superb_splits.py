"""EMO-SUPERB's published splits (--rule emo-superb) against the paper's tables (--rule emo-superb-paper).

For IEMOCAP, CREMA-D, MSP-IMPROV and NNIME: rows are made from the shipped published ids (speaker and
session read off each id the way the corpus adapter does), both rules partition them, and the table
gives per fold the sessions of each part under each rule and how many test ids the two share.
Prints the markdown table of docs/partitions.md:

    python bench/emo_superb_splits.py
"""

from __future__ import annotations

import re

from emostore.manifests import emo_superb_lists
from emostore.manifests.adapters.crema_d import session_of as crema_session
from emostore.manifests.adapters.nnime import session_of_dyad
from emostore.manifests.partitions import make_partition


def row(corpus: str, uid: str) -> dict:
    """A manifest row for ``uid``: speaker and session as the corpus adapter gives them."""
    if corpus == "iemocap":  # Ses01F_impro01_M000: speaker = session + the speaker's sex (last group)
        return {"id": uid, "speaker": uid[:5] + uid.rsplit("_", 1)[1][0], "session": int(uid[3:5])}
    if corpus == "crema-d":
        return {"id": uid, "speaker": uid[:4], "session": crema_session(int(uid[:4]))}
    if corpus == "msp-improv":  # MSP-IMPROV-S01A-F01-P-FM01: speaker F01, session 1
        spk = re.search(r"-([FM]\d\d)-", uid).group(1)
        return {"id": uid, "speaker": spk, "session": int(spk[1:])}
    scenario, dyad, side, _ = uid.rsplit("_", 3)  # nnime: angry_01_A_002
    return {"id": uid, "speaker": f"{dyad}{side}", "session": session_of_dyad(int(dyad))}


def sessions(ids, by_id) -> str:
    return ", ".join(map(str, sorted({by_id[i]["session"] for i in ids})))


def table() -> list[str]:
    lines = ["| corpus | fold | published train / dev / test sessions | paper train / dev / test sessions "
             "| test ids shared | published test size |",
             "|---|---|---|---|---|---|"]
    for corpus in ("iemocap", "crema-d", "msp-improv", "nnime"):
        splits = emo_superb_lists.shipped(corpus)
        rows = [row(corpus, i) for i in sorted(splits.ids())]
        by_id = {r["id"]: r for r in rows}
        pub = make_partition(corpus, rows, "emo-superb")
        paper = make_partition(corpus, rows, "emo-superb-paper")
        for name in pub.folds:
            p, q = pub.folds[name], paper.folds.get(name)
            cell = lambda f: " / ".join(sessions(f[part], by_id) for part in ("train", "dev", "test"))  # noqa: E731
            shared = len(set(p["test"]) & set(q["test"])) if q else 0
            lines.append(f"| {corpus} | {name[4:]} | {cell(p)} | {cell(q) if q else '-'} | {shared:,} | {len(p['test']):,} |")
    return lines


if __name__ == "__main__":
    print("\n".join(table()))
