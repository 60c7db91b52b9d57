"""Grouped training: a member of a group equals the same config trained alone (every head, frames too),
the stacked AdamW equals torch's per member, and a grouped sweep writes what a one-at-a-time sweep writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emostore.heads.group import Member, train_group
from emostore.heads.stacked import StackedAdamW, StackedHead
from emostore.heads.train import TrainConfig, read_inputs, train
from emostore.store import open as open_store
from tb_events import tb_scalars



@pytest.fixture(scope="module")
def whisper_fold(tmp_path_factory, fbank_fold):
    """A Whisper tiny.en store (5 layers, float32 frames, blocks of 8 rows) over fbank_fold's 33 clips, and a
    partition of 3 folds: f1 (fbank_fold's), f2 (dev and test speakers swapped), f3 (no dev part: valid_fraction)."""
    from emostore.extract.runner import ExtractOptions, extract
    from emostore.manifests import load_manifest

    tmp = tmp_path_factory.mktemp("grouped")
    extract(load_manifest(fbank_fold["manifest"]), str(tmp / "w.zarr"),
            ExtractOptions(encoder="ct2-whisper", frames_dtype="float32", block_rows=8))
    f1 = fbank_fold["fold"]
    folds = {"f1": f1, "f2": {"train": f1["train"], "dev": f1["test"], "test": f1["dev"]},
             "f3": {"train": f1["train"] + f1["dev"], "dev": [], "test": f1["test"]}}
    (tmp / "part.json").write_text(json.dumps(folds))
    return {"store": str(tmp / "w.zarr"), "part": str(tmp / "part.json"), "labels": fbank_fold["label_sets"]}


def _member(fb, cfg, rule="mr"):
    records, _, classes, part = read_inputs(fb["labels"][rule], fb["part"])
    return Member(cfg, records, classes, part)


def _alone(fs, m: Member):
    return train(fs, m.records, m.classes, m.partition, m.cfg)


def _assert_same(grouped, alone):
    assert grouped.selected_epoch == alone.selected_epoch
    assert len(grouped.dev_losses) == len(alone.dev_losses)
    np.testing.assert_allclose(grouped.dev_losses, alone.dev_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grouped.train_losses, alone.train_losses, rtol=1e-5, atol=1e-6)
    assert grouped.test_ids == alone.test_ids
    np.testing.assert_allclose(grouped.test_probs, alone.test_probs, atol=1e-5, rtol=0)
    for k, v in alone.head.state_dict().items():
        torch.testing.assert_close(grouped.head.state_dict()[k], v, atol=1e-4, rtol=1e-3)  # Adam: near-zero grads
    if alone.layer_weights is not None:
        np.testing.assert_allclose(grouped.layer_weights, alone.layer_weights, atol=1e-5)


def _grid(head: str, **common):
    """Configs of one head mixing layers, lrs, seeds, folds, label sets and hidden sizes in one group."""
    base = dict(head=head, epochs=8, batch_size=8, patience=2, **common)
    grid = [
        (dict(fold="f1", layer=4, lr=1e-2, seed=0), "mr"),
        (dict(fold="f1", layer=2, lr=3e-3, seed=1, weight_decay=0.1), "pr"),
        (dict(fold="f2", layer=4, lr=1e-2, seed=2, smoothing=0.1, warmup_epochs=2), "mr"),
        (dict(fold="f3", layer=0, lr=2e-2, seed=3, valid_fraction=0.25, batch_size=5), "ar"),
        (dict(fold="f1", layer=1, lr=1e-3, seed=4, beta=0.0, patience=0, epochs=5), "mr"),
    ]
    out = []
    for kw, rule in grid:
        kw = {**base, **kw}
        if head == "weighted-sum":
            kw.pop("layer")
        if head != "probe":
            kw["hidden"] = 16 if kw["seed"] % 2 else 24
        out.append((TrainConfig(**kw), rule))
    return out


@pytest.mark.parametrize("head", ["probe", "weighted-sum", "ar-mlp"])
def test_pooled_group_members_equal_single_runs(whisper_fold, head):
    fs = open_store(whisper_fold["store"])
    members = [_member(whisper_fold, cfg, rule) for cfg, rule in _grid(head)]
    grouped = train_group(fs, members)
    assert all(not isinstance(g, Exception) for g in grouped), grouped
    assert {g.record["group"]["members"] for g in grouped} == {len(members)}  # one stack of all
    assert len({len(g.dev_losses) for g in grouped}) > 1  # members stopped at different epochs
    # each member's seconds are its share of the group's passes: together no more than the group took
    assert all(g.seconds > 0 for g in grouped)
    assert sum(g.seconds for g in grouped) <= max(g.record["group"]["seconds"] for g in grouped) + 0.01
    for g, m in zip(grouped, members):
        _assert_same(g, _alone(fs, m))


@pytest.mark.parametrize("head", ["probe", "weighted-sum", "ar-mlp"])
def test_members_sharing_their_rows_equal_single_runs(whisper_fold, head):
    """Members that differ only in lr, weight decay or smoothing read the same rows at every step:
    gathered once and multiplied side by side (emostore.heads.shared), each still equals its run alone."""
    fs = open_store(whisper_fold["store"])
    grid = _grid(head)
    twins = [(TrainConfig(**{**cfg.__dict__, "lr": cfg.lr * f, "weight_decay": wd, "smoothing": sm}), rule)
             for cfg, rule in grid[:3] for f, wd, sm in ((3.0, 0.0, 0.0), (0.3, 0.05, 0.1))]
    members = [_member(whisper_fold, cfg, rule) for cfg, rule in grid[:3] + twins]
    grouped = train_group(fs, members)
    assert all(not isinstance(g, Exception) for g in grouped), grouped
    for g, m in zip(grouped, members):
        _assert_same(g, _alone(fs, m))


@pytest.mark.parametrize("head", ["probe", "weighted-sum"])
def test_dev_inputs_past_the_cache_budget_equal_single_runs(whisper_fold, head, monkeypatch):
    """With no budget for kept dev inputs (DEV_CACHE_BYTES = 0) every dev chunk is gathered at each
    epoch (the path of a stack too large to keep them): members still equal their runs alone."""
    import emostore.heads.group as group

    monkeypatch.setattr(group, "DEV_CACHE_BYTES", 0)
    kept = []
    real = group._dev_windows
    monkeypatch.setattr(group, "_dev_windows", lambda *a: kept.append(real(*a)) or kept[-1])
    fs = open_store(whisper_fold["store"])
    members = [_member(whisper_fold, cfg, rule) for cfg, rule in _grid(head)]
    grouped = train_group(fs, members)
    assert kept and all(xs is None for windows in kept for _, _, xs in windows)
    for g, m in zip(grouped, members):
        _assert_same(g, _alone(fs, m))


def test_frames_group_members_equal_single_runs(whisper_fold):
    """emobox (frames, one layer): members with different seeds read their own rows' frames from one cache."""
    fs = open_store(whisper_fold["store"])
    members = [_member(whisper_fold, TrainConfig(**{**cfg.__dict__, "layer": 3}), rule)
               for cfg, rule in _grid("emobox")]
    members.append(_member(whisper_fold, TrainConfig(head="emobox", fold="f1", layer=3, epochs=3, batch_size=4,
                                                     lr=1e-3, seed=9, shuffle="full", memory_mb=1)))
    grouped = train_group(fs, members)
    assert all(not isinstance(g, Exception) for g in grouped), grouped
    assert {g.features for g in grouped} == {"frames"}
    # one stack per hidden size (frame members are not padded to a wider member), one frames cache
    for g, m in zip(grouped, members):
        assert g.record["group"]["members"] == sum(x.cfg.hidden == m.cfg.hidden for x in members)
    assert len({len(g.dev_losses) for g in grouped}) > 1
    for g, m in zip(grouped, members):
        _assert_same(g, _alone(fs, m))


def test_pooled_heads_on_frames_in_a_group_equal_single_runs(whisper_fold):
    """--features frames for pooled-exact heads goes through the same packed frame path."""
    fs = open_store(whisper_fold["store"])
    members = [_member(whisper_fold, TrainConfig(head=h, fold="f1", layer=layer, features="frames", epochs=3,
                                                 batch_size=8, lr=1e-2, seed=s))
               for h, layer in (("probe", 2), ("weighted-sum", None)) for s in (0, 1)]
    grouped = train_group(fs, members)
    for g, m in zip(grouped, members):
        assert g.record["group"]["members"] == 2
        _assert_same(g, _alone(fs, m))


def test_a_failing_member_fails_alone(whisper_fold):
    fs = open_store(whisper_fold["store"])
    good = _member(whisper_fold, TrainConfig(head="probe", fold="f1", layer=4, epochs=2, batch_size=8, lr=1e-2))
    no_dev = _member(whisper_fold, TrainConfig(head="probe", fold="f3", layer=4, epochs=2, batch_size=8))
    exploding = _member(whisper_fold, TrainConfig(head="probe", fold="f1", layer=4, epochs=2, batch_size=8, lr=1e30))
    out = train_group(fs, [good, no_dev, exploding])
    assert "valid-fraction" in str(out[1]) and "never finite" in str(out[2])
    _assert_same(out[0], _alone(fs, good))


def test_stacked_adamw_equals_torch_adamw_per_member():
    """Per-member lr, weight decay and warm-up; a member that skips a step keeps its params and moments."""
    gen = torch.Generator().manual_seed(0)
    # members 0-1 and 3-4 step alike (one kernel call on their slice) until a skip splits them
    hyper = [(1e-2, 0.01, 0), (1e-2, 0.01, 0), (3e-3, 0.1, 4), (1e-3, 0.0, 2), (1e-3, 0.0, 2)]
    init = [torch.randn(3, 5, generator=gen) for _ in hyper]
    grads = [[torch.randn(3, 5, generator=gen) for _ in range(9)] for _ in hyper]
    skip = {(3, 3), (3, 4), (2, 8), (0, 5)}  # (member, step) without a step
    stacked = {"w": torch.stack(init).requires_grad_()}
    opt = StackedAdamW(stacked, [h[0] for h in hyper], [h[1] for h in hyper], [h[2] for h in hyper])
    for t in range(9):
        stacked["w"].grad = torch.stack([grads[k][t] for k in range(len(hyper))])
        opt.step(stacked, np.array([(k, t) not in skip for k in range(len(hyper))]))
    for k, (lr, wd, warm) in enumerate(hyper):
        p = init[k].clone().requires_grad_()
        ref = torch.optim.AdamW([p], lr=lr, weight_decay=wd, fused=True)  # what a single run uses
        sched = torch.optim.lr_scheduler.LambdaLR(ref, lambda s, w=warm: min(1.0, (s + 1) / w) if w else 1.0)
        for t in range(9):
            if (k, t) in skip:
                continue
            p.grad = grads[k][t]
            ref.step()
            sched.step()
        assert torch.equal(stacked["w"][k].detach(), p.detach())  # the same kernel on each member's slice
        assert opt.current_lr()[k] == pytest.approx(ref.param_groups[0]["lr"], rel=1e-12)


def test_stacking_pads_hidden_sizes_and_gives_each_member_back():
    from emostore.heads.heads import build_head

    torch.manual_seed(0)
    heads = [build_head("emobox", 5, 8, 3, layer=2, hidden=h) for h in (4, 6)]
    stack = StackedHead(heads)
    assert stack.params["hidden.weight"].shape == (2, 6, 8)
    for k, h in enumerate(heads):
        for key, v in h.state_dict().items():
            assert torch.equal(stack.state_dict(k)[key], v)
    x = torch.randn(2, 7, 8)
    mask = torch.ones(1, 7, dtype=torch.bool)
    got = stack.post(stack.pre(x).mean(1, keepdim=True))
    for k, h in enumerate(heads):
        want = h.eval().forward_frames(x[k][None, :, None].expand(1, 7, 5, 8), mask)
        torch.testing.assert_close(got[k], want, atol=1e-5, rtol=1e-5)



def test_grouped_sweep_writes_what_a_one_at_a_time_sweep_writes(whisper_fold, tmp_path):
    from emostore.sweep import load_results
    from emostore.sweep.config import expand
    from emostore.sweep.runner import run_sweep

    spec = {"store": whisper_fold["store"], "labels": [whisper_fold["labels"]["mr"], whisper_fold["labels"]["pr"]],
            "partition": whisper_fold["part"], "fold": ["f1", "f2"], "epochs": 4, "batch_size": 8, "patience": 1,
            "runs": [{"head": "probe", "layer": [1, 4], "lr": [1e-2, 3e-3], "seed": [0, 1]},
                     {"head": "weighted-sum", "seed": [0, 1], "hidden": 16},
                     {"head": "emobox", "layer": 4, "hidden": 8, "seed": [0, 1], "epochs": 2, "fold": "f1"}]}
    runs = expand(spec)
    grouped = run_sweep(runs, tmp_path / "g")
    alone = run_sweep(runs, tmp_path / "a", group=False)
    assert (grouped.done, alone.done, grouped.failed) == (len(runs), len(runs), 0)
    g, a = load_results(tmp_path / "g"), load_results(tmp_path / "a")
    assert list(g.run_id) == list(a.run_id) == sorted(r.run_id for r in runs)
    same = [c for c in g.columns if c not in ("seconds", "out_dir", "predictions", "layer_weights", "dev_loss",
                                               "macro_f1", "ua", "wa", "macro_f1_single", "kld", "jsd")]
    pd_equal = g[same].fillna(-1).astype(str).values == a[same].fillna(-1).astype(str).values
    assert pd_equal.all()
    np.testing.assert_allclose(g.dev_loss, a.dev_loss, rtol=1e-5)
    assert len(set(g.epochs_run)) > 1  # early stopping ended runs at different epochs
    for rid in g.run_id:
        dg, da = tmp_path / "g" / "runs" / rid, tmp_path / "a" / "runs" / rid
        assert sorted(p.name for p in dg.iterdir()) == sorted(p.name for p in da.iterdir())
        pg = [json.loads(x) for x in (dg / "predictions.jsonl").read_text().splitlines()]
        pa = [json.loads(x) for x in (da / "predictions.jsonl").read_text().splitlines()]
        assert [p["id"] for p in pg] == [p["id"] for p in pa]
        np.testing.assert_allclose([p["probs"] for p in pg], [p["probs"] for p in pa], atol=1e-5)
        mg, ma = torch.load(dg / "model.pt"), torch.load(da / "model.pt")
        assert {k: v for k, v in mg.items() if k != "state_dict"} == {k: v for k, v in ma.items() if k != "state_dict"}
        assert len(list((dg / "tb").iterdir())) == 1
        sg, sa = tb_scalars(dg / "tb"), tb_scalars(da / "tb")  # buffered and written at the end vs live
        assert sorted(sg) == sorted(sa) and all([e for e, _ in sg[k]] == [e for e, _ in sa[k]] for k in sg)
        for k in sg:
            np.testing.assert_allclose([v for _, v in sg[k]], [v for _, v in sa[k]], rtol=1e-5, atol=1e-6)
        rg = json.loads((dg / "run.json").read_text())
        assert rg["group"]["members"] > 1


def test_plan_groups_by_feature_reads_and_splits_for_workers():
    from emostore.sweep.config import RunSpec
    from emostore.sweep.group import plan_groups

    def spec(head, layer, store="a.zarr", **kw):
        return RunSpec(store, "l.jsonl", "p.json", TrainConfig(head=head, fold="f1", layer=layer, **kw))

    runs = ([spec("probe", k, seed=s) for k in (1, 2) for s in range(3)] + [spec("probe", 1, store="b.zarr")]
            + [spec("emobox", k, seed=s) for k in (1, 2) for s in range(2)] + [spec("ar-mlp", 1)]
            + [spec("emobox", 1, seed=5, hidden=64)])
    groups = plan_groups(runs)
    # pooled probes of every layer share one pass; emobox groups by the layer whose frames it reads
    # and by hidden size (a frame member padded to a wider one would pay for its units)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 2, 2, 6]
    assert all(len({(r.store, r.config.head) for r in g}) == 1 for g in groups)
    assert all(len({(r.config.layer, r.config.hidden) for r in g}) == 1 for g in groups
               if g[0].config.head == "emobox")
    split = plan_groups(runs, workers=8)
    # split until every worker has a group; frame groups (costly per member) first
    assert len(split) == 8 and sorted(len(g) for g in split) == [1, 1, 1, 1, 1, 1, 1, 6]
    assert sorted(r.config.seed for g in split for r in g) == sorted(r.config.seed for r in runs)
    assert split[0][0].config.head == "emobox"  # costliest first: the order a pool starts them in


def test_plan_groups_balances_frame_groups_by_hidden_units():
    """8 emobox configs (hidden 128 and 256) on 2 workers: 768 hidden units of work each, not 512 and 1024."""
    from emostore.sweep.config import RunSpec
    from emostore.sweep.group import plan_groups, run_cost

    runs = [RunSpec("a.zarr", "l.jsonl", "p.json", TrainConfig(head="emobox", fold="f1", layer=4, hidden=h, lr=lr,
                                                                seed=s))
            for h in (128, 256) for lr in (1e-3, 3e-4) for s in (0, 1)]
    assert len(plan_groups(runs, workers=1)) == 2  # one process: one stack per hidden size
    groups = plan_groups(runs, workers=2)
    costs = [sum(run_cost(r) for r in g) for g in groups]
    assert costs == sorted(costs, reverse=True)
    loads = [0.0, 0.0]
    for c in costs:  # what a 2-worker pool does with them, in this order
        loads[loads.index(min(loads))] += c
    assert loads == [768.0, 768.0]
    assert all(len({r.config.hidden for r in g}) == 1 for g in groups)


def test_grouped_training_does_not_import_dynamo(fbank_fold):
    """torch.optim's step imports torch._dynamo (seconds of cold start); the stacked AdamW does not."""
    import subprocess
    import sys

    code = (f"import sys; from emostore.heads.train import GroupRun, TrainConfig, run_group; "
            f"out = run_group({fbank_fold['store']!r}, [GroupRun({fbank_fold['labels']!r}, {fbank_fold['part']!r}, "
            f"TrainConfig(head='ar-mlp', fold='f1', epochs=2, batch_size=8), {str(fbank_fold['tmp'] / 'nodyn')!r})]); "
            f"assert out[0].selected_epoch >= 1, out; print('torch._dynamo' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("classes", [[0, 0, 1, 1, 2, 2], [0, 1, 0, 2, 1, 0], [0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 1]])
def test_shared_linear_equals_each_members_own_product(classes):
    """Members reading equal rows: one gather and a side-by-side product give each member's own
    ``x wᵀ + b`` and the same weight gradients, whatever the sharing pattern (and its padding)."""
    from emostore.heads.shared import Sharing, linear, shared_linear

    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 50, (max(classes) + 1, 8), generator=g).numpy()[classes]  # [K, B] with repeats
    share = Sharing(rows)
    assert share.distinct == len(set(classes)) and (rows[share.reps][share.cls] == rows).all()
    feats = torch.randn(50, 16, generator=g)
    w = torch.randn(len(classes), 3, 16, generator=g, requires_grad=True)
    b = torch.randn(len(classes), 3, generator=g, requires_grad=True)
    t = torch.randn(len(classes), 8, 3, generator=g)
    got = shared_linear(feats[torch.from_numpy(rows[share.reps])], share, w, b)
    (got * t).sum().backward()
    gw, gb = w.grad.clone(), b.grad.clone()
    w.grad = b.grad = None
    want = linear(feats[torch.from_numpy(rows)], w, b)
    (want * t).sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gw, w.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gb, b.grad, rtol=1e-6, atol=1e-6)
