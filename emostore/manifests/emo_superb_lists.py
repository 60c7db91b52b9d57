"""EMO-SUPERB's published splits and labels as data: the ``labels_consensus_<k>.csv`` files.

EMO-SUPERB (Wu, Chou et al., SLT 2024; github.com/ag027592/EMO-SUPERB, MIT) publishes per corpus
``data/<CORPUS>/<Primary|Secondary>/labels_consensus_<k>.csv``, one file per fold: a row per clip
with the training target (one column per class), ``SpkrID``, ``Gender`` and ``Split_Set``
(``Train`` / ``Development`` / ``Test``). Those files are the protocol of its Table 2; they are not
the paper's Tables 6-8 (see docs/partitions.md).

This module reads them (:func:`read_consensus` one file; :func:`from_dir` a corpus's folds from a
user's checkout) and stores the splits compactly in the package (ids once, one code per id and
fold, gzipped JSON: :func:`encode` / :func:`shipped`). Labels are :mod:`emostore.labels.published`'s
business. Regenerate the shipped copy with ``python -m emostore.manifests.emo_superb_lists pack DIR``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from emostore.manifests.fold_codes import decode_folds, encode_folds, gzip_json, read_gzip_json
from emostore.manifests.partitions.io import PARTS, PartitionError

FORMAT = "emostore-emo-superb-lists/1"
REPOSITORY = "https://github.com/ag027592/EMO-SUPERB"
# emostore corpus name -> EMO-SUPERB's data folder
FOLDERS = {"iemocap": "IEMOCAP", "crema-d": "CREMA-D", "msp-improv": "IMPROV", "nnime": "NNIME",
           "msp-podcast": "PODCAST", "biic-podcast": "BIIC_PODCAST"}
TASKS = ("Primary", "Secondary")  # EMO-SUPERB's two label granularities; both carry the same splits
SPLIT_SETS = {"Train": "train", "Development": "dev", "Test": "test"}
# Columns of a labels_consensus file that are not classes.
META_COLUMNS = ("EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
_CODES = {"train": "r", "dev": "d", "test": "t"}


class PublishedSplitError(PartitionError):
    """EMO-SUPERB's published files cannot be read, or do not match the manifest."""


@dataclass(frozen=True)
class ConsensusRow:
    id: str  # the file name without extension: the id emostore's adapters give
    target: tuple[float, ...]  # the published training target, in the file's class order
    part: str  # train / dev / test
    speaker: str | None
    gender: str | None


@dataclass(frozen=True)
class ConsensusFile:
    path: str
    classes: tuple[str, ...]
    rows: list[ConsensusRow]


def read_consensus(path: str | Path) -> ConsensusFile:
    """One ``labels_consensus_<k>.csv`` (or ``.csv.gz``): classes (its columns other than the first and
    :data:`META_COLUMNS`, in file order) and rows."""
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open  # a gzipped copy reads the same
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = list(reader)
    except FileNotFoundError:
        raise PublishedSplitError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise PublishedSplitError(f"{path}: not a CSV file ({exc})") from None
    if not header or "Split_Set" not in header:
        raise PublishedSplitError(f"{path}: not an EMO-SUPERB labels_consensus file (no Split_Set column)")
    col = {name: n for n, name in enumerate(header)}
    classes = tuple(h.strip().lower() for h in header[1:] if h not in META_COLUMNS)
    class_cols = [n for n, h in enumerate(header) if n > 0 and h not in META_COLUMNS]
    if not classes:
        raise PublishedSplitError(f"{path}: no class columns")
    rows, seen = [], set()
    for line, rec in enumerate(body, start=2):
        if not rec or not rec[0].strip():
            continue
        if len(rec) != len(header):
            raise PublishedSplitError(f"{path}:{line}: {len(rec)} fields, the header has {len(header)}")
        uid = PurePosixPath(rec[0].strip().replace("\\", "/")).stem
        part = SPLIT_SETS.get(rec[col["Split_Set"]].strip())
        if part is None:
            raise PublishedSplitError(f"{path}:{line}: Split_Set {rec[col['Split_Set']]!r} is not one of "
                                      f"{', '.join(SPLIT_SETS)}")
        if uid in seen:
            raise PublishedSplitError(f"{path}:{line}: {uid!r} is listed twice")
        seen.add(uid)
        try:
            target = tuple(float(rec[n]) for n in class_cols)
        except ValueError:
            raise PublishedSplitError(f"{path}:{line}: a class column of {uid!r} is not a number") from None
        speaker = rec[col["SpkrID"]].strip() if "SpkrID" in col else None
        gender = rec[col["Gender"]].strip() if "Gender" in col else None
        rows.append(ConsensusRow(uid, target, part, speaker or None, gender or None))
    return ConsensusFile(str(path), classes, rows)


def fold_number(path: str | Path) -> int:
    """k of ``labels_consensus_<k>.csv`` (PublishedSplitError for another name)."""
    m = re.fullmatch(r"labels_consensus_(\d+)\.csv(\.gz)?", Path(path).name)
    if not m:
        raise PublishedSplitError(f"{path}: expected a file named labels_consensus_<k>.csv")
    return int(m.group(1))


def folds_of(files: list[ConsensusFile]) -> dict[str, dict[str, list[str]]]:
    """``{"fold<k>": {train, dev, test}}`` from the files (ids in file order), ordered by k."""
    out = {}
    for f in sorted(files, key=lambda f: fold_number(f.path)):
        out[f"fold{fold_number(f.path)}"] = {p: [r.id for r in f.rows if r.part == p] for p in PARTS}
    return out


