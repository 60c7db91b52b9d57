"""Check a store's internal consistency (and, optionally, that it matches a manifest)."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np

from emostore.store import layout
from emostore.store.reader import FeatureStore


def object_problems(fs: FeatureStore) -> list[str]:
    """Every stored object that done rows need is there and readable: the index arrays' chunks,
    the ``pooled/mean`` chunk of each (row block, layer) holding a done row, and each ``frames``
    shard holding a done row's frames (its index is read: a truncated shard fails its checksum)."""
    from emostore.store import urls

    done = fs.done
    if not done.any():
        return []
    g = fs.group
    fsys, root = urls.filesystem(fs.path)
    problems = []

    def keys(name: str, coords) -> list[str]:
        array = g[name]
        stored = set(fsys.find(f"{root}/{name}/c")) if fsys.exists(f"{root}/{name}/c") else set()
        return [k for k in (array.metadata.encode_chunk_key(c) for c in coords) if f"{root}/{name}/{k}" not in stored]

    for name in (layout.IDS, layout.NUM_FRAMES, layout.OFFSETS, layout.DONE):
        problems += [f"{name}: stored object {k} is missing" for k in keys(name, [(0,)])]
    rows = np.flatnonzero(done)
    block = g[layout.POOLED].chunks[0]
    coords = [(int(b), layer, 0) for b in np.unique(rows // block) for layer in range(fs.num_layers)]
    problems += [f"pooled/mean: stored object {k} (rows {int(k.split('/')[1]) * block}.., layer "
                 f"{fs.layers[int(k.split('/')[2])]}) is missing" for k in keys(layout.POOLED, coords)]
    if fs.has_frames:
        frames = g[layout.FRAMES]
        shard = frames.shards[0] if frames.shards else frames.chunks[0]
        lo, n = fs.offsets[done], fs.num_frames[done]
        shards = sorted({int(k) for a, b in zip(lo, lo + n) for k in range(a // shard, (b - 1) // shard + 1)})
        absent = keys(layout.FRAMES, [(k, 0, 0) for k in shards])
        problems += [f"frames: stored object {k} (frames {int(k.split('/')[1]) * shard}..) is missing" for k in absent]
        for k in shards:
            if frames.metadata.encode_chunk_key((k, 0, 0)) in absent:
                continue
            try:
                np.asarray(frames[k * shard:k * shard + 1, :1, :1])
            except Exception as exc:  # a damaged object: checksum mismatch, short read, bad codec bytes
                problems.append(f"frames: stored object {frames.metadata.encode_chunk_key((k, 0, 0))} cannot be "
                                f"read ({type(exc).__name__}: {exc}); it is damaged (truncated?): restore it or "
                                "extract the store again")
    return problems


def verify(fs: FeatureStore, manifest=None, sample: int = 64, tolerance: float = 2e-2,
           notes: list[str] | None = None) -> list[str]:
    """Return a list of problems (empty = the store is sound).

    Checks: array shapes agree with attrs and ids; every done row has frames and a finite pooled
    vector; frame ranges of done rows lie inside ``frames`` and do not overlap; frames of done
    rows are finite; on a sample of rows, pooled/mean equals the mean of the stored frames within
    ``tolerance`` (float16 frames); when a manifest is given, it is the store's (see
    :func:`manifest_problem`). ``notes`` (a list) receives what passed only on a second look.
    """
    problems = object_problems(fs)
    if problems:  # reading what is missing or damaged would only fail
        return problems
    try:
        return _verify(fs, manifest, sample, tolerance, notes)
    except Exception as exc:  # a damaged object found while reading (checksum mismatch, short read)
        if not isinstance(exc, (ValueError, OSError)):
            raise
        return [f"a stored object cannot be read ({type(exc).__name__}: {exc}); the store is damaged: restore it "
                "or extract it again"]


def _verify(fs: FeatureStore, manifest, sample: int, tolerance: float, notes: list[str] | None) -> list[str]:
    problems: list[str] = []
    n, L, D = len(fs), fs.num_layers, fs.dim
    g = fs.group
    for name, shape in ((layout.NUM_FRAMES, (n,)), (layout.OFFSETS, (n,)), (layout.DONE, (n,)),
                        (layout.POOLED, (n, L, D))):
        if tuple(g[name].shape) != shape:
            problems.append(f"{name} has shape {tuple(g[name].shape)}, expected {shape}")
    if problems:
        return problems
    if len(set(fs.ids)) != n:
        problems.append("ids are not unique")
    done = fs.done
    erred = {e["index"] for e in fs.errors}
    both = sorted(erred & set(np.flatnonzero(done).tolist()))
    if both:
        problems.append(f"{len(both)} rows are both done and in errors, e.g. {str(fs.ids[both[0]])!r}")
    missing = n - int(done.sum()) - len(erred - set(np.flatnonzero(done).tolist()))
    if missing:
        problems.append(f"{missing} rows are neither done nor in errors (extraction unfinished: re-run extract)")
    nf, off = fs.num_frames[done], fs.offsets[done]
    if (nf <= 0).any():
        problems.append(f"{int((nf <= 0).sum())} done rows have no frames")
    if fs.has_frames:
        total = g[layout.FRAMES].shape[0]
        if tuple(g[layout.FRAMES].shape[1:]) != (L, D):
            problems.append(f"frames has shape {tuple(g[layout.FRAMES].shape)}, expected [*, {L}, {D}]")
        if (off < 0).any() or ((off + nf) > total).any():
            problems.append("some frame ranges lie outside the frames array")
        order = np.argsort(off, kind="stable")
        if ((off[order][1:]) < (off + nf)[order][:-1]).any():
            problems.append("frame ranges of different utterances overlap")
    pooled = fs.group[layout.POOLED]
    rows = np.flatnonzero(done)
    bad_pooled = 0
    for start in range(0, rows.size, 1024):
        chunk = pooled.get_orthogonal_selection((rows[start:start + 1024], slice(None), slice(None)))
        bad_pooled += int((~np.isfinite(chunk)).any(axis=(1, 2)).sum())
    if bad_pooled:
        problems.append(f"{bad_pooled} done rows have NaN/inf in pooled/mean")
    if fs.has_frames and rows.size and not any("outside" in p or "overlap" in p or "shape" in p for p in problems):
        fr = fs.frames_dask()
        nonfinite = int((~np.isfinite(fr)).any(axis=(1, 2)).sum().compute())
        if nonfinite:
            problems.append(f"{nonfinite} frames contain NaN/inf")
        rng = np.random.default_rng(0)
        for r in rng.choice(rows, size=min(sample, rows.size), replace=False):
            mean = fs.frames(int(r)).astype(np.float32).mean(axis=0)
            ref = pooled[int(r)]
            err = float(np.abs(mean - ref).max() / (np.abs(ref).max() + 1e-6))
            if err > tolerance:
                problems.append(f"pooled/mean of {str(fs.ids[r])} differs from its frames' mean (rel. err {err:.3g})")
                break
    if manifest is not None:
        problem, note = manifest_problem(fs, manifest)
        if problem:
            problems.append(problem)
        if note and notes is not None:
            notes.append(note)
    return problems


def manifest_problem(fs: FeatureStore, manifest) -> tuple[str | None, str | None]:
    """(problem, note): is ``manifest`` the one the store was made from?

    The same hash passes. A different hash (another manifest of the same clips: a folder scan and
    an adapter's JSONL with more columns) passes with a note when it names the store's ids in the
    store's order and each id's audio is the same file (or identical bytes) as in the manifest the
    store recorded, which must still be readable and unchanged to compare against.
    """
    stored_sha = str(fs.attrs.get("manifest_sha256"))
    if manifest.sha256 == stored_sha:
        return None, None
    differs = (f"manifest {manifest.source} (sha256 {manifest.sha256[:12]}...) is not the one this store was "
               f"made from ({fs.attrs.get('manifest')}, sha256 {stored_sha[:12]}...)")
    ids = [str(i) for i in fs.ids]
    if manifest.ids != ids:
        extra = sorted(set(manifest.ids) - set(ids))
        missing = sorted(set(ids) - set(manifest.ids))
        why = (f"{len(missing)} store ids not in it (e.g. {missing[0]!r})" if missing else
               f"{len(extra)} ids not in the store (e.g. {extra[0]!r})" if extra else "its ids are in another order")
        return f"{differs}: {why}", None
    original = _recorded_manifest(fs, stored_sha)
    if isinstance(original, str):
        return f"{differs}; the ids agree but the audio cannot be compared: {original}", None
    mine = dict(zip(manifest.ids, manifest.audio_paths()))
    for i, audio in zip(original.ids, original.audio_paths()):
        if not _same_audio(audio, mine[i]):
            return f"{differs}: id {i!r} has other audio ({mine[i]}, the store's is {audio})", None
    return None, (f"manifest {manifest.source} differs from the one this store was made from "
                  f"({original.source}) but names the same {len(ids)} ids in the same order with the same "
                  f"audio: it matches")


def _recorded_manifest(fs: FeatureStore, sha: str):
    """The manifest the store recorded (a Manifest), or why it cannot be used (a str)."""
    from emostore.manifests import ManifestError, load_manifest

    source = fs.attrs.get("manifest")
    if not source or not Path(source).exists():
        return f"the store's manifest {source} is not there"
    try:
        m = load_manifest(source)
    except ManifestError as exc:
        return str(exc)
    if m.sha256 != sha:
        return f"the store's manifest {source} has changed since extraction"
    return m


def _same_audio(a: str, b: str) -> bool:
    """The same file, or two files with identical bytes (a URL only equals itself)."""
    if a == b:
        return True
    if "://" in a or "://" in b:
        return False
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or pa.samefile(pb) or filecmp.cmp(pa, pb, shallow=False)
    except OSError:
        return False
