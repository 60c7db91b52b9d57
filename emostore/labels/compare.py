"""How two relabelings differ (``emostore relabel compare A B``).

A and B are relabelings (:mod:`emostore.labels.relabeled`) or label sets (their ``train`` targets;
excluded rows have none). Both must cover the same utterance ids and the same classes (B is
reordered to A's class order when both name their classes). Reported, over the common ids:

- ``mean_shift``: per class, mean of B - A (what B adds to that class on average);
- ``js_mean`` / ``js_max`` (and ``js_max_id``): the Jensen-Shannon **divergence** in bits (base 2,
  so in [0, 1]): ``JSD(P, Q) = H((P+Q)/2) - (H(P) + H(Q)) / 2``. This is the square of
  ``scipy.spatial.distance.jensenshannon(P, Q, base=2)``, which returns the JS *distance*;
- ``argmax_changed``: share of utterances whose most likely class differs (ties go to the first
  class in class order, as ``numpy.argmax``);
- ``binary_changed``: share whose binary vector (class positive when its share exceeds 1/C, the
  test-target threshold) differs in any class.
"""

from __future__ import annotations

import numpy as np

from emostore.labels.aggregate import share_positive
from emostore.labels.relabeled import Relabeling, RelabelingError, read_relabeling


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits along the last axis (0 log 0 = 0)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log2(a / b), 0.0)
        return t.sum(-1)

    return np.clip((kl(p, m) + kl(q, m)) / 2, 0.0, 1.0)


def _align(a: Relabeling, b: Relabeling, names=("A", "B")) -> tuple[np.ndarray, np.ndarray, list[str], tuple]:
    ida, idb = set(a.ids), set(b.ids)
    if ida != idb:
        parts = []
        for label, missing in ((names[1], sorted(ida - idb)), (names[0], sorted(idb - ida))):
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                parts.append(f"{len(missing)} ids missing from {label}: {shown}")
        raise RelabelingError("the relabelings cover different utterances: " + "; ".join(parts))
    ca, cb = a.classes, b.classes
    da, db = a.distributions, b.by_id()
    db = np.stack([db[i] for i in a.ids]) if a.ids else np.zeros_like(da)
    if ca is not None and cb is not None:
        if set(ca) != set(cb):
            raise RelabelingError(f"the relabelings have different classes: {list(ca)} vs {list(cb)}")
        db = db[:, [cb.index(c) for c in ca]]
    classes = ca or cb
    if da.shape[1:] != db.shape[1:]:
        raise RelabelingError(f"the relabelings have {da.shape[1]} and {db.shape[1]} classes")
    if classes is None:
        classes = tuple(f"class{k}" for k in range(da.shape[1]))
    return da, db, list(a.ids), tuple(classes)


def compare(a: Relabeling, b: Relabeling, names=("A", "B")) -> dict:
    """The differences between two relabelings of the same utterances (see the module doc)."""
    da, db, ids, classes = _align(a, b, names)
    n = da.shape[0]
    if n == 0:
        raise RelabelingError("the relabelings have no utterances in common")
    js = js_divergence(da, db)
    worst = int(np.argmax(js))
    changed_argmax = da.argmax(1) != db.argmax(1)
    changed_binary = (share_positive(da) != share_positive(db)).any(1)
    return {
        "a": a.path, "b": b.path,
        "utterances": n,
        "classes": list(classes),
        "mean_shift": {cl: float(v) for cl, v in zip(classes, (db - da).mean(0))},
        "js": "Jensen-Shannon divergence, bits (= scipy jensenshannon(base=2) squared)",
        "js_mean": float(js.mean()),
        "js_max": float(js[worst]),
        "js_max_id": ids[worst],
        "argmax_changed": float(changed_argmax.mean()),
        "binary_changed": float(changed_binary.mean()),
    }


def compare_files(path_a, path_b) -> dict:
    return compare(read_relabeling(path_a), read_relabeling(path_b), names=(str(path_a), str(path_b)))


def format_report(r: dict) -> str:
    lines = [f"A {r['a']}", f"B {r['b']}", f"utterances       {r['utterances']}",
             "mean shift B - A " + ", ".join(f"{c} {v:+.4f}" for c, v in r["mean_shift"].items()),
             f"JS divergence    mean {r['js_mean']:.4f}, max {r['js_max']:.4f} ({r['js_max_id']}) [bits; "
             "= scipy jensenshannon(base=2)**2]",
             f"argmax changed   {100 * r['argmax_changed']:.2f}%",
             f"binary changed   {100 * r['binary_changed']:.2f}% (class positive when share > 1/C)"]
    return "\n".join(lines)
