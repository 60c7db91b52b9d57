"""EmoBox's published fold lists as data: reading them (a user's checkout or the copy shipped in the
package), mapping EmoBox keys to manifest ids, and the compact format of the shipped copy.

Building folds for a manifest from them is :mod:`emostore.manifests.emobox_published`. Regenerate
the shipped copy with ``python -m emostore.manifests.emobox_lists pack EMOBOX_DIR``.
"""

from __future__ import annotations

import argparse
import heapq
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from emostore.jsonl import read_jsonl
from emostore.manifests.fold_codes import decode_folds, encode_folds, gzip_json, read_gzip_json
from emostore.manifests.partitions.io import PartitionError

FORMAT = "emostore-emobox-lists/1"
REPOSITORY = "https://github.com/emo-box/EmoBox"
# emostore corpus name -> EmoBox dataset name, for the corpora that have an emostore adapter.
EMOBOX_NAMES = {
    "emodb": "emodb",
    "crema-d": "cremad",
    "ravdess": "ravdess",
    "iemocap": "iemocap",
    "msp-podcast": "msppodcast",
}
PUBLISHED_PARTS = ("train", "valid", "test")  # EmoBox's file names; "valid" becomes emostore's dev
_CODES = {"train": "r", "valid": "v", "test": "t"}


class PublishedListError(PartitionError):
    """EmoBox's published lists cannot be read, or do not match the manifest."""


@dataclass(frozen=True)
class PublishedLists:
    """One corpus's published folds: ``{"fold1": {"train": [...], "test": [...], "valid"?: [...]}}``.

    Ids are emostore manifest ids in the published order. ``unavailable`` names parts EmoBox
    publishes that this copy lacks (``{"fold1": ["train"]}``); ``source`` says where they came from.
    """

    corpus: str
    emobox: str
    folds: dict[str, dict[str, list[str]]]
    source: dict = field(default_factory=dict)
    unavailable: dict[str, list[str]] = field(default_factory=dict)

    def ids(self) -> set[str]:
        return {i for fold in self.folds.values() for part in fold.values() for i in part}


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def names(corpus: str) -> tuple[str, str]:
    """(emostore name, EmoBox name) of ``corpus`` given either; other names pass through."""
    from emostore.manifests.partitions.registry import normalise_corpus  # its aliases cover EmoBox's names

    c = normalise_corpus(corpus)
    return c, EMOBOX_NAMES.get(c, c)


def key_to_id(key: str, wav: str, emobox: str, where: str = "") -> str:
    """The manifest id of a published entry: its audio file's name without extension.

    The adapters take ``id`` from the native file name, and EmoBox's ``wav`` keeps the native
    name; the key must agree (``<dataset>-<name>``, CREMA-D with ``_`` written ``-``).
    """
    stem = PurePosixPath(str(wav).replace("\\", "/")).stem
    if key not in (f"{emobox}-{stem}", f"{emobox}-{stem.replace('_', '-')}"):
        raise PublishedListError(f"{where}: key {key!r} does not name its audio file {wav!r}")
    return stem


# --------------------------------------------------------------------------------------------
# Reading: a user's EmoBox checkout, and the shipped copy
# --------------------------------------------------------------------------------------------


def _git_commit(root: Path) -> str | None:
    """HEAD of the git checkout whose top level is ``root`` (not of a repository around it)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root.resolve():
        return None
    return lines[1]


def from_dir(path: str | Path, corpus: str) -> PublishedLists:
    """Read ``corpus``'s published lists from an EmoBox checkout (its root or its ``data/``)."""
    return _read_dir(path, corpus)


def _read_dir(path: str | Path, corpus: str, absent_ok: tuple[str, ...] = ()) -> PublishedLists:
    path = Path(path)
    c, emobox = names(corpus)
    data = path / "data" if (path / "data" / emobox).is_dir() else path
    cdir = data / emobox
    if not cdir.is_dir():
        raise PublishedListError(f"{path}: no EmoBox lists for {c} (expected {cdir}/fold_<k>/)")
    nums = sorted(int(d.name[5:]) for d in cdir.glob("fold_*") if d.is_dir() and d.name[5:].isdigit())
    if not nums or nums != list(range(1, len(nums) + 1)):
        raise PublishedListError(f"{cdir}: expected folders fold_1..fold_K, found {[f'fold_{n}' for n in nums]}")
    folds: dict[str, dict[str, list[str]]] = {}
    absent: dict[str, list[str]] = {}
    for k in nums:
        fold: dict[str, list[str]] = {}
        for part in PUBLISHED_PARTS:
            f = cdir / f"fold_{k}" / f"{emobox}_{part}_fold_{k}.jsonl"
            if f.is_file():
                rows = read_jsonl(f, PublishedListError)
                fold[part] = [key_to_id(r.get("key", ""), r.get("wav", ""), emobox, w) for w, r in rows]
            elif part in absent_ok:
                absent.setdefault(f"fold{k}", []).append(part)
            elif part != "valid":
                raise PublishedListError(f"{f}: missing (EmoBox publishes train and test lists per fold)")
        _check_fold(f"{cdir}/fold_{k}", fold)
        folds[f"fold{k}"] = fold
    source = {"repository": REPOSITORY, "path": f"data/{emobox}", "dir": str(path)}
    commit = _git_commit(data.parent)
    if commit:
        source["commit"] = commit
    return PublishedLists(c, emobox, folds, source, absent)


