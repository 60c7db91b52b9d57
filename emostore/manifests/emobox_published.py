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
regenerate with ``python -m emostore.manifests.emobox_published pack EMOBOX_DIR``).
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from emostore.jsonl import read_jsonl
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
_ALIASES = {v: k for k, v in EMOBOX_NAMES.items()} | {"crema": "crema-d", "podcast": "msp-podcast"}
PUBLISHED_PARTS = ("train", "valid", "test")  # EmoBox's file names; "valid" becomes emostore's dev
# EmoBox recipe (examples/sb/dataset_prepare.py with hparams/*.yaml): split_ratio [0.8, 0.2], seed 1993.
RECIPE_SEED = 1993
RECIPE_TRAIN_SHARE = 0.8
_CODES = {"train": "r", "valid": "v", "test": "t"}
_SHOW = 5  # ids quoted per mismatch


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
    c = corpus.strip().lower().replace("_", "-")
    c = _ALIASES.get(c, _ALIASES.get(c.replace("-", ""), c))
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
            "read them from an EmoBox checkout instead (--from DIR)")
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
    pos = {i: n for n, i in enumerate(order)}
    folds = {}
    for name, fold in lists.folds.items():
        codes = ["."] * len(order)
        for part, ids in fold.items():
            for i in ids:
                codes[pos[i]] = _CODES[part]
        folds[name] = "".join(codes)
    obj = {"format": FORMAT, "corpus": lists.corpus, "emobox": lists.emobox, "source": lists.source,
           "codes": {v: k for k, v in _CODES.items()}, "unavailable": lists.unavailable,
           "ids": order, "folds": folds}
    out = _gzip_json(obj)
    if decode(out) != lists:
        raise PublishedListError(f"{lists.corpus}: the compact form does not reproduce the lists")
    return out


def _gzip_json(obj) -> bytes:
    return gzip.compress(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
                         compresslevel=9, mtime=0)


def decode(data: bytes) -> PublishedLists:
    try:
        obj = json.loads(gzip.decompress(data))
    except (OSError, EOFError, ValueError) as exc:
        raise PublishedListError(f"shipped EmoBox lists are unreadable ({exc})") from None
    if obj.get("format") != FORMAT:
        raise PublishedListError(f"shipped EmoBox lists have format {obj.get('format')!r}, expected {FORMAT!r}")
    ids, parts = obj["ids"], {part: code for code, part in obj["codes"].items()}
    folds = {}
    for name, s in obj["folds"].items():
        if len(s) != len(ids):
            raise PublishedListError(f"shipped EmoBox lists for {obj['corpus']}: fold {name} has "
                                     f"{len(s)} codes for {len(ids)} ids")
        fold: dict[str, list[str]] = {}
        for part in PUBLISHED_PARTS:
            members = [i for i, ch in zip(ids, s) if ch == parts.get(part)]
            if members or (part != "valid" and part not in obj["unavailable"].get(name, [])):
                fold[part] = members
        folds[name] = fold
    return PublishedLists(obj["corpus"], obj["emobox"], folds, obj["source"], obj["unavailable"])


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


def mismatch_message(corpus: str, report: dict) -> str:
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
    return f"{corpus}: the manifest does not match EmoBox's published lists: " + "; ".join(bits)


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
    out.write_bytes(encode(lists))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emostore.manifests.emobox_published",
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
