"""Heads and training from the store: pooled == frames exactness, determinism, class weights, a real run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from emostore.cli import main
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.heads.heads import HEADS, build_head
from emostore.heads.config import TrainConfig, TrainError
from emostore.heads.losses import class_balanced_weights
from emostore.heads.train import run
from emostore.labels.aggregate import aggregate_manifest, write_label_set
from emostore.manifests import load_manifest

from conftest import FOLD_EMOTIONS as EMOTIONS, emodb_fold_rows, write_manifest


# -- heads -------------------------------------------------------------------------------------


def _padded_batch(gen, b=4, t=9, layers=3, dim=6):
    x = torch.randn(b, t, layers, dim, generator=gen)
    lengths = torch.tensor([9, 5, 1, 7])
    mask = torch.arange(t)[None, :] < lengths[:, None]
    x[~mask] = 1e3 * torch.randn(int((~mask).sum()), layers, dim, generator=gen)  # padding must not leak
    pooled = (x * mask[..., None, None]).sum(1) / lengths[:, None, None]
    return x, mask, pooled


@pytest.mark.parametrize("name", [n for n, c in HEADS.items() if c.pooled_exact])
def test_pooled_exact_heads_give_frame_outputs(name):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    head = build_head(name, 3, 6, 4, layer=None if name == "weighted-sum" else 1).eval()
    if name == "weighted-sum":  # non-uniform layer weights, so the layer mix is really tested
        head.weights.data = torch.tensor([0.3, -1.0, 2.0])
    x, mask, pooled = _padded_batch(gen)
    with torch.no_grad():
        a, b = head.forward_frames(x, mask), head.forward_pooled(pooled)
    assert a.shape == (4, 4)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_emobox_is_not_pooled_exact():
    assert HEADS["emobox"].pooled_exact is False
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    head = build_head("emobox", 3, 6, 4, layer=2, hidden=16).eval()
    x, mask, pooled = _padded_batch(gen)
    with torch.no_grad():
        frames_out = head.forward_frames(x, mask)
        # the same layers applied to the pooled vector (what a pooled shortcut would compute)
        naive = head.out(torch.relu(head.hidden(head.norm(pooled[:, 2]))))
    assert not torch.allclose(frames_out, naive, atol=1e-3)
    with pytest.raises(ValueError, match="needs frames"):
        head.forward_pooled(pooled)


def test_weighted_sum_starts_equal_and_sums_to_one():
    w = build_head("weighted-sum", 5, 6, 3).layer_weights()
    torch.testing.assert_close(w, torch.full((5,), 0.2))


def test_class_balanced_weights_by_hand():
    targets = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 0, 0.5]])
    n = [3.5, 1.0, 0.5]
    raw = [(1 - 0.9) / (1 - 0.9 ** k) for k in n]
    expected = np.array(raw) / sum(raw) * 3
    np.testing.assert_allclose(class_balanced_weights(targets, 0.9), expected, rtol=1e-12)
    assert expected[2] > expected[1] > expected[0]  # rarer class weighs more
    np.testing.assert_allclose(class_balanced_weights(targets, 0.0), np.ones(3))
    w = class_balanced_weights(np.array([[1.0, 0.0], [1.0, 0.0]]), 0.99)  # unseen class -> 0
    assert w[1] == 0.0 and w[0] == pytest.approx(2.0)


# -- a tiny real store -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """fbank store (float32 frames) over 24 real EmoDB clips, an MR label set, a speaker-disjoint fold."""
    tmp = tmp_path_factory.mktemp("heads")
    rows, fold = emodb_fold_rows()  # 18 train, 3 dev, 3 test clips
    mpath = write_manifest(tmp / "m.jsonl", rows)
    extract(load_manifest(mpath), str(tmp / "s.zarr"), ExtractOptions(encoder="fbank", frames_dtype="float32"))
    extract(load_manifest(mpath), str(tmp / "nf.zarr"), ExtractOptions(encoder="fbank", frames=False))
    records, meta = aggregate_manifest(mpath, "mr")
    # a multi-layer store (Whisper tiny.en: embeddings + 4 blocks) so the layer mix is really tested
    extract(load_manifest(mpath), str(tmp / "w.zarr"), ExtractOptions(encoder="ct2-whisper", frames_dtype="float32"))
    write_label_set(tmp / "labels.jsonl", records, meta)
    (tmp / "part.json").write_text(json.dumps({"f1": fold}))
    return {"tmp": tmp, "store": str(tmp / "s.zarr"), "whisper": str(tmp / "w.zarr"), "nf": str(tmp / "nf.zarr"), "labels": str(tmp / "labels.jsonl"),
            "part": str(tmp / "part.json"), "fold": fold, "rows": rows}


def _cfg(**kw):
    return TrainConfig(**{"head": "probe", "fold": "f1", "epochs": 6, "lr": 1e-2, "batch_size": 8, **kw})


@pytest.mark.slow
def test_fixture_is_real_and_disjoint(real):
    f = real["fold"]
    assert len(real["rows"]) >= 24 and all(f[p] for p in f)
    spk = {p: {u[:2] for u in f[p]} for p in f}
    assert not (spk["test"] & (spk["train"] | spk["dev"]))
    assert {r["emotion"] for r in real["rows"] if r["id"] in f["train"]} == set(EMOTIONS.values())


@pytest.mark.slow
@pytest.mark.parametrize("head", ["probe", "weighted-sum"])
def test_cli_train_writes_a_run(real, head, tmp_path):
    out = tmp_path / head
    r = CliRunner().invoke(main, ["train", "--store", real["store"], "--labels", real["labels"], "--partition",
                                  real["part"], "--fold", "f1", "--head", head, "--epochs", "5", "--lr", "0.01",
                                  "--batch-size", "8", "--seed", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "run.json").read_text())
    assert rec["features"] == "pooled" and rec["seed"] == 3 and rec["config"]["head"] == head
    assert len(rec["dev_losses"]) == len(rec["train_losses"]) == 5
    assert rec["selected_epoch"] == int(np.argmin(rec["dev_losses"])) + 1
    assert rec["store"]["manifest_sha256"] and rec["labels"]["sha256"] and rec["versions"]["torch"]
    assert rec["labels"]["classes"] == sorted(EMOTIONS.values())
    assert (out / "model.pt").stat().st_size > 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == sorted(real["fold"]["test"])
    for p in preds:
        assert len(p["probs"]) == 3 and sum(p["probs"]) == pytest.approx(1.0, abs=1e-6)
    if head == "weighted-sum":
        lw = json.loads((out / "layer_weights.json").read_text())
        assert lw["layers"] == [0] and sum(lw["weights"]) == pytest.approx(1.0)
    else:
        assert not (out / "layer_weights.json").exists()


@pytest.mark.slow
def test_same_seed_same_predictions(real, tmp_path):
    a = run(real["store"], real["labels"], real["part"], _cfg(head="ar-mlp", seed=7), tmp_path / "a")
    b = run(real["store"], real["labels"], real["part"], _cfg(head="ar-mlp", seed=7), tmp_path / "b")
    c = run(real["store"], real["labels"], real["part"], _cfg(head="ar-mlp", seed=8), tmp_path / "c")
    assert (tmp_path / "a" / "predictions.jsonl").read_bytes() == (tmp_path / "b" / "predictions.jsonl").read_bytes()
    assert a.dev_losses == b.dev_losses
    assert not np.array_equal(a.test_probs, c.test_probs)


@pytest.mark.slow
@pytest.mark.parametrize("store", ["store", "whisper"])
def test_pooled_path_matches_frames_path(real, store, tmp_path):
    """DESIGN.md: a head exact on pooled features trains to the same model from pooled/mean as from frames."""
    kw = dict(head="weighted-sum", seed=5, epochs=4, shuffle="blocks")
    p = run(real[store], real["labels"], real["part"], _cfg(**kw), tmp_path / "p")
    f = run(real[store], real["labels"], real["part"], _cfg(features="frames", **kw), tmp_path / "f")
    assert (p.features, f.features) == ("pooled", "frames")
    np.testing.assert_allclose(p.dev_losses, f.dev_losses, atol=1e-4)
    np.testing.assert_allclose(p.train_losses, f.train_losses, atol=1e-4)
    np.testing.assert_allclose(p.test_probs, f.test_probs, atol=1e-4)
    assert p.selected_epoch == f.selected_epoch
    np.testing.assert_allclose(p.layer_weights, f.layer_weights, atol=1e-5)
    if store == "whisper":  # five layers, and training moved their weights away from equal
        assert len(p.layer_weights) == 5 and np.ptp(p.layer_weights) > 1e-3


@pytest.mark.slow
def test_emobox_trains_on_frames(real, tmp_path):
    res = run(real["store"], real["labels"], real["part"], _cfg(head="emobox", epochs=2, hidden=32), tmp_path / "e")
    assert res.features == "frames" and res.test_probs.shape == (len(real["fold"]["test"]), 3)


@pytest.mark.slow
def test_frames_head_on_pooled_only_store_says_how_to_reextract(real, tmp_path):
    r = CliRunner().invoke(main, ["train", "--store", real["nf"], "--labels", real["labels"], "--partition",
                                  real["part"], "--fold", "f1", "--head", "emobox", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "--frames" in r.output and "re-extract" in r.output
    # a pooled-exact head still trains there
    res = run(real["nf"], real["labels"], real["part"], _cfg(epochs=1), tmp_path / "y")
    assert res.features == "pooled"


@pytest.mark.slow
def test_missing_ids_are_named_and_excluded_rows_skipped(real, tmp_path):
    fold = {k: list(v) for k, v in real["fold"].items()}
    fold["test"].append("99z99Zz")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"f1": fold}))
    labels = [json.loads(line) for line in open(real["labels"])]
    labels.append({"id": "99z99Zz", "train": [1.0, 0.0, 0.0], "test": [1, 0, 0], "excluded": None})
    lp = tmp_path / "l.jsonl"
    lp.write_text("".join(json.dumps(r) + "\n" for r in labels))
    with pytest.raises(TrainError, match="not in the store.*99z99Zz"):
        run(real["store"], str(lp), str(bad), _cfg(epochs=1), tmp_path / "o")
    # the same id, excluded by the label set, is skipped rather than an error
    labels[-1] = {"id": "99z99Zz", "train": None, "test": None, "excluded": "no majority"}
    lp.write_text("".join(json.dumps(r) + "\n" for r in labels))
    res = run(real["store"], str(lp), str(bad), _cfg(epochs=1), tmp_path / "o")
    assert "99z99Zz" not in res.test_ids and res.record["skipped_excluded"]["test"] == 1


@pytest.mark.slow
def test_one_layer_heads_read_only_their_layer(real):
    """A frames source reading just the head's layer gives the logits of reading all five."""
    from emostore.heads.sources import FramesSource
    from emostore.store import open as open_store

    fs = open_store(real["whisper"])
    rows = np.arange(6)
    for name in ("emobox", "probe", "ar-mlp"):
        torch.manual_seed(0)
        head = build_head(name, fs.num_layers, fs.dim, 3, layer=2).eval()
        one, every = FramesSource(fs, [2]), FramesSource(fs, None)
        assert one.batch(rows)[0].shape[2] == 1 and every.batch(rows)[0].shape[2] == 5
        with torch.no_grad():
            torch.testing.assert_close(one.logits(head, rows), every.logits(head, rows))
