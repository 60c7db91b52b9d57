"""Training options: block-shuffled frame streaming, warm-up, early stopping, held-out dev, presets,
TensorBoard scalars, and test predictions for every test utterance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emostore.evaluate import evaluate_files
from emostore.heads.sources import FramesSource, epoch_order
from emostore.heads.config import PRESETS, TrainConfig, TrainError, config_from
from emostore.heads.loop import train
from emostore.heads.train import run
from emostore.labels.aggregate import read_label_set
from emostore.manifests.partitions import read_partition
from emostore.store import open as open_store
from tb_events import tb_scalars


def _cfg(**kw):
    return TrainConfig(**{"head": "probe", "fold": "f1", "epochs": 4, "lr": 1e-2, "batch_size": 8, **kw})


def _train(fb, labels=None, part=None, **kw):
    records, meta = read_label_set(labels or fb["labels"])
    return train(open_store(fb["store"]), records, meta["classes"], read_partition(part or fb["part"]), _cfg(**kw))


def test_block_order_is_a_permutation_with_whole_blocks_per_window():
    rows = np.array([0, 1, 2, 5, 8, 9, 13, 17, 18, 19, 23, 30], dtype=np.int64)
    cost = np.array([40, 30, 40, 10])  # frames each 8-row block holds
    gen = torch.Generator().manual_seed(0)
    order = epoch_order(rows, gen, "blocks", block=8, block_cost=cost, window_frames=30)
    assert sorted(order.tolist()) == list(range(len(rows)))
    # no two blocks fit one window of 30 frames, so each window is one block: its rows come out together
    blocks = rows[order] // 8
    runs = 1 + int(np.sum(blocks[1:] != blocks[:-1]))
    assert runs == len(np.unique(blocks)) == 4
    again = epoch_order(rows, torch.Generator().manual_seed(0), "blocks", 8, cost, 30)
    np.testing.assert_array_equal(order, again)  # seeded


def test_block_windows_are_contiguous_in_the_order():
    rows = np.arange(40, dtype=np.int64)
    order = epoch_order(rows, torch.Generator().manual_seed(3), "blocks", 8, np.full(5, 8), 16)
    # windows of two 8-row blocks: every 16 consecutive positions cover exactly two whole blocks
    for s in range(0, 32, 16):
        blocks = set((rows[order[s:s + 16]] // 8).tolist())
        assert len(blocks) == 2 and all(np.sum(rows[order[s:s + 16]] // 8 == b) == 8 for b in blocks)


def test_pooled_equals_frames_with_block_shuffle_over_many_windows(fbank_fold, tmp_path):
    """Exactness holds with the streamed, bounded frames path: tiny cache, several blocks and windows."""
    kw = dict(head="weighted-sum", seed=2, epochs=3, shuffle="blocks", memory_mb=1)
    p = run(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], _cfg(**kw), tmp_path / "p")
    f = run(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], _cfg(features="frames", **kw),
            tmp_path / "f")
    assert (p.features, f.features) == ("pooled", "frames")
    np.testing.assert_allclose(p.train_losses, f.train_losses, atol=1e-4)
    np.testing.assert_allclose(p.dev_losses, f.dev_losses, atol=1e-4)
    np.testing.assert_allclose(p.test_probs, f.test_probs, atol=1e-4)
    cache = f.record["frames_cache"]
    assert 0 < cache["peak_bytes"] <= cache["budget_bytes"] == 1 << 20
    n_blocks = len(np.unique(open_store(fbank_fold["store"]).ids)) // 8
    assert cache["reads"] >= n_blocks  # evictions: blocks were read again in later epochs


def test_frames_cache_stays_within_budget_and_serves_the_right_rows(fbank_fold):
    fs = open_store(fbank_fold["store"])
    rows = np.arange(len(fs))
    per_block = max(fs.num_frames[i:i + 8].sum() for i in range(0, len(fs), 8)) * fs.dim * 4
    src = FramesSource(fs, None, budget_bytes=int(per_block * 2.5))
    for r in np.random.default_rng(0).permutation(rows):
        x, mask = src.batch(np.array([r]))
        n = int(fs.num_frames[r])
        np.testing.assert_array_equal(x[0, :n].numpy(), fs.frames(int(r)))
        assert mask[0].sum() == n
        assert src.cached_bytes <= src.budget
    assert 0 < src.peak_cached_bytes <= src.budget  # room is made before a block is read
    tiny = FramesSource(fs, None, budget_bytes=1)  # a block over budget: rows are read alone
    x, _ = tiny.batch(np.array([3, 4]))
    np.testing.assert_array_equal(x[1, : fs.num_frames[4]].numpy(), fs.frames(4))
    assert tiny.cached_bytes == 0


def test_warmup_raises_the_lr_linearly_per_step(fbank_fold):
    lrs = []
    records, meta = read_label_set(fbank_fold["labels"])
    train(open_store(fbank_fold["store"]), records, meta["classes"], read_partition(fbank_fold["part"]),
          _cfg(epochs=3, warmup_epochs=2, lr=0.01), on_epoch=lambda e, s, h: lrs.append(s["lr"]))
    steps = -(-len(fbank_fold["fold"]["train"]) // 8)  # batches of 8
    assert lrs[0] == pytest.approx(0.01 * (steps + 1) / (2 * steps))
    assert lrs[1] == pytest.approx(0.01) and lrs[2] == pytest.approx(0.01)


def test_early_stopping_stops_after_patience_and_keeps_the_best(fbank_fold):
    res = _train(fbank_fold, epochs=40, lr=0.5, patience=2)  # a large lr: the dev loss soon stops improving
    assert len(res.dev_losses) < 40
    assert res.selected_epoch == int(np.argmin(res.dev_losses)) + 1
    assert len(res.dev_losses) - res.selected_epoch == 2


def test_fold_without_dev_needs_valid_fraction(fbank_fold, tmp_path):
    fold = dict(fbank_fold["fold"])
    fold["train"] = fold["train"] + fold["dev"]
    fold["dev"] = []
    part = tmp_path / "nodev.json"
    part.write_text(json.dumps({"f1": fold}))
    with pytest.raises(TrainError, match="no dev part.*--valid-fraction"):
        _train(fbank_fold, part=str(part))
    res = _train(fbank_fold, part=str(part), valid_fraction=0.2)
    # 3 emotions, equally many clips each (10 in the full corpus, 7 bundled): 20 % of each held out
    pool = len(fold["train"])
    held = 3 * round(0.2 * pool / 3)
    assert res.record["utterances"] == {"train": pool - held, "dev": held, "test": 3}
    assert res.record["dev_source"] == "valid_fraction"
    again = _train(fbank_fold, part=str(part), valid_fraction=0.2)
    assert again.dev_losses == res.dev_losses  # the held-out dev is drawn by the seed


def test_emobox_preset_and_overrides():
    cfg = config_from("emobox", fold="f1", epochs=3)
    assert (cfg.head, cfg.epochs, cfg.warmup_epochs, cfg.valid_fraction, cfg.preset) == ("emobox", 3, 10, 0.2, "emobox")
    assert config_from("emobox", fold="f1").epochs == PRESETS["emobox"]["epochs"] == 100
    with pytest.raises(TrainError, match="unknown preset"):
        config_from("superb", fold="f1")
    with pytest.raises(TrainError, match="unknown training setting.*colour"):
        config_from(head="probe", fold="f1", colour="red")


def test_tensorboard_scalars_match_the_learning_curves(fbank_fold, tmp_path):
    res = run(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], _cfg(head="weighted-sum", epochs=3),
              tmp_path / "r")
    sc = tb_scalars(tmp_path / "r" / "tb")
    assert [s for s, _ in sc["loss/dev"]] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in sc["loss/dev"]], res.dev_losses, rtol=1e-6)
    np.testing.assert_allclose([v for _, v in sc["loss/train"]], res.train_losses, rtol=1e-6)
    assert "layer_weight/0" in sc and "lr" in sc


def test_excluded_test_utterances_are_predicted_but_not_scored(fbank_fold, tmp_path):
    records = [json.loads(line) for line in open(fbank_fold["labels"])]
    dropped = fbank_fold["fold"]["test"][0]
    for r in records:
        if r["id"] == dropped:
            r.update(train=None, test=None, excluded="no majority")
    lp = tmp_path / "l.jsonl"
    lp.write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "l.meta.json").write_text(open(fbank_fold["labels"].replace(".jsonl", ".meta.json")).read())
    res = run(fbank_fold["store"], str(lp), fbank_fold["part"], _cfg(), tmp_path / "r")
    assert dropped in res.test_ids and len(res.test_ids) == 3
    rec = json.loads((tmp_path / "r" / "run.json").read_text())
    assert rec["test_metrics"]["n"] == 2
    test_ids = fbank_fold["fold"]["test"]
    ev = evaluate_files(tmp_path / "r" / "predictions.jsonl", lp, n_boot=0, ids=test_ids)
    for k in ("macro_f1", "ua", "wa", "kld", "jsd"):
        assert rec["test_metrics"][k] == pytest.approx(ev.metrics[k].value, abs=1e-12)
    # the same predictions score on the full label set, where the utterance is kept
    full = evaluate_files(tmp_path / "r" / "predictions.jsonl", fbank_fold["labels"], n_boot=0, ids=test_ids)
    assert full.n == 3


@pytest.mark.parametrize("device, match", [
    ("gpu0", "device 'gpu0' is not usable here.*Invalid device string"),
    ("meta", "device 'meta' is not usable"),
    ("xpu", "device 'xpu' is not usable"),
    pytest.param("cuda", "device 'cuda' is not usable", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a GPU is here")),
])
def test_bad_device_is_one_clear_error(fbank_fold, device, match):
    with pytest.raises(TrainError, match=match):
        _train(fbank_fold, device=device)


def test_cli_evaluate_scores_a_runs_fold(fbank_fold, tmp_path):
    from click.testing import CliRunner

    from emostore.cli import main

    run(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], _cfg(), tmp_path / "r")
    pred = str(tmp_path / "r" / "predictions.jsonl")
    base = ["evaluate", pred, "--labels", fbank_fold["labels"], "--n-boot", "0"]
    r = CliRunner().invoke(main, base)  # the label set covers the corpus, the run its fold
    assert r.exit_code == 1 and "have no prediction" in r.output
    r = CliRunner().invoke(main, base + ["--partition", fbank_fold["part"], "--fold", "f1", "--json"])
    assert r.exit_code == 0, r.output
    ev = evaluate_files(pred, fbank_fold["labels"], n_boot=0, ids=fbank_fold["fold"]["test"])
    got = json.loads(r.output)
    assert got["n"] == 3 and got["macro_f1"]["value"] == pytest.approx(ev.metrics["macro_f1"].value)
    r = CliRunner().invoke(main, base + ["--fold", "f1"])
    assert r.exit_code == 2 and "both --partition and --fold" in r.output


def test_sparse_train_rows_still_read_each_block_once_per_epoch(fbank_fold):
    """Windows are sized by what a cached block holds (all its rows), not by the train rows in it."""
    from emostore.heads.sources import block_frames

    fs = open_store(fbank_fold["store"])
    rows = np.arange(0, len(fs), 3)  # a third of every block
    per_block = int(block_frames(fs, 8).max()) * fs.dim * 4
    src = FramesSource(fs, None, budget_bytes=per_block * 2)
    order = epoch_order(rows, torch.Generator().manual_seed(0), "blocks", 8, block_frames(fs, 8),
                        per_block * 2 // 2 // (fs.dim * 4))
    for s in range(0, len(order), 4):
        src.batch(rows[order[s:s + 4]])
    assert src.reads == len(np.unique(rows // 8))


@pytest.mark.parametrize("settings, match", [
    ({"lr": "fast"}, "setting lr: expected float, got 'fast'"),
    ({"epochs": 2.5}, "setting epochs: expected int, got 2.5"),
    ({"hidden": 0}, "hidden size must be >= 1"),
    ({"head": "mlp"}, "unknown head 'mlp'"),
    ({"beta": 1.0}, r"beta must be in \[0, 1\)"),
])
def test_bad_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        config_from(**{"head": "ar-mlp", "fold": "f1", **settings})


def test_settings_are_coerced_to_their_types():
    cfg = config_from(head="probe", fold="f1", lr="1e-3", epochs=20.0, seed="3")  # YAML / TOML forms
    assert (cfg.lr, cfg.epochs, cfg.seed) == (1e-3, 20, 3)
    assert isinstance(cfg.epochs, int) and isinstance(cfg.lr, float)