def _check_fold(where: str, fold: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    for part, ids in fold.items():
        for i in ids:
            if i in seen:
                raise PublishedListError(f"{where}: {i!r} is listed twice ({seen[i]} and {part})")
            seen[i] = part


def _data_dir():
    return resources.files("emostore.manifests").joinpath("published", "emobox")


def shipped_corpora() -> list[str]:
    """emostore names of the corpora whose published lists ship with emostore."""
    return sorted(p.name[: -len(".json.gz")] for p in _data_dir().iterdir() if p.name.endswith(".json.gz"))


def shipped(corpus: str) -> PublishedLists:
    """The published lists of ``corpus`` shipped with emostore."""
    c, _ = names(corpus)
    f = _data_dir().joinpath(f"{c}.json.gz")
    if not f.is_file():
        raise PublishedListError(
            f"no shipped EmoBox lists for {corpus!r} (shipped: {', '.join(shipped_corpora())}); "
            "read them from an EmoBox checkout instead (--from DIR), or use --rule emobox-rule "
            "(the EmoBox paper's stated speaker rule)")
    return decode(f.read_bytes())


# --------------------------------------------------------------------------------------------
# Compact storage: one id order, one code string per fold
# --------------------------------------------------------------------------------------------


def _common_order(lists: list[list[str]]) -> list[str]:
    """One order of all ids in which every list is a subsequence (topological merge)."""
    succ: dict[str, set[str]] = {}
    indeg: dict[str, int] = {}
    first: dict[str, tuple[int, int]] = {}
    for li, ids in enumerate(lists):
        for pos, i in enumerate(ids):
            first.setdefault(i, (li, pos))
            succ.setdefault(i, set())
            indeg.setdefault(i, 0)
        for a, b in zip(ids, ids[1:]):
            if b not in succ[a]:
                succ[a].add(b)
                indeg[b] += 1
    heap = [(first[i], i) for i, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, i = heapq.heappop(heap)
        order.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, (first[j], j))
    if len(order) != len(indeg):
        raise PublishedListError("the published lists order their ids inconsistently; cannot store them as one order")
    return order


def encode(lists: PublishedLists) -> bytes:
    """Gzipped JSON: ``ids`` once, in an order every published list keeps, and per fold one
    character per id (``r`` train, ``v`` valid, ``t`` test, ``.`` not in the fold)."""
    order = _common_order([ids for fold in lists.folds.values() for ids in fold.values()])
    obj = {"format": FORMAT, "corpus": lists.corpus, "emobox": lists.emobox, "source": lists.source,
           "codes": {v: k for k, v in _CODES.items()}, "unavailable": lists.unavailable,
           "ids": order, "folds": encode_folds(lists.folds, order, _CODES)}
    out = gzip_json(obj)
    if decode(out) != lists:
        raise PublishedListError(f"{lists.corpus}: the compact form does not reproduce the lists")
    return out


def decode(data: bytes) -> PublishedLists:
    obj = read_gzip_json(data, PublishedListError, "shipped EmoBox lists", FORMAT)
    folds = {}
    for name, coded in decode_folds(obj, PublishedListError, f"shipped EmoBox lists for {obj['corpus']}").items():
        unavailable = obj["unavailable"].get(name, [])
        folds[name] = {part: coded.get(part, []) for part in PUBLISHED_PARTS
                       if coded.get(part) or (part != "valid" and part not in unavailable)}
    return PublishedLists(obj["corpus"], obj["emobox"], folds, obj["source"], obj["unavailable"])


# --------------------------------------------------------------------------------------------
# Maintainer tool: regenerate the shipped copy from an EmoBox checkout
# --------------------------------------------------------------------------------------------


def pack(emobox_dir: str | Path, corpus: str, out_dir: str | Path, commit: str | None = None,
         absent_ok: tuple[str, ...] = ()) -> Path:
    """Write ``<out_dir>/<corpus>.json.gz`` from an EmoBox checkout; returns the path.

    ``absent_ok``: parts (e.g. ``("train",)``) the checkout may lack; they are recorded as
    ``unavailable`` and building from the shipped copy then asks for ``--from DIR``.
    """
    lists = _read_dir(emobox_dir, corpus, absent_ok)
    source = {k: v for k, v in lists.source.items() if k != "dir"}
    if commit:
        source["commit"] = commit
    lists = PublishedLists(lists.corpus, lists.emobox, lists.folds, source, lists.unavailable)
    out = Path(out_dir) / f"{lists.corpus}.json.gz"
    from emostore.outputs import write_bytes

    return write_bytes(out, encode(lists))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emostore.manifests.emobox_lists",
                                 description="Regenerate emostore's shipped copy of EmoBox's fold lists.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="write <corpus>.json.gz from an EmoBox checkout")
    p.add_argument("emobox_dir")
    p.add_argument("corpora", nargs="*", default=sorted(EMOBOX_NAMES))
    p.add_argument("--out", default=str(Path(__file__).parent / "published" / "emobox"))
    p.add_argument("--commit", help="EmoBox commit the checkout is at (default: git rev-parse HEAD)")
    p.add_argument("--allow-absent", action="append", default=[], choices=PUBLISHED_PARTS, metavar="PART",
                   help="a part the checkout may lack (recorded as unavailable; building then needs --from)")
    args = ap.parse_args(argv)
    for c in args.corpora:
        out = pack(args.emobox_dir, c, args.out, args.commit, tuple(args.allow_absent))
        print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
