"""Sweep settings that name stores instead of paths: a lab's (corpus, encoder), and cross-corpus pairs.

In a sweep specification (any of them may be a grid axis)::

    lab = "lab/"
    encoder = ["whisper", "fbank"]
    corpus = "emodb"                      # store = LAB/emodb/<encoder>.zarr
    # or, for EmoBox's cross-corpus track:
    cross = ["emodb->ravdess", "ravdess->emodb", "emodb->emodb", "ravdess->ravdess"]
    cross_dir = "cross/"                  # where the pairs' inputs go (default LAB/_cross)

``cross = "A->B"`` trains on corpus A and tests on B's balanced set
(:func:`emostore.crosscorpus.pair.prepare`): it sets ``store``, ``labels``, ``partition`` and
``fold = "cross"``, with frames copied when the head needs them. The pair's inputs are written
once, when the specification is expanded, under ``CROSS_DIR/<encoder>/<A>__<B>``.
"""

from __future__ import annotations

from emostore.lab.layout import LabError, find_store
from emostore.store import urls

NAMES = ("lab", "corpus", "encoder", "cross", "cross_dir")
PATH_SETTINGS = ("lab", "cross_dir")  # relative to the specification file, like the inputs
CROSS_DIR = "_cross"


def _pair(text: str) -> tuple[str, str]:
    parts = str(text).split("->")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise LabError(f"cross {text!r}: write TRAIN->TEST, e.g. emodb->ravdess")
    return parts[0].strip(), parts[1].strip()


def named_inputs(settings: dict) -> dict:
    """``settings`` with lab names replaced by input paths (module docstring); others unchanged."""
    if not any(k in settings for k in NAMES):
        return settings
    settings = dict(settings)
    lab, corpus, encoder = settings.pop("lab", None), settings.pop("corpus", None), settings.pop("encoder", None)
    cross, cross_dir = settings.pop("cross", None), settings.pop("cross_dir", None)
    if lab is None:
        raise LabError(f"{', '.join(k for k in NAMES if k != 'lab')}: name stores in a lab; the sweep needs `lab`")
    if encoder is None:
        raise LabError("a store named in a lab needs `encoder` (the <encoder>.zarr of LAB/<corpus>/)")
    if (corpus is None) == (cross is None):
        raise LabError("name either `corpus` (a store of the lab) or `cross` (a TRAIN->TEST pair), not both or neither")
    if corpus is not None:
        if settings.get("store"):
            raise LabError("`store` and `corpus` both name the store; keep one")
        settings["store"] = find_store(lab, corpus, encoder)
        return settings
    if any(settings.get(k) for k in ("store", "labels", "partition")):
        raise LabError("`cross` sets store, labels and partition itself; remove them from the specification")
    from emostore.crosscorpus.pair import Side, prepare
    from emostore.heads.names import FRAME_HEADS

    train, test = _pair(cross)
    head = settings.get("head")
    frames = head in FRAME_HEADS
    base = cross_dir or urls.join(lab, CROSS_DIR)
    if urls.is_url(base):
        raise LabError(f"cross_dir {base}: cross-corpus inputs are written to a local folder")
    out = f"{base}/{encoder}/{train}__{test}" + ("-frames" if frames else "")
    inputs = prepare(Side(train, find_store(lab, train, encoder)), Side(test, find_store(lab, test, encoder)), out,
                     frames=frames)
    settings.update(store=inputs.store, labels=inputs.labels, partition=inputs.partition, fold="cross")
    return settings
