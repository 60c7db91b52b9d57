"""One cross-corpus pair (train on A, test on B) as ordinary run inputs: a store, a label set, a partition.

Training reads one store, one label set and one partition; a cross-corpus run is that run on
inputs derived from the two corpora's stores, so every head, the sweep (resume, run ids, the
results table) and the scoring work on it unchanged. :func:`prepare` writes, into ``OUT``:

* ``store.zarr``: the rows the pair uses, copied from A's and B's stores (pooled features, and
  frames with ``frames=True``), ids written ``<corpus>:<id>``; attrs ``cross`` hold the record below;
* ``labels.jsonl``: one-hot targets over the shared classes (:mod:`~emostore.crosscorpus.classes`);
* ``partition.json``: one fold ``cross``: train = all of A's clips of the shared classes (on the
  diagonal A = B: less B's test set), dev = EmoBox's recipe split of it (random 20 %, seed 1993),
  test = B's balanced set (:mod:`~emostore.crosscorpus.balanced`);
* ``cross.json``: the record: corpora, class mapping, clips left out per class, the test set's
  source, sizes, and the source stores' fingerprints.

A and B must come from the same encoder and layers (their stores' fingerprints); anything else is
one error naming what differs. The inputs are rebuilt only when a source store or manifest changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emostore.crosscorpus.balanced import BalancedSet, build_balanced, published
from emostore.crosscorpus.classes import SHARED_CLASSES, CrossCorpusError, class_mapping, shared_labels
from emostore.labels.aggregate import LabelRecord, write_label_set
from emostore.manifests.emobox_published import RECIPE_SEED, recipe_dev_split
from emostore.manifests.manifest import load_manifest
from emostore.manifests.partitions.io import Partition, write_partition
from emostore.store import layout
from emostore.store.reader import open as open_store
from emostore.store.writer import init_group, json_attrs

FOLD = "cross"
RECORD = "cross.json"
COMPARED = ("format_version", "encoder", "layers")  # what A's and B's fingerprints must share
COPY_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Side:
    """One corpus of a pair: its name, its store and its manifest (default: ``manifest.jsonl`` beside the store)."""

    corpus: str
    store: str
    manifest: str | None = None

    def manifest_path(self) -> Path:
        return Path(self.manifest) if self.manifest else Path(self.store).parent / "manifest.jsonl"


@dataclass(frozen=True)
class CrossInputs:
    store: str
    labels: str
    partition: str
    record: dict


def pair_name(train: str, test: str) -> str:
    return f"{train}->{test}"


def check_compatible(a, b) -> None:
    """Refuse stores whose encoder or layers differ (one line naming each difference)."""
    fa, fb = a.attrs["fingerprint"], b.attrs["fingerprint"]
    diff = [f"{k}: {json.dumps(fa.get(k))} vs {json.dumps(fb.get(k))}" for k in COMPARED if fa.get(k) != fb.get(k)]
    if diff:
        raise CrossCorpusError(f"{a.path} and {b.path} come from different extractions ({'; '.join(diff)}); "
                               "a cross-corpus pair needs stores of the same encoder and layers")


def _load(side: Side, fs):
    path = side.manifest_path()
    man = load_manifest(path, require_audio=False)
    want = fs.attrs["fingerprint"].get("manifest_sha256")
    if want and man.sha256 != want:
        raise CrossCorpusError(f"{path}: not the manifest {fs.path} was extracted from (sha256 differs); "
                               "name the right one")
    return man.rows


def test_set(corpus: str, rows: list[dict], labels: dict[str, str]) -> BalancedSet:
    """B's balanced set: EmoBox's published one where it exists, else emostore's built one."""
    pub = published(corpus)
    if pub is None:
        speakers = {str(r["id"]): str(r.get("speaker")) for r in rows if str(r["id"]) in labels}
        return build_balanced(corpus, labels, speakers)
    have = {str(r["id"]) for r in rows}
    missing = [i for i in pub.ids if i not in have]
    if missing:
        raise CrossCorpusError(f"{corpus}: the manifest lacks {len(missing)} of the {len(pub.ids)} clips of EmoBox's "
                               f"balanced test set ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
    wrong = [i for i in pub.ids if labels.get(i) != pub.labels[i]]
    if wrong:
        raise CrossCorpusError(f"{corpus}: {len(wrong)} clips of EmoBox's balanced set carry another class in the "
                               f"manifest ({wrong[0]}: {pub.labels[wrong[0]]} published, {labels.get(wrong[0])} here)")
    return pub


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def prepare(train: Side, test: Side, out: str | Path, frames: bool = False) -> CrossInputs:
    """Write (or reuse) the inputs of the pair ``train`` -> ``test`` under ``out`` (module doc)."""
    out = Path(out)
    fa, fb = open_store(train.store), open_store(test.store)
    check_compatible(fa, fb)
    if frames and not (fa.has_frames and fb.has_frames):
        raise CrossCorpusError(f"frames asked for, but {fa.path if not fa.has_frames else fb.path} has none")
    key = _digest(FOLD, fa.attrs["fingerprint"], fb.attrs["fingerprint"], train.corpus, test.corpus, frames,
                  int(fa.done.sum()), int(fb.done.sum()))
    rec_path = out / RECORD
    if rec_path.is_file():
        record = json.loads(rec_path.read_text(encoding="utf-8"))
        if record.get("key") == key:
            return CrossInputs(str(out / "store.zarr"), str(out / "labels.jsonl"), str(out / "partition.json"), record)
    rows_a, rows_b = _load(train, fa), _load(test, fb)
    labels_a, left_a = shared_labels(train.corpus, rows_a)
    labels_b, left_b = shared_labels(test.corpus, rows_b)
    tset = test_set(test.corpus, rows_b, labels_b)
    done_b = {u for u, d in zip(fb.ids.tolist(), fb.done) if d}
    test_ids = [i for i in tset.ids if i in done_b]
    held = set(tset.ids) if train.corpus == test.corpus else set()
    done_a = {u for u, d in zip(fa.ids.tolist(), fa.done) if d}
    train_all = [str(r["id"]) for r in rows_a if str(r["id"]) in labels_a and str(r["id"]) in done_a
                 and str(r["id"]) not in held]
    tr, dev = recipe_dev_split(train_all, RECIPE_SEED)

    def cid(corpus, i):
        return f"{corpus}:{i}"

    fold = {"train": [cid(train.corpus, i) for i in tr], "dev": [cid(train.corpus, i) for i in dev],
            "test": [cid(test.corpus, i) for i in test_ids]}
    sources = [(fa, train.corpus, i) for i in train_all]
    if train.corpus != test.corpus:
        sources += [(fb, test.corpus, i) for i in test_ids]
    else:
        seen = set(train_all)
        sources += [(fb, test.corpus, i) for i in test_ids if i not in seen]
    classes = list(SHARED_CLASSES)
    lab = {cid(train.corpus, i): labels_a[i] for i in train_all}
    lab.update({cid(test.corpus, i): labels_b[i] for i in test_ids})
    record = {
        "key": key, "fold": FOLD, "train": train.corpus, "test": test.corpus, "classes": classes,
        "mapping": {train.corpus: class_mapping(train.corpus), test.corpus: class_mapping(test.corpus)},
        "left_out": {train.corpus: left_a, test.corpus: left_b},
        "test_set": {**tset.source, "clips": len(tset.ids), "per_class": tset.per_class(),
                     "without_features": len(tset.ids) - len(test_ids)},
        "train_set": {"recipe": "EmoBox: all clips of the shared classes, dev = random 20% (seed 1993)",
                      "clips": len(train_all), "held_out_test_clips": len(held & set(labels_a)),
                      "without_features": sum(1 for i in labels_a if i not in done_a)},
        "sizes": {p: len(v) for p, v in fold.items()},
        "stores": {train.corpus: {"path": fa.path, "fingerprint": fa.attrs["fingerprint"]},
                   test.corpus: {"path": fb.path, "fingerprint": fb.attrs["fingerprint"]}},
        "frames": frames,
    }
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_store(tmp / "store.zarr", fa, sources, frames, record, key)
    records = [LabelRecord(i, [float(c == lab[i]) for c in classes], [int(c == lab[i]) for c in classes])
               for i, _ in ((cid(c, u), s) for s, c, u in sources)]
    write_label_set(tmp / "labels.jsonl", records, {
        "rule": "intended", "classes": classes, "soft": False, "smoothing": 0.0, "test_targets": "onehot",
        "cross": {k: record[k] for k in ("train", "test", "mapping")}, "utterances": len(records), "excluded": 0})
    write_partition(Partition({FOLD: fold}, {"rule": "emobox-cross-corpus", "train": train.corpus,
                                             "test": test.corpus, "speaker_independent": False,
                                             "test_set": record["test_set"]}), tmp / "partition.json")
    (tmp / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return CrossInputs(str(out / "store.zarr"), str(out / "labels.jsonl"), str(out / "partition.json"), record)


def _write_store(path: Path, fa, sources, frames: bool, record: dict, key: str) -> None:
    """The pair's store: ``sources`` rows ((store, corpus, id) in order) copied, every row done."""
    ids = [f"{c}:{u}" for _, c, u in sources]
    fp = fa.attrs["fingerprint"]
    fingerprint = {**{k: fp.get(k) for k in COMPARED}, "frames_dtype": fp.get("frames_dtype") if frames else None,
                   "manifest_sha256": key, "cross": pair_name(record["train"], record["test"])}
    attrs = json_attrs({**fa.attrs, "corpus": pair_name(record["train"], record["test"]), "manifest": None,
                        "manifest_sha256": key, "frames_dtype": fingerprint["frames_dtype"],
                        "cross": record, "fingerprint": fingerprint})
    g = init_group(path, ids, fa.num_layers, fa.dim, fingerprint["frames_dtype"], attrs=attrs)
    by_store: dict[int, tuple] = {}
    for n, (s, _, u) in enumerate(sources):
        by_store.setdefault(id(s), (s, []))[1].append((n, s.index(u)))
    pooled = np.zeros((len(ids), fa.num_layers, fa.dim), dtype=np.float32)
    nframes = np.zeros(len(ids), dtype=np.int64)
    for s, pairs in by_store.values():
        dst, src = np.asarray([p[0] for p in pairs]), np.asarray([p[1] for p in pairs])
        order = np.argsort(src)
        pooled[dst[order]] = s.pooled(rows=src[order])
        nframes[dst] = s.num_frames[src]
    g[layout.POOLED][:] = pooled
    offsets = np.concatenate([[0], np.cumsum(nframes)[:-1]]).astype(np.int64)
    g[layout.NUM_FRAMES][:] = nframes
    g[layout.OFFSETS][:] = offsets
    if frames:
        _copy_frames(g, sources, offsets, nframes)
    g[layout.DONE][:] = np.ones(len(ids), dtype=bool)


def _copy_frames(g, sources, offsets, nframes) -> None:
    """Frames of every row, in the new order, written in buffers of at most COPY_BYTES."""
    dst = g[layout.FRAMES]
    dst.resize((int(nframes.sum()), *dst.shape[1:]))
    row_bytes = int(np.prod(dst.shape[1:])) * dst.dtype.itemsize
    buf, start = [], 0
    for n, (s, _, u) in enumerate(sources):
        buf.append(s.frames(u))
        end = int(offsets[n] + nframes[n])
        if (end - start) * row_bytes >= COPY_BYTES or n == len(sources) - 1:
            dst[start:end] = np.concatenate(buf)
            buf, start = [], end
