"""`emostore train` / `sweep` around the training: cold start, option ranges, run ids, the live
results table, one writer per sweep folder, inputs checked before anything is written."""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.heads.config import Execution, TrainConfig, TrainError, config_from
from emostore.sweep.config import SweepError, expand, read_spec
from emostore.sweep.results import COLUMNS, load_results, missing_runs, write_results

ROOT = Path(__file__).resolve().parents[1]


def _sweep_args(fb, out, *extra):
    return ["sweep", "--store", fb["store"], "--labels", fb["labels"], "--partition", fb["part"], "--fold", "f1",
            "--head", "probe", "--epochs", "1", "--batch-size", "8", "--out", str(out), "--quiet", *extra]


def _train_args(fb, out, *extra):
    return ["train", "--store", fb["store"], "--labels", fb["labels"], "--partition", fb["part"], "--fold", "f1",
            "--head", "probe", "--epochs", "1", "--batch-size", "8", "--quiet", "--no-tensorboard",
            "--out", str(out), *extra]


# --- cold start -------------------------------------------------------------------------------

def test_parsing_train_and_sweep_options_imports_no_torch(fbank_fold, tmp_path):
    """--help of both commands, a refused option, and a whole `sweep --dry-run` (expansion, run ids,
    the store's layers): none imports torch."""
    code = f"""
import json, sys
from emostore.cli import main
def call(args):
    try:
        main.main(args, standalone_mode=False)
    except BaseException as exc:
        return type(exc).__name__
    return "ok"
out = {{"sweep help": call(["sweep", "--help"]), "train help": call(["train", "--help"]),
       "bad epochs": call(["train", "--epochs", "0"]),
       "dry run": call({json.dumps(_sweep_args(fbank_fold, tmp_path / "s", "--lr", "0.1", "--lr", "0.01",
                                               "--dry-run"))})}}
out["parse torch"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
# a whole sweep on 2 worker processes: the parent checks every run's inputs and writes the table, torch-free
out["sweep"] = call({json.dumps(_sweep_args(fbank_fold, tmp_path / "w", "--lr", "0.1", "--lr", "0.01",
                                            "--jobs", "2", "--no-group"))})
out["torch"] = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["sweep help"] == got["train help"] == got["dry run"] == "ok"
    assert got["bad epochs"] == "BadParameter"
    assert got["parse torch"] == [] and got["sweep"] == "ok"
    assert got["torch"] == []  # the parent of a multi-process sweep: its workers import torch, it need not
    assert r.stdout.count("todo  probe-L0-") == 2
    assert len(list((tmp_path / "w").glob("runs/*/run.json"))) == 2


def test_the_torch_free_head_names_are_the_registry_of_head_classes():
    from emostore.heads.heads import HEADS
    from emostore.heads.names import FRAME_HEADS, HEAD_NAMES, LAYERED, POOLED_EXACT

    assert tuple(HEADS) == HEAD_NAMES
    assert set(LAYERED) <= set(HEAD_NAMES) and "weighted-sum" not in LAYERED
    assert POOLED_EXACT == tuple(n for n, cls in HEADS.items() if cls.pooled_exact)
    assert FRAME_HEADS == ("emobox",)


def test_sweep_threads_are_one_per_run_unless_given(fbank_fold, tmp_path):
    for extra, threads in (((), 1), (("--threads", "2"), 2)):
        out = tmp_path / f"t{threads}"
        r = CliRunner().invoke(main, _sweep_args(fbank_fold, out, *extra))
        assert r.exit_code == 0, r.output
        (run_dir,) = (out / "runs").iterdir()
        assert json.loads((run_dir / "run.json").read_text())["torch_threads"] == threads


# --- option ranges: declared once on the library's dataclasses ----------------------------------

@pytest.mark.parametrize("flag, value, field", [
    ("--epochs", "0", "epochs"), ("--patience", "-1", "patience"), ("--lr", "0", "lr"),
    ("--batch-size", "0", "batch_size"), ("--beta", "1", "beta"), ("--smoothing", "1", "smoothing"),
    ("--valid-fraction", "1", "valid_fraction"), ("--memory-mb", "0", "memory_mb"), ("--hidden", "0", "hidden"),
    ("--seed", "-1", "seed"), ("--warmup-epochs", "-1", "warmup_epochs"),
])
def test_numeric_options_are_refused_outside_the_configs_range(fbank_fold, tmp_path, flag, value, field):
    for args in (_train_args(fbank_fold, tmp_path / "t", flag, value),
                 _sweep_args(fbank_fold, tmp_path / "s", flag, value)):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and f"Invalid value for '{flag}'" in r.output, r.output
    kind = int if str(TrainConfig.__dataclass_fields__[field].type).startswith("int") else float
    with pytest.raises(TrainError, match="must be"):  # the library refuses the same value
        config_from(head="ar-mlp", fold="f1", **{field: kind(value)})
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("args", [("--jobs", "0"), ("--jobs", "-2"), ("--threads", "0")])
def test_sweep_jobs_and_threads_are_refused_below_one(fbank_fold, tmp_path, args):
    r = CliRunner().invoke(main, _sweep_args(fbank_fold, tmp_path / "s", *args))
    assert r.exit_code == 2 and f"Invalid value for '{args[0]}'" in r.output and "x>=1" in r.output
    with pytest.raises(TrainError, match=f"{args[0][2:]} must be >= 1"):
        Execution(**{args[0][2:]: int(args[1])})


# --- run ids ------------------------------------------------------------------------------------

def test_run_ids_name_the_encoder_and_the_label_set(fbank_fold, tmp_path):
    sets = fbank_fold["label_sets"]
    args = _sweep_args(fbank_fold, tmp_path / "s", "--dry-run")
    args[args.index("--labels") + 1:args.index("--labels") + 2] = [sets["mr"], "--labels", sets["pr"],
                                                                    "--labels", sets["ar"]]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    ids = [line.split()[1] for line in r.output.splitlines() if line.startswith("todo")]
    assert sorted(i.rsplit("-", 1)[0] for i in ids) == [f"probe-L0-lr0.01-f1-s0-fbank-{rule}"
                                                        for rule in ("ar", "mr", "pr")]


# --- the live results table ---------------------------------------------------------------------

class _Watcher:
    """A progress factory that reads the table each time a run is reported finished."""

    def __init__(self, out):
        self.out, self.seen = out, []

    def __call__(self, total, desc, unit):
        return self

    def update(self, n=1, postfix=None):
        from emostore.analysis import format_leaderboards, leaderboard

        text = format_leaderboards([leaderboard(self.out, "ua")], "md")
        self.seen.append((len(load_results(self.out)), missing_runs(self.out), text))

    def write(self, text):
        pass

    def close(self):
        pass


def test_the_table_is_live_and_the_leaderboard_says_what_is_missing(fbank_fold, tmp_path, monkeypatch):
    from emostore.sweep.results import LiveTable
    from emostore.sweep.runner import run_sweep

    monkeypatch.setattr(LiveTable, "MAX_SHARE", None)  # every finished run rewrites it (the default may wait)

    out = tmp_path / "s"
    runs = expand({"store": fbank_fold["store"], "labels": fbank_fold["labels"], "partition": fbank_fold["part"],
                   "fold": "f1", "head": "probe", "epochs": 1, "batch_size": 8, "seed": [0, 1, 2]})
    watcher = _Watcher(out)
    run_sweep(runs, out, progress=watcher)
    assert [(rows, m[0], len(m[1])) for rows, m, _ in watcher.seen] == [(1, 3, 2), (2, 3, 1), (3, 3, 0)]
    assert "1 of 3 planned runs finished, 2 missing" in watcher.seen[0][2]
    assert "missing" not in watcher.seen[-1][2]
    assert missing_runs(out) == (3, [])


def test_a_busy_table_waits_but_the_last_write_holds_every_run(fbank_fold, tmp_path, monkeypatch):
    """Rewrites wait while they would take over MAX_SHARE of the time; the way out writes every row."""
    from emostore.sweep import results
    from emostore.sweep.runner import run_sweep

    writes = []
    real = results.write_results

    def counted(rows, path, planned=None):
        writes.append(len(rows))
        return real(rows, path, planned)

    monkeypatch.setattr(results, "write_results", counted)
    monkeypatch.setattr(results.LiveTable, "MAX_SHARE", 1e-9)  # a rewrite would have to wait for ages
    out = tmp_path / "s"
    runs = expand({"store": fbank_fold["store"], "labels": fbank_fold["labels"], "partition": fbank_fold["part"],
                   "fold": "f1", "head": "probe", "epochs": 1, "batch_size": 8, "seed": [0, 1, 2]})
    run_sweep(runs, out)
    assert writes == [0, 3]  # at the start (nothing finished) and on the way out
    assert len(load_results(out)) == 3 and missing_runs(out) == (3, [])


def _write_many(path: str, tag: int, n: int, queue) -> None:
    try:
        for i in range(n):
            rows = [dict(dict.fromkeys(COLUMNS), run_id=f"w{tag}-{k}", status="done") for k in range(tag + 2)]
            write_results(rows, path, planned=[r["run_id"] for r in rows])
        queue.put("ok")
    except BaseException as exc:  # reported to the test
        queue.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_writing_the_table_never_corrupt_it(tmp_path):
    """2 writers x 50 rewrites while this process reads: every read is one writer's whole table."""
    path = str(tmp_path / "results.sqlite")
    write_results([], path)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_write_many, args=(path, tag, 50, queue)) for tag in (0, 1)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs) or reads < 5:
        df = load_results(path)
        assert len(df) in (0, 2, 3) and len({r.split("-")[0] for r in df.run_id}) <= 1
        reads += 1
    for p in procs:
        p.join(timeout=120)
    assert [queue.get(timeout=10) for _ in procs] == ["ok", "ok"]
    assert len(load_results(path)) in (2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["results.sqlite"]  # no temporary file left behind


# --- one writer per sweep folder ------------------------------------------------------------------

def test_a_second_sweep_into_a_busy_folder_is_refused_naming_the_holder(fbank_fold, tmp_path):
    import os

    from emostore.sweep.folder import sweep_folder

    out = tmp_path / "s"
    runs = expand({"store": fbank_fold["store"], "labels": fbank_fold["labels"], "partition": fbank_fold["part"],
                   "fold": "f1", "head": "probe", "epochs": 1})
    with sweep_folder(out, runs):
        r = CliRunner().invoke(main, _sweep_args(fbank_fold, out))
        assert r.exit_code == 1
        assert "another sweep is writing this sweep folder" in r.output and f":{os.getpid()} since" in r.output
        assert not any((out / "runs").iterdir())  # nothing trained
    r = CliRunner().invoke(main, _sweep_args(fbank_fold, out))  # released: it runs
    assert r.exit_code == 0, r.output


# --- validate before acting -----------------------------------------------------------------------

@pytest.fixture
def no_feature_reads(monkeypatch):
    """Reading pooled features or frames fails the test: the checks must come first."""
    from emostore.store.reader import FeatureStore

    def refuse(*a, **k):
        raise AssertionError("a feature array was read before the inputs were checked")

    for name in ("pooled", "pooled_dask", "frames", "frames_dask"):
        monkeypatch.setattr(FeatureStore, name, refuse)


def _labels_variant(fb, tmp_path, drop_id=None, extra_class=False) -> str:
    rows = [json.loads(line) for line in open(fb["labels"]) if line.strip()]
    meta = json.loads(open(fb["labels"].replace(".jsonl", ".meta.json")).read())
    if drop_id:
        rows = [r for r in rows if r["id"] != drop_id]
    if extra_class:
        meta["classes"] = meta["classes"] + ["surprise"]
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "v.meta.json").write_text(json.dumps(meta))
    return str(tmp_path / "v.jsonl")


