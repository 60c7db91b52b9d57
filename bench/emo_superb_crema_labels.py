"""How far CREMA-D's public rating table reproduces EMO-SUPERB's published CREMA-D labels.

Reads EMO-SUPERB's labels_consensus_1.csv (default: the copy in tests/data) and CREMA-D's
tabulatedVotes.csv (default: ../shared/data/crema-d), applies the emo-superb preset
(vote shares, smoothing 0.05 in EMO-SUPERB's convention) to each modality's votes, and for the
clips that do not match infers the vote counts behind each published label (the smallest n <= 40
with share * n integral) and compares them with the table's. Prints the figures of docs/labels.md:

    python bench/emo_superb_crema_labels.py [LABELS_CONSENSUS_CSV] [TABULATED_VOTES_CSV]
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from emostore.labels.aggregate import smooth
from emostore.manifests.emo_superb_lists import read_consensus

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "data" / "emo-superb" / "CREMA-D" / "Primary" / "labels_consensus_1.csv.gz"
VOTES = ROOT.parent / "shared" / "data" / "crema-d" / "tabulatedVotes.csv"
COLUMN = {"angry": "A", "sad": "S", "disgust": "D", "fear": "F", "neutral": "N", "happy": "H"}
MODALITIES = {"1": "voice only", "2": "face only", "3": "audio-visual"}


def votes(path: Path, classes) -> dict[str, dict[str, np.ndarray]]:
    """{modality digit: {clip: counts in ``classes`` order}}."""
    out: dict[str, dict[str, np.ndarray]] = {m: {} for m in MODALITIES}
    with path.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            m = rec[""][0]
            out[m][rec["fileName"]] = np.array([int(rec[COLUMN[c]]) for c in classes])
    return out


def implied_counts(target: np.ndarray, eps: float = 0.05, tol: float = 0.02) -> np.ndarray | None:
    c = len(target)
    share = (target - eps / (c - 1)) / (1 - eps * c / (c - 1))
    for n in range(1, 41):
        if np.all(np.abs(share * n - np.round(share * n)) < tol):
            return np.round(share * n).astype(int)
    return None


def main(labels=LABELS, table=VOTES) -> dict:
    pub = read_consensus(labels)
    tv = votes(Path(table), pub.classes)
    report = {"clips": len(pub.rows)}
    for m, name in MODALITIES.items():
        same = sum(np.abs(smooth(tv[m][r.id] / tv[m][r.id].sum(), 0.05, "emo-superb") - np.array(r.target)).max() < 5e-7
                   for r in pub.rows)
        report[f"reproduced, {name}"] = int(same)
    more = fewer = equal = subset = superset = 0
    totals: Counter = Counter()
    for r in pub.rows:
        counts = tv["1"][r.id]
        if np.abs(smooth(counts / counts.sum(), 0.05, "emo-superb") - np.array(r.target)).max() < 5e-7:
            continue
        k = implied_counts(np.array(r.target))
        if k is None:
            totals["no integral count <= 40"] += 1
            continue
        totals[int(k.sum())] += 1
        more += k.sum() > counts.sum()
        fewer += k.sum() < counts.sum()
        equal += k.sum() == counts.sum()
        superset += bool(np.all(k >= counts) and k.sum() > counts.sum())
        subset += bool(np.all(k <= counts) and k.sum() < counts.sum())
    report["not reproduced (voice only)"] = {
        "more votes than the table": int(more), "of which the table's votes plus some": int(superset),
        "fewer votes than the table": int(fewer), "of which a subset of the table's votes": int(subset),
        "as many votes, other classes": int(equal),
        "implied number of votes": dict(sorted(totals.items(), key=lambda kv: -kv[1])),
    }
    return report


if __name__ == "__main__":
    import json

    print(json.dumps(main(*sys.argv[1:3]), indent=1))
