"""EncoderSource (encoder recomputed per batch, the baseline of bench/sweep.py) gives the store's logits for the
same head."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from emostore.extract.encoders import load_encoder
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.heads.heads import HEADS, build_head
from emostore.heads.sources import FramesSource, PooledSource
from emostore.manifests import load_manifest
from emostore.store import open as open_store

from conftest import REPO, emodb_clips, write_manifest

sys.path.insert(0, str(REPO / "bench"))
from encoder_source import EncoderSource  # noqa: E402  (bench/encoder_source.py)

pytestmark = pytest.mark.slow  # real models, clusters or killed subprocesses: see README's development notes


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """Whisper tiny.en store (float32 frames) over 4 real EmoDB clips cut to 2.0/1.5/1.1/0.6 s."""
    tmp = tmp_path_factory.mktemp("bench_sweep")
    rows = []
    for clip, seconds in zip(emodb_clips("03*")[:4], (2.0, 1.5, 1.1, 0.6)):
        data, rate = sf.read(clip, dtype="float32")
        out = tmp / clip.name
        sf.write(out, data[: int(seconds * rate)], rate)
        rows.append({"id": clip.stem, "audio": str(out), "speaker": clip.stem[:2]})
    mpath = write_manifest(tmp / "m.jsonl", rows)
    extract(load_manifest(mpath), str(tmp / "w.zarr"),
            ExtractOptions(encoder="ct2-whisper", frames_dtype="float32"))
    fs = open_store(tmp / "w.zarr")
    assert fs.done.all() and len(set(fs.num_frames.tolist())) == 4  # the mask really matters
    src = EncoderSource.for_store(fs, load_manifest(mpath), load_encoder("ct2-whisper"))
    return fs, src


ROWS = np.array([2, 0, 3, 1], dtype=np.int64)  # not store order, several lengths in one batch


def _head(name, fs):
    torch.manual_seed(0)
    head = build_head(name, fs.num_layers, fs.dim, 4, layer=None if name == "weighted-sum" else 2).eval()
    if name == "weighted-sum":  # non-uniform layer weights, so the layer mix is compared
        head.weights.data = torch.tensor([0.3, -1.0, 2.0, 0.1, -0.5])
    return head


@pytest.mark.parametrize("name", list(HEADS))
def test_encoder_source_matches_store_source(whisper, name):
    fs, src = whisper
    head = _head(name, fs)
    store = PooledSource(fs) if HEADS[name].pooled_exact else FramesSource(fs)
    with torch.no_grad():
        got, want = src.logits(head, ROWS), store.logits(head, ROWS)
    assert got.shape == (4, 4)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_frames_path_of_a_pooled_head_matches_too(whisper):
    """The forced frames path (padding + mask + forward_frames) agrees with the store's pooled/mean."""
    fs, src = whisper
    head = _head("weighted-sum", fs)
    src.features = "frames"
    try:
        with torch.no_grad():
            got = src.logits(head, ROWS)
    finally:
        src.features = "auto"
    torch.testing.assert_close(got, PooledSource(fs).logits(head, ROWS), atol=1e-4, rtol=1e-4)


def test_gradients_reach_the_head_not_the_encoder(whisper):
    fs, src = whisper
    head = _head("probe", fs).train()
    src.logits(head, ROWS[:2]).sum().backward()
    assert head.out.weight.grad is not None and head.out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in src.encoder.encoder.parameters())