@dataclass(frozen=True)
class PublishedSplits:
    """One corpus's published folds ``{"fold1": {"train", "dev", "test"}}`` and where they came from."""

    corpus: str
    folds: dict[str, dict[str, list[str]]]
    source: dict = field(default_factory=dict)

    def ids(self) -> set[str]:
        return {i for fold in self.folds.values() for part in fold.values() for i in part}


def corpus_dir(path: str | Path, corpus: str) -> Path:
    """The folder of ``corpus``'s label files in an EMO-SUPERB checkout (its root or its ``data/``)."""
    from emostore.manifests.partitions.registry import normalise_corpus

    c = normalise_corpus(corpus)
    if c not in FOLDERS:
        raise PublishedSplitError(f"EMO-SUPERB publishes no splits for {corpus!r}; it covers {', '.join(FOLDERS)}")
    path = Path(path)
    data = path / "data" if (path / "data" / FOLDERS[c]).is_dir() else path
    return data / FOLDERS[c]


def from_dir(path: str | Path, corpus: str) -> PublishedSplits:
    """``corpus``'s published folds from an EMO-SUPERB checkout; Primary and Secondary must agree."""
    from emostore.manifests.partitions.registry import normalise_corpus

    c = normalise_corpus(corpus)
    cdir = corpus_dir(path, c)
    found = {}
    for task in TASKS:
        files = sorted((cdir / task).glob("labels_consensus_*.csv"))
        if files:
            found[task] = folds_of([read_consensus(f) for f in files])
    if not found:
        raise PublishedSplitError(f"{path}: no EMO-SUPERB label files for {c} "
                                  f"(expected {cdir}/<Primary|Secondary>/labels_consensus_<k>.csv)")
    tasks = list(found)
    folds = found[tasks[0]]
    for other in tasks[1:]:
        if _as_sets(found[other]) != _as_sets(folds):
            raise PublishedSplitError(f"{cdir}: {tasks[0]} and {other} publish different splits")
    return PublishedSplits(c, folds, {"repository": REPOSITORY, "path": f"data/{FOLDERS[c]}/{tasks[0]}",
                                      "dir": str(path)})


def _as_sets(folds):
    return {name: {p: set(ids) for p, ids in fold.items()} for name, fold in folds.items()}


# --------------------------------------------------------------------------------------------
# Compact storage: ids once (sorted), one code character per id and fold
# --------------------------------------------------------------------------------------------


def encode(splits: PublishedSplits) -> bytes:
    """Gzipped JSON: ``ids`` sorted, per fold one character per id (``r`` train, ``d`` dev, ``t`` test,
    ``.`` not in the fold). Part lists come back in id order (the published files' row order is
    not kept: it carries no meaning for a split)."""
    order = sorted(splits.ids())
    obj = {"format": FORMAT, "corpus": splits.corpus, "source": splits.source,
           "codes": {v: k for k, v in _CODES.items()}, "ids": order,
           "folds": encode_folds(splits.folds, order, _CODES)}
    out = gzip_json(obj)
    if _as_sets(decode(out).folds) != _as_sets(splits.folds):
        raise PublishedSplitError(f"{splits.corpus}: the compact form does not reproduce the splits")
    return out


def decode(data: bytes) -> PublishedSplits:
    obj = read_gzip_json(data, PublishedSplitError, "shipped EMO-SUPERB splits", FORMAT)
    coded = decode_folds(obj, PublishedSplitError, f"shipped EMO-SUPERB splits for {obj['corpus']}")
    folds = {name: {p: fold.get(p, []) for p in PARTS} for name, fold in coded.items()}
    return PublishedSplits(obj["corpus"], folds, obj["source"])


def _data_dir():
    return resources.files("emostore.manifests").joinpath("published", "emo-superb")


def shipped_corpora() -> list[str]:
    return sorted(p.name[: -len(".json.gz")] for p in _data_dir().iterdir() if p.name.endswith(".json.gz"))


def shipped(corpus: str) -> PublishedSplits:
    """The published splits of ``corpus`` shipped with emostore."""
    from emostore.manifests.partitions.registry import normalise_corpus

    c = normalise_corpus(corpus)
    f = _data_dir().joinpath(f"{c}.json.gz")
    if not f.is_file():
        hint = ("read them from an EMO-SUPERB checkout (--from DIR)" if c in FOLDERS else
                f"EMO-SUPERB covers {', '.join(FOLDERS)}")
        raise PublishedSplitError(f"no shipped EMO-SUPERB splits for {corpus!r} (shipped: "
                                  f"{', '.join(shipped_corpora())}); {hint}")
    return decode(f.read_bytes())


def pack(checkout: str | Path, corpus: str, out_dir: str | Path, commit: str | None = None) -> Path:
    """Write ``<out_dir>/<corpus>.json.gz`` from an EMO-SUPERB checkout; returns the path."""
    s = from_dir(checkout, corpus)
    source = {k: v for k, v in s.source.items() if k != "dir"}
    if commit:
        source["commit"] = commit
    out = Path(out_dir) / f"{s.corpus}.json.gz"
    out.write_bytes(encode(PublishedSplits(s.corpus, s.folds, source)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emostore.manifests.emo_superb_lists",
                                 description="Regenerate emostore's shipped copy of EMO-SUPERB's published splits.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write <corpus>.json.gz from an EMO-SUPERB checkout")
    p.add_argument("checkout")
    p.add_argument("corpora", nargs="*", default=["iemocap", "crema-d", "msp-improv", "nnime"])
    p.add_argument("--out", default=str(Path(__file__).parent / "published" / "emo-superb"))
    p.add_argument("--commit", help="the checkout's commit, recorded as the source")
    args = ap.parse_args(argv)
    for c in args.corpora:
        out = pack(args.checkout, c, args.out, args.commit)
        print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
