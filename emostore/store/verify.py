"""Check a store's internal consistency (and, optionally, that it matches a manifest)."""

from __future__ import annotations

import numpy as np

from emostore.store import layout
from emostore.store.reader import FeatureStore


def verify(fs: FeatureStore, manifest=None, sample: int = 64, tolerance: float = 2e-2) -> list[str]:
    """Return a list of problems (empty = the store is sound).

    Checks: array shapes agree with attrs and ids; every done row has frames and a finite pooled
    vector; frame ranges of done rows lie inside ``frames`` and do not overlap; frames of done
    rows are finite; on a sample of rows, pooled/mean equals the mean of the stored frames within
    ``tolerance`` (float16 frames); the manifest hash matches when a manifest is given.
    """
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
        problems.append(f"{len(both)} rows are both done and in errors, e.g. {fs.ids[both[0]]!r}")
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
                problems.append(f"pooled/mean of {fs.ids[r]!r} differs from its frames' mean (rel. err {err:.3g})")
                break
    if manifest is not None and manifest.sha256 != fs.attrs.get("manifest_sha256"):
        problems.append(f"manifest {manifest.source} (sha256 {manifest.sha256[:12]}...) is not the one this store "
                        f"was made from ({str(fs.attrs.get('manifest_sha256'))[:12]}...)")
    return problems