@pytest.mark.parametrize("case, match", [
    ("layer", "layer 7 is not in the store"),
    ("uncovered", "not in the label set"),
    ("classes", "3 classes, the label set names 4|targets of length 3, not 4|train has 3 values for the 4 classes"),
])
def test_train_checks_its_inputs_before_writing_or_reading_features(fbank_fold, tmp_path, no_feature_reads,
                                                                  case, match):
    out = tmp_path / "runs" / "probe"
    extra = ("--layer", "7") if case == "layer" else ()
    args = _train_args(fbank_fold, out, *extra)
    if case != "layer":
        labels = _labels_variant(fbank_fold, tmp_path, drop_id=fbank_fold["fold"]["train"][0] if case == "uncovered"
                                 else None, extra_class=case == "classes")
        args[args.index("--labels") + 1] = labels
        args[args.index("--no-tensorboard")] = "--tensorboard"
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert re.search(match, r.output), r.output
    assert not (tmp_path / "runs").exists()


def test_a_run_failing_in_training_leaves_no_folder(fbank_fold, tmp_path):
    out = tmp_path / "r"
    r = CliRunner().invoke(main, _train_args(fbank_fold, out, "--lr", "1e38"))  # float32 overflow in AdamW
    assert r.exit_code != 0 and not out.exists()


