"""Issue 21: every file format validated where it is read, every output failure one line.

One test per row of the issue's tables that belongs to file formats and outputs: a wrong input
is refused with one line naming the file, the row or line and the field; an outcome that is not
a success (every row excluded, a fold with an empty part) is not exit 0; an output path that
cannot be written (a folder, a full or read-only disk) is one line and leaves no ``.partial``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.labels.aggregate import LabelSetError, aggregate_manifest, read_label_set, write_label_set
from emostore.manifests import ManifestError, load_manifest
from emostore.manifests.partitions import PartitionError, make_partition, read_partition, write_partition

from conftest import write_manifest


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(r) -> str:
    """The command's error: exit 1 and a single 'Error:' line, no traceback."""
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def no_partials(folder: Path) -> None:
    assert not list(Path(folder).rglob("*.partial")), list(Path(folder).rglob("*.partial"))


# ------------------------------------------------------------------------------------------ label sets

@pytest.fixture
def label_set(tmp_path):
    """An MR label set over 12 rows of 3 classes (a real aggregation), and its rows as dicts."""
    rows = [{"id": f"u{i:02d}", "emotion": ("anger", "neutral", "sadness")[i % 3]} for i in range(12)]
    m = write_manifest(tmp_path / "r.jsonl", rows)
    records, meta = aggregate_manifest(m, "mr", ["anger", "neutral", "sadness"], smoothing=0.1)
    path = write_label_set(tmp_path / "mr.jsonl", records, meta)
    return path, [r.to_json() for r in records]


