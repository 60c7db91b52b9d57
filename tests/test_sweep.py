"""`emostore sweep`: grid expansion, parallel runs, skipping finished runs, recorded failures, the table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.sweep import load_results
from emostore.sweep.config import SweepError, expand, read_spec
from emostore.sweep.runner import run_sweep


def _base(fb, **kw):
    return {"store": fb["store"], "labels": fb["labels"], "partition": fb["part"], "fold": "f1",
            "epochs": 2, "lr": 0.01, "batch_size": 8, **kw}


def test_grid_expands_to_the_product_and_drops_settings_a_head_ignores(fbank_fold):
    runs = expand(_base(fbank_fold, head=["probe", "weighted-sum"], seed=[0, 1], lr=[0.01, 0.001], hidden=[16, 32]))
    # probe ignores hidden, weighted-sum uses it: 2 seeds x 2 lrs x (1 + 2)
    assert len(runs) == 12
    assert {r.config.hidden for r in runs if r.config.head == "probe"} == {None}
    assert len({r.run_id for r in runs}) == 12
    # layer "all" expands to the store's layers; weighted-sum drops the layer axis
    runs = expand({**_base(fbank_fold), "runs": [{"head": "probe", "layer": "all"}, {"head": "weighted-sum", "layer": [0]}]},
                  stored_layers=lambda s: [0, 1, 2])
    assert sorted((r.config.head, r.config.layer) for r in runs) == [("probe", 0), ("probe", 1), ("probe", 2),
                                                                     ("weighted-sum", None)]


def test_toml_yaml_and_json_files_give_the_same_runs(fbank_fold, tmp_path):
    import yaml

    spec = _base(fbank_fold, head=["probe", "ar-mlp"], seed=[0, 1])
    toml_text = "\n".join(f"{k} = {json.dumps(v)}" for k, v in spec.items())
    (tmp_path / "s.toml").write_text(toml_text)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "s.json").write_text(json.dumps(spec))
    ids = [[r.run_id for r in expand(read_spec(tmp_path / f"s.{ext}"))] for ext in ("toml", "yaml", "json")]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 4


def test_relative_paths_in_a_file_are_relative_to_it(fbank_fold, tmp_path):
    import shutil

    d = tmp_path / "exp"
    d.mkdir()
    shutil.copy(fbank_fold["part"], d / "part.json")
    (d / "s.toml").write_text(f'store = "{fbank_fold["store"]}"\nlabels = "{fbank_fold["labels"]}"\n'
                              'partition = "part.json"\nhead = "probe"\nfold = "f1"\n')
    (run,) = expand(read_spec(d / "s.toml"))
    assert run.partition == str(d / "part.json")


@pytest.mark.parametrize("bad, match", [
    ({"head": "probe", "colour": "red"}, "unknown key 'colour' in the sweep; accepted: store, labels"),
    ({"head": "probe", "store": "nowhere.zarr"}, "store /.*nowhere.zarr: no such"),
    ({"head": "probe", "seed": []}, "'seed' is an empty list"),
    ({"head": "probe", "lr": "fast"}, "setting lr: expected float"),
    ({"head": "mlp"}, "unknown head 'mlp'"),
    ({}, "needs a head"),
])
def test_bad_specs_are_refused_before_any_run(fbank_fold, bad, match):
    with pytest.raises(SweepError, match=match):
        expand({**_base(fbank_fold), **bad})


def _bad_label_set(fb, tmp_path) -> str:
    """The MR label set with a class list one longer than its targets: training it fails."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(open(fb["labels"]).read())
    meta = json.loads(open(fb["labels"].replace(".jsonl", ".meta.json")).read())
    meta["classes"] = meta["classes"] + ["surprise"]
    (tmp_path / "bad.meta.json").write_text(json.dumps(meta))
    return str(bad)


def test_cli_sweep_trains_every_head_records_failures_and_skips_done_runs(fbank_fold, tmp_path):
    out = tmp_path / "sweep"
    # lr 1e38 overflows float32 in the first AdamW step (alone: an overflow error; in a group: a dev loss
    # that is never finite): a run that fails in training, not before
    args = ["sweep", "--store", fbank_fold["store"], "--labels", fbank_fold["labels"], "--partition",
            fbank_fold["part"], "--fold", "f1",
            "--head", "weighted-sum", "--head", "emobox", "--head", "ar-mlp", "--head", "probe",
            "--epochs", "2", "--lr", "0.01", "--lr", "1e38", "--batch-size", "8", "--hidden", "32", "--out", str(out),
            "--jobs", "2", "--quiet"]
    r = CliRunner().invoke(main, args)
    # 4 heads x 2 lrs; the 4 runs at lr 1e38 fail, are recorded, and the sweep exits 1 after finishing the rest
    assert r.exit_code == 1, r.output
    df = load_results(out)
    assert len(df) == 8
    done, failed = df[df.status == "done"], df[df.status == "failed"]
    assert sorted(done["head"]) == ["ar-mlp", "emobox", "probe", "weighted-sum"]
    assert len(failed) == 4 and (failed["lr"] == 1e38).all() and failed["error"].str.contains("overflow|never finite").all()
    assert failed["labels"].str.endswith("mr.jsonl").all() and failed["head"].notna().all()
    for _, row in done.iterrows():
        rec = json.loads((out / "runs" / row.run_id / "run.json").read_text())
        assert row.dev_loss == pytest.approx(min(rec["dev_losses"]))
        assert row.selected_epoch == rec["selected_epoch"] and row.epochs_run == 2
        assert row.macro_f1 == pytest.approx(rec["test_metrics"]["macro_f1"])
        assert row.features == ("frames" if row["head"] == "emobox" else "pooled")
        assert pd.notna(row.layer_weights) == (row["head"] == "weighted-sum")
        assert pd.isna(row.layer) == (row["head"] == "weighted-sum")  # the default layer is named: 0
        assert row.rule == "mr" and row.corpus and row.encoder == "fbank"
    # re-run: the 4 finished runs are skipped, the 4 failed ones retried (and fail again)
    args[args.index("--jobs") + 1] = "1"  # in this process: the same run ids
    r = CliRunner().invoke(main, args)
    assert "0 trained, 4 already done, 4 failed" in r.output
    r = CliRunner().invoke(main, args + ["--dry-run"])
    assert r.exit_code == 0 and r.output.count("done ") == 4 and r.output.count("todo ") == 4