def test_a_sweep_with_one_run_that_cannot_start_trains_none(fbank_fold, tmp_path, no_feature_reads):
    out = tmp_path / "s"
    args = _sweep_args(fbank_fold, out, "--labels", _labels_variant(fbank_fold, tmp_path, extra_class=True))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    assert "1 of 2 runs cannot start, nothing was trained; first: run probe-L0-lr0.01-f1-s0-fbank-v-" in r.output
    assert not out.exists()


# --- sweep files: unknown keys are named --------------------------------------------------------

def test_an_unknown_key_in_a_sweep_file_is_named_with_the_accepted_ones(fbank_fold, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"store: {fbank_fold['store']}\nlabels: {fbank_fold['labels']}\npartition: {fbank_fold['part']}\n"
                    "fold: f1\nhead: probe\nlr_rate: 0.1\n")
    with pytest.raises(SweepError, match=r"unknown key 'lr_rate' in .*sweep.yaml; accepted: store, labels, "
                                         r"partition, head, fold, layer, .*lr,") as info:
        read_spec(spec)
    assert "required" not in str(info.value)
    spec.write_text("head: probe\nruns:\n  - {hedden: 3}\n")
    with pytest.raises(SweepError, match=r"unknown key 'hedden' \(\[\[runs\]\] table 1\)"):
        read_spec(spec)


def test_a_sweep_file_of_misspelt_keys_says_what_is_required(tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text('stor = "s.zarr"\nlables = "mr.jsonl"\npartion = "p.json"\nhaed = "probe"\nfold = "f1"\n')
    r = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "unknown keys 'stor', 'lables', 'partion', 'haed' in " in r.output
    assert "required and not given: store, labels, partition, head (in the file or as options)" in r.output