def rewrite(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_label_vectors_cut_to_fewer_classes_are_refused_naming_the_rows(label_set):
    path, rows = label_set
    read_label_set(path)  # the honest file reads
    cut = [dict(r, train=r["train"][:2], test=r["test"][:2]) for r in rows]
    with pytest.raises(LabelSetError) as err:
        read_label_set(rewrite(path, cut))
    msg = str(err.value)
    assert f"{path}: 12 of 12 rows are invalid" in msg and f"{path}:1 (id 'u00')" in msg
    assert "train has 2 values for the 3 classes anger, neutral, sadness" in msg and "\n" not in msg
    # without the meta file, the cut rows no longer sum to 1 (their class was cut off)
    path.with_name("mr.meta.json").unlink()
    with pytest.raises(LabelSetError, match=r"mr.jsonl:3 \(id 'u02'\): train sums to 0.0\d*, not 1"):
        read_label_set(path)


def test_a_negative_target_is_refused(label_set):
    path, rows = label_set
    rows[4] = dict(rows[4], train=[-1.0, 0.0, 2.0])  # sums to 1, still no distribution
    with pytest.raises(LabelSetError) as err:
        read_label_set(rewrite(path, rows))
    assert str(err.value).startswith(f"{path}:5 (id 'u04'): train[0] input should be greater than or equal to 0")
    assert "accepted: C numbers >= 0 summing to 1" in str(err.value)


def test_nan_targets_name_every_bad_row(label_set):
    path, rows = label_set
    for i in (2, 7, 9):
        rows[i] = dict(rows[i], train=[float("nan")] * 3)
    with pytest.raises(LabelSetError) as err:
        read_label_set(rewrite(path, rows))
    msg = str(err.value)
    assert msg.startswith(f"{path}: 3 of 12 rows are invalid")
    for line, uid in ((3, "u02"), (8, "u07"), (10, "u09")):
        assert f"{path}:{line} (id '{uid}'): train[0] input should be a finite number, got NaN" in msg


def test_a_label_row_of_the_wrong_length_is_one_line_not_numpy(label_set, tmp_path):
    path, rows = label_set
    rows[6] = dict(rows[6], train=rows[6]["train"] + [0.0], test=rows[6]["test"] + [0])
    rewrite(path, rows)
    pred = rewrite(tmp_path / "pred.jsonl", [{"id": r["id"], "probs": [0.2, 0.3, 0.5]} for r in rows])
    line = one_line(run("evaluate", pred, "--labels", path))
    assert f"{path}:7 (id 'u06'): train has 4 values for the 3 classes" in line
    assert "inhomogeneous" not in line


def test_a_misspelt_label_key_is_named(label_set):
    path, rows = label_set
    rows[0] = {"id": "u00", "trian": rows[0]["train"], "test": rows[0]["test"], "excluded": None}
    with pytest.raises(LabelSetError, match=r"mr.jsonl:1 \(id 'u00'\): train is missing"):
        read_label_set(rewrite(path, rows))


def test_aggregate_refuses_a_label_set_with_every_row_excluded(tmp_path, label_set):
    m = tmp_path / "r.jsonl"
    out = tmp_path / "foo.jsonl"
    line = one_line(run("labels", "aggregate", m, "--rule", "mr", "--classes", "foo,bar", "--out", out))
    assert "all 12 rows are excluded under MR with the classes foo, bar (no rating in the class set: 12)" in line
    assert "--allow-all-excluded" in line and not out.exists()
    r = run("labels", "aggregate", m, "--rule", "mr", "--classes", "foo,bar", "--out", out, "--allow-all-excluded")
    assert r.exit_code == 0 and "12 excluded" in r.output
    assert all(rec.excluded for rec in read_label_set(out)[0])


# ------------------------------------------------------------------------------------------ partitions

def test_partition_refuses_a_rule_that_leaves_a_part_empty(tmp_path, small_manifest):
    rows = [json.loads(x) for x in small_manifest.read_text().splitlines()][:3]
    m3 = write_manifest(tmp_path / "m3.jsonl", rows)
    out = tmp_path / "p3.json"
    line = one_line(run("partition", "emodb", m3, "--rule", "emobox-rule", "--out", out))
    assert "rule 'emobox-rule' on 3 rows" in line and "folds have an empty part: fold1 (dev" in line
    assert not out.exists() and not out.with_name("p3.meta.json").exists()


def test_reading_a_partition_checks_every_fold(tmp_path):
    path = tmp_path / "p.json"
    from emostore.manifests.partitions.leakage import read_for_training

    path.write_text(json.dumps({"f1": {"train": ["a"], "dev": [], "test": ["b"]},
                                "f2": {"train": ["a"], "dev": ["c"], "test": []}}))
    with pytest.raises(PartitionError, match=r"p.json: 1 of 2 folds have an empty part: f2 \(test\)"):
        read_partition(path)
    path.write_text(json.dumps({"f1": {"train": [], "dev": [], "test": ["b"]}}))
    assert read_partition(path).folds["f1"]["test"] == ["b"]  # scoring-only: fine to score on
    with pytest.raises(PartitionError, match=r"p.json: 1 of 1 folds have an empty part: f1 \(train\)"):
        read_for_training(path)
    path.write_text(json.dumps({"f1": {"train": ["a"], "dev": [], "tset": ["b"]}}))
    with pytest.raises(PartitionError, match=r"fold 'f1': test is missing"):
        read_partition(path)
    path.write_text(json.dumps({"f1": {"train": ["a", 3.5], "dev": [], "test": ["b"]}}))
    with pytest.raises(PartitionError, match=r"fold 'f1': train\[1\] input should be a valid string"):
        read_partition(path)


def test_training_rechecks_a_speaker_independent_claim(tmp_path, fbank_fold):
    """40 test ids moved into train with the meta still claiming speaker independence: refused."""
    from emostore.manifests.partitions.leakage import read_for_training

    rows = fbank_fold["rows"]
    m = load_manifest(fbank_fold["manifest"])
    honest = make_partition("emodb", m, "emobox-rule")
    assert honest.speaker_independent
    good = write_partition(honest, tmp_path / "good.json")
    assert read_for_training(good).folds == honest.folds
    folds = {k: {p: list(v) for p, v in f.items()} for k, f in honest.folds.items()}
    moved = folds["fold1"]["test"][:2]
    folds["fold1"]["test"] = folds["fold1"]["test"][2:]
    folds["fold1"]["train"] += moved
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(folds))
    shutil.copy(tmp_path / "good.meta.json", tmp_path / "edited.meta.json")
    spk = {r["id"]: r["speaker"] for r in rows}[moved[0]]
    line = one_line(run("train", "--store", fbank_fold["store"], "--labels", fbank_fold["labels"],
                        "--partition", bad, "--fold", "fold1", "--head", "weighted-sum", "--epochs", "1",
                        "--out", tmp_path / "run", "--quiet"))
    assert f"{bad}: its meta claims speaker_independent, but fold 'fold1' leaks speakers between train and test: " \
           f"{spk}" in line
    assert not (tmp_path / "run" / "run.json").exists()
    meta = json.loads((tmp_path / "edited.meta.json").read_text())
    meta.pop("manifest")
    (tmp_path / "edited.meta.json").write_text(json.dumps(meta))
    with pytest.raises(PartitionError, match="names no manifest to check the speakers against"):
        read_for_training(bad)


