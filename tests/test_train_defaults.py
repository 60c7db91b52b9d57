"""Training defaults reach the dev-loss minimum on real speech; presets keep the papers' recipes."""

from __future__ import annotations

import pytest

from emostore.heads.config import HEAD_DEFAULTS, PRESETS, TrainConfig, config_from


def test_head_defaults_then_preset_then_explicit_settings():
    assert (config_from(head="probe", fold="f").lr, config_from(head="weighted-sum", fold="f").lr) == (1e-2, 1e-3)
    cfg = config_from(head="ar-mlp", fold="f")
    assert (cfg.epochs, cfg.patience) == (100, 10) == (TrainConfig("x", "f").epochs, TrainConfig("x", "f").patience)
    assert config_from(head="probe", fold="f", lr=3e-4).lr == 3e-4
    emobox = config_from("emobox", fold="f")
    assert (emobox.epochs, emobox.patience, emobox.warmup_epochs) == (100, 0, 10) and "patience" in PRESETS["emobox"]
    assert set(HEAD_DEFAULTS) <= {"probe", "weighted-sum", "ar-mlp", "emobox"}


@pytest.fixture(scope="module")
def demo_fbank(tmp_path_factory):
    """The bundled EmoDB subset (135 real clips), an FBANK store, MR labels, EmoBox's published fold 1."""
    from emostore.extract.planning import ExtractOptions
    from emostore.extract.runner import extract
    from emostore.labels.aggregate import aggregate_manifest
    from emostore.manifests import load_manifest
    from emostore.manifests.build import build_manifest
    from emostore.manifests.partitions import make_partition
    from emostore.recipe.demo_data import bundled_root

    tmp = tmp_path_factory.mktemp("demo_fbank")
    build_manifest("emodb", bundled_root(), tmp / "m.jsonl")
    manifest = load_manifest(tmp / "m.jsonl")
    extract(manifest, str(tmp / "s.zarr"), ExtractOptions(encoder="fbank"))
    records, meta = aggregate_manifest(tmp / "m.jsonl", "mr")
    return tmp / "s.zarr", records, meta["classes"], make_partition("emodb", manifest, "emobox", allow_mismatch=True)


@pytest.mark.parametrize("head", ["weighted-sum", "ar-mlp", "probe", "emobox"])
def test_a_default_run_stops_at_its_dev_loss_minimum(demo_fbank, head):
    from emostore.heads.loop import train
    from emostore.store import open as open_store

    store, records, classes, part = demo_fbank
    res = train(open_store(store), records, classes, part, config_from(head=head, fold="fold1"))
    ran = len(res.dev_losses)
    assert ran < 100, f"{head}: ran all 100 epochs without reaching its dev-loss minimum"
    assert res.selected_epoch == ran - 10  # early stopping: 10 epochs without a better dev loss
    assert res.dev_losses[res.selected_epoch - 1] == min(res.dev_losses) < res.dev_losses[0]
