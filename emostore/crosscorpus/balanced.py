"""Balanced cross-corpus test sets: EmoBox's published ones, and emostore's built the same way.

EmoBox publishes, for its track 2, ``data/track2/<NAME>_selected_balenced.jsonl`` (IEMOCAP, MELD,
RAVDESS, SAVEE): 240 clips each, 60 per class of angry / happy / neutral / sad, the same number
per speaker and class (RAVDESS: 20 actors x 4 classes x 3 clips). emostore ships them as data
(``published/emobox/track2/balanced.json.gz``: each entry's published ``wav`` path, ``label`` and
``speaker``; no audio; see that folder's NOTICE.md) and reads a clip's id as its file name without
extension, the id emostore's adapters give it (SAVEE, whose clip names repeat across its
speakers and which has no emostore adapter: the published path without extension, ``JK/sa09``).

A corpus without a published set (EmoDB) gets one built by :func:`build_balanced`, the same
shape: k clips of every shared class from every chosen speaker, with k x speakers as large as the
corpus allows and at most 60 per class (EmoBox's size); ties prefer more speakers; speakers in
name order, clips drawn per (speaker, class) by ``random.Random(seed).sample`` over the sorted
ids. These are emostore's sets, not EmoBox's, and every record says which.

Regenerate the shipped copy with ``python -m emostore.crosscorpus.balanced pack EMOBOX_DIR``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from emostore.crosscorpus.classes import SHARED_CLASSES, CrossCorpusError
from emostore.manifests.emobox_lists import REPOSITORY, _git_commit
from emostore.manifests.fold_codes import gzip_json, read_gzip_json

FORMAT = "emostore-emobox-track2/1"
# emostore corpus name -> EmoBox's track-2 file prefix
TRACK2_NAMES = {"iemocap": "IEMOCAP", "meld": "MELD", "ravdess": "RAVDESS", "savee": "SAVEE"}
PER_CLASS_CAP = 60  # EmoBox's sets: 60 clips per class
SEED = 1993  # EmoBox's recipe seed, for the clips drawn into a built set


@dataclass(frozen=True)
class BalancedSet:
    """A balanced test set: ids with their shared class and speaker, and where it comes from."""

    corpus: str
    ids: list[str]
    labels: dict[str, str]
    speakers: dict[str, str]
    source: dict

    def per_class(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels.values()).items()))


def _shipped_file():
    return resources.files("emostore.manifests").joinpath("published", "emobox", "track2", "balanced.json.gz")


def _shipped() -> dict:
    return read_gzip_json(_shipped_file().read_bytes(), CrossCorpusError, "shipped track-2 sets", FORMAT)


def published_corpora() -> list[str]:
    """emostore names of the corpora with a published balanced set shipped."""
    return sorted(_shipped()["sets"])


def published(corpus: str) -> BalancedSet | None:
    """EmoBox's published balanced set of ``corpus`` (shipped copy), or None where it publishes none."""
    obj = _shipped()
    entries = obj["sets"].get(corpus)
    if entries is None:
        return None
    ids = [PurePosixPath(e["wav"]).stem for e in entries]
    if len(set(ids)) < len(ids):  # SAVEE: every speaker's clips are named sa01, ...: keep the speaker folder
        ids = [str(PurePosixPath(e["wav"]).with_suffix("")) for e in entries]
    source = {**obj["source"], "path": f"data/track2/{TRACK2_NAMES[corpus]}_selected_balenced.jsonl",
              "kind": "EmoBox's published balanced test set"}
    return BalancedSet(corpus, ids, {i: e["label"] for i, e in zip(ids, entries)},
                       {i: str(e["speaker"]) for i, e in zip(ids, entries)}, source)


def build_balanced(corpus: str, labels: dict[str, str], speakers: dict[str, str], seed: int = SEED,
                   cap: int = PER_CLASS_CAP) -> BalancedSet:
    """emostore's balanced set over ``labels`` (id -> shared class) and ``speakers`` (module doc)."""
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i in sorted(labels):
        cells[(speakers[i], labels[i])].append(i)
    classes = sorted(set(labels.values()))
    if set(classes) != set(SHARED_CLASSES):
        raise CrossCorpusError(f"{corpus}: a balanced set needs every shared class; it has only {', '.join(classes)}")
    names = sorted(set(speakers[i] for i in labels))
    best = (0, 0, 0)  # (clips per class, speakers, k)
    for k in range(1, cap + 1):
        eligible = [s for s in names if all(len(cells[(s, c)]) >= k for c in classes)]
        n = min(len(eligible), cap // k)
        if n and (k * n, n) > best[:2]:
            best = (k * n, n, k)
    if not best[0]:
        raise CrossCorpusError(f"{corpus}: no speaker has a clip of every shared class; no balanced set can be built")
    _, n, k = best
    chosen = [s for s in names if all(len(cells[(s, c)]) >= k for c in classes)][:n]
    rng = random.Random(seed)
    ids = [i for s in chosen for c in classes for i in sorted(rng.sample(cells[(s, c)], k))]
    source = {"kind": "emostore's balanced test set (built, not EmoBox's)",
              "rule": f"{k} clips per (speaker, class) from {n} speakers, at most {cap} per class, "
                      f"random.Random({seed}).sample per cell over sorted ids",
              "speakers": chosen, "seed": seed, "per_speaker_class": k}
    return BalancedSet(corpus, ids, {i: labels[i] for i in ids}, {i: speakers[i] for i in ids}, source)


# --------------------------------------------------------------------------------------------
# Maintainer tool: regenerate the shipped copy from an EmoBox checkout
# --------------------------------------------------------------------------------------------


def pack(emobox_dir: str | Path, out: str | Path, commit: str | None = None) -> Path:
    root = Path(emobox_dir)
    data = root / "data" / "track2" if (root / "data" / "track2").is_dir() else root
    sets = {}
    for corpus, name in sorted(TRACK2_NAMES.items()):
        f = data / f"{name}_selected_balenced.jsonl"
        if not f.is_file():
            raise CrossCorpusError(f"{f}: missing (EmoBox publishes data/track2/{f.name})")
        rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        sets[corpus] = [{"wav": r["wav_filename"], "label": r["label"], "speaker": str(r["speaker"])} for r in rows]
    source = {"repository": REPOSITORY}
    commit = commit or _git_commit(data.parent.parent)
    if commit:
        source["commit"] = commit
    obj = {"format": FORMAT, "source": source, "sets": sets}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip_json(obj))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emostore.crosscorpus.balanced",
                                 description="Regenerate emostore's shipped copy of EmoBox's track-2 balanced test sets.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write balanced.json.gz from an EmoBox checkout")
    p.add_argument("emobox_dir")
    p.add_argument("--out", default=str(Path(__file__).parents[1] / "manifests" / "published" / "emobox" / "track2"
                                        / "balanced.json.gz"))
    p.add_argument("--commit", help="EmoBox commit the checkout is at (default: git rev-parse HEAD)")
    args = ap.parse_args(argv)
    out = pack(args.emobox_dir, args.out, args.commit)
    print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