# ------------------------------------------------------------------------------------------ manifests

@pytest.mark.parametrize("row, message", [
    ({"id": "x", "audio": "a.wav", "ratings": "[1, 2"}, r"m.jsonl:2 \(id 'x'\): ratings is neither a JSON list"),
    ({"id": "x", "audio": "a.wav", "ratings": ["a", "b"], "raters": ["r1"]},
     r"m.jsonl:2 \(id 'x'\): 2 ratings but 1 raters"),
    ({"id": "x", "audio": "a.wav", "duration": "long"}, r"m.jsonl:2 \(id 'x'\): duration input should be a valid number"),
    ({"id": "x", "audio": "a.wav", "duration": float("nan")}, r"m.jsonl:2 \(id 'x'\): duration .*got NaN"),
    ({"id": "x", "audio": "a.wav", "speaker": ["a", "b"]}, r"speaker must be a string or a number, got \[\"a\", \"b\"\]"),
])
def test_manifest_rows_are_checked_where_they_are_read(tmp_path, row, message):
    fine = [{"id": "ok", "audio": "a.wav", "duration": None, "speaker": 3, "ratings": [1, "a"], "raters": "r1;r2"},
            {"id": 7, "audio": "b.wav", "duration": "", "session": "1", "ratings": "", "raters": ""}]
    assert load_manifest(write_manifest(tmp_path / "fine.jsonl", fine)).ids == ["ok", "7"]
    path = write_manifest(tmp_path / "m.jsonl", [{"id": "ok", "audio": "a.wav"}, row])
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)
    r = run("manifest", "check", path, "--no-probe")  # the check agrees: not OK
    assert r.exit_code == 1 and "NOT OK" in r.output, r.output


# ------------------------------------------------------------------------------------------ outputs

def test_a_folder_as_a_file_path_is_one_line_and_leaves_no_partial(tmp_path, small_manifest, emodb_dir):
    (tmp_path / "taken").mkdir()
    for args in (("partition", "emodb", small_manifest, "--rule", "emobox-rule", "--out", tmp_path / "taken"),
                 ("labels", "aggregate", small_manifest, "--rule", "ar", "--out", tmp_path / "taken"),
                 ("manifest", "build", "emodb", emodb_dir, "--out", tmp_path / "taken")):
        r = run(*args)
        assert r.exit_code != 0, r.output
        assert "Traceback" not in r.output and ("is a folder" in r.output or "is a directory" in r.output), r.output
    no_partials(tmp_path)


def test_missing_parent_folders_are_created(tmp_path):
    from emostore.outputs import OutputError, write_text

    out = write_text(tmp_path / "a" / "b" / "c.txt", "x\n")
    assert out.read_text() == "x\n"
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        write_text(tmp_path / "file" / "c.txt", "x")


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on the device"),
                                         (errno.EROFS, "the file system is read-only"),
                                         (errno.EACCES, "permission denied")])