def test_a_damaged_run_json_is_rerun_and_never_loses_the_table(fbank_fold, tmp_path):
    runs = expand(_base(fbank_fold, head="probe", seed=[0, 1]))
    run_sweep(runs, tmp_path / "s")
    victim = tmp_path / "s" / "runs" / runs[0].run_id / "run.json"
    victim.write_text(victim.read_text()[:100])  # as if the disk filled up mid-write
    from emostore.sweep import gather

    rows = {r["run_id"]: r for r in gather(tmp_path / "s" / "runs")}
    assert rows[runs[0].run_id]["status"] == "failed" and "unreadable" in rows[runs[0].run_id]["error"]
    again = run_sweep(runs, tmp_path / "s")
    assert (again.done, again.skipped) == (1, 1)
    assert set(load_results(tmp_path / "s").status) == {"done"}


def test_cli_options_override_the_files_runs_tables(fbank_fold, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(f'store = "{fbank_fold["store"]}"\nlabels = "{fbank_fold["labels"]}"\n'
                    f'partition = "{fbank_fold["part"]}"\nfold = "f1"\n[[runs]]\nhead = "probe"\nlr = 1e-3\n')
    (run,) = expand(read_spec(spec), overrides={"lr": 0.5})
    assert run.config.lr == 0.5


def test_unknown_layer_is_refused_before_any_run_and_default_layer_is_named(fbank_fold):
    with pytest.raises(SweepError, match=r"layer 7 is not in the store .*\(stored: \[0\]\)"):
        expand(_base(fbank_fold, head="probe", layer=[0, 7]))
    default, named = expand(_base(fbank_fold, head="probe")), expand(_base(fbank_fold, head="probe", layer=0))
    assert default[0].run_id == named[0].run_id and default[0].config.layer == 0


def test_a_label_set_regenerated_at_the_same_path_makes_new_runs(fbank_fold, tmp_path):
    import shutil

    labels = tmp_path / "l.jsonl"
    shutil.copy(fbank_fold["labels"], labels)
    shutil.copy(fbank_fold["labels"].replace(".jsonl", ".meta.json"), tmp_path / "l.meta.json")
    from emostore.sweep.config import input_digest

    before = expand(_base(fbank_fold, head="probe", labels=str(labels)))[0].run_id
    labels.write_text(open(fbank_fold["label_sets"]["pr"]).read() + "\n")
    input_digest.cache_clear()
    after = expand(_base(fbank_fold, head="probe", labels=str(labels)))[0].run_id
    assert before != after


@pytest.mark.slow
@pytest.mark.timeout(300)  # starts a Dask cluster
def test_dask_cluster_gives_the_same_runs_as_local_processes(fbank_fold, tmp_path):
    """Determinism across executors: a Dask worker trains the same model as this process."""
    distributed = pytest.importorskip("distributed")
    import torch

    runs = expand(_base(fbank_fold, head=["probe", "ar-mlp"], seed=[3]))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the Dask worker: MKL's sums (ar-mlp's 1024-wide layers) vary with threads
    try:
        local = run_sweep(runs, tmp_path / "local", jobs=1)
    finally:
        torch.set_num_threads(before)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        remote = run_sweep(runs, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert (local.done, remote.done, remote.failed) == (2, 2, 0)
    a, b = load_results(tmp_path / "local"), load_results(tmp_path / "dask")
    assert list(a.run_id) == list(b.run_id)
    np.testing.assert_allclose(a.dev_loss, b.dev_loss, rtol=0, atol=1e-7)
    for rid in a.run_id:
        pa = (tmp_path / "local" / "runs" / rid / "predictions.jsonl").read_text()
        pb = (tmp_path / "dask" / "runs" / rid / "predictions.jsonl").read_text()
        assert pa == pb


def test_run_ids_read_as_their_settings_with_the_hash_last(tmp_path):
    from emostore.sweep.config import expand

    spec = {"store": "s.zarr", "labels": "mr.jsonl", "partition": "p.json", "fold": "fold2", "seed": 3,
            "runs": [{"head": "probe", "layer": 4, "lr": 1e-3}, {"head": "emobox", "layer": 2, "hidden": 128}]}
    for name in ("mr.jsonl", "p.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / "zarr.json").write_text(
        '{"attributes": {"fingerprint": "x", "encoder": {"name": "whisper-tiny.en"}}}')
    spec = {k: (str(tmp_path / v) if k in ("store", "labels", "partition") else v) for k, v in spec.items()}
    ids = [r.run_id for r in expand(spec, stored_layers=lambda store: [0, 1, 2, 3, 4])]
    assert [i.rsplit("-", 1)[0] for i in ids] == ["probe-L4-lr0.001-fold2-s3-whisper-tiny.en-mr",
                                                  "emobox-L2-lr0.001-h128-fold2-s3-whisper-tiny.en-mr"]
    assert all(len(i.rsplit("-", 1)[1]) == 10 for i in ids)