def test_disk_refusals_are_one_line_and_remove_the_partial(tmp_path, monkeypatch, code, words):
    import emostore.outputs as outputs
    from emostore.outputs import OutputError, atomic_path, write_text

    def refuse(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    target = tmp_path / "labels.jsonl"
    target.write_text("old\n")
    monkeypatch.setattr(outputs.os, "replace", refuse)
    with pytest.raises(OutputError) as err:
        write_text(target, "new\n")
    assert str(err.value).startswith(f"{target}: cannot write ({words})")
    assert target.read_text() == "old\n"  # the old file survives
    no_partials(tmp_path)
    with pytest.raises(ZeroDivisionError):  # any other failure keeps its type, and its partial goes too
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            1 / 0
    no_partials(tmp_path)


@contextmanager
def small_disk(path: Path, size: str = "64k", read_only: bool = False):
    """A real tmpfs of ``size`` at ``path`` (root only); skips the test where mounting is not allowed."""
    path.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_is_one_line_for_label_sets_and_manifests(tmp_path, small_manifest, emodb_dir):
    with small_disk(tmp_path / "full", "8k") as disk:
        (disk / "filler").write_bytes(b"\0" * 4096)
        big = [{"id": f"u{i}", "emotion": "anger"} for i in range(2000)]
        m = write_manifest(tmp_path / "big.jsonl", big)
        line = one_line(run("labels", "aggregate", m, "--rule", "mr", "--out", disk / "mr.jsonl"))
        assert line == f"Error: {disk / 'mr.jsonl'}: cannot write (no space left on the device); free space, fix " \
                       "the permissions or choose another output path"
        no_partials(disk)
        assert not (disk / "mr.jsonl").exists()
        line = one_line(run("manifest", "build", "emodb", emodb_dir, "--out", disk / "emodb.jsonl"))
        assert line.startswith(f"Error: {disk / 'emodb.jsonl'}: cannot write (no space left on the device)")
        no_partials(disk)


def test_a_read_only_disk_is_one_line_for_train_and_partition(tmp_path, small_manifest, fbank_fold):
    with small_disk(tmp_path / "ro", "1m", read_only=True) as disk:
        line = one_line(run("partition", "emodb", small_manifest, "--rule", "emobox-rule", "--out", disk / "p.json"))
        assert "cannot write (the file system is read-only)" in line and str(disk) in line
        line = one_line(run("train", "--store", fbank_fold["store"], "--labels", fbank_fold["labels"],
                            "--partition", fbank_fold["part"], "--fold", "f1", "--head", "weighted-sum",
                            "--epochs", "1", "--out", disk / "run", "--quiet"))
        assert f"{disk / 'run'}: cannot write (the file system is read-only)" in line


# ------------------------------------------------------------------------------------------ HDF5

def test_store_export_to_a_missing_folder_creates_it_and_import_round_trips(tmp_path, fbank_fold):
    out = tmp_path / "new" / "folder" / "s.h5"
    assert run("store", "export", fbank_fold["store"], "--hdf5", out).exit_code == 0
    r = run("store", "import", out, "--out", tmp_path / "back.zarr")
    assert r.exit_code == 0, r.output
    no_partials(tmp_path)


def test_store_import_of_a_file_that_is_not_hdf5_is_one_line(tmp_path, fbank_fold):
    bogus = tmp_path / "notes.h5"
    bogus.write_text("not hdf5\n")
    line = one_line(run("store", "import", bogus, "--out", tmp_path / "x.zarr"))
    assert line.startswith(f"Error: {bogus}: not an HDF5 file") and "store export" in line
    assert not (tmp_path / "x.zarr").exists()


def test_store_export_on_a_full_or_read_only_disk_is_one_line(tmp_path, fbank_fold):
    with small_disk(tmp_path / "full", "256k") as disk:
        line = one_line(run("store", "export", fbank_fold["store"], "--hdf5", disk / "s.h5"))
        assert f"{disk / 's.h5'}: the export needs up to" in line and f"{disk} has 0.2 MiB free" in line
        assert not list(disk.iterdir())
    with small_disk(tmp_path / "ro", "64m", read_only=True) as disk:
        line = one_line(run("store", "export", fbank_fold["store"], "--hdf5", disk / "s.h5"))
        assert f"{disk}: cannot write (the file system is read-only)" in line


# ------------------------------------------------------------------------------------------ import cycle

def test_labels_never_import_evaluate():
    """The labels <-> evaluate cycle is cut: evaluate reads label sets, labels know nothing of scoring."""
    code = ("import sys, emostore.labels.aggregate, emostore.labels.compare, emostore.labels.relabeled; "
            "bad = sorted(m for m in sys.modules if m.startswith('emostore.evaluate')); "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert r.returncode == 0, r.stdout + r.stderr
