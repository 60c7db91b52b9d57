"""A lab: a plan of 2 corpora (EmoDB and RAVDESS subsets) x 2 encoders (fbank, ct2-whisper) extracted on a
2-process cluster, killed mid-plan and resumed to the same stores as an uninterrupted plan; the catalog;
sweeps naming stores by (corpus, encoder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zarr
from click.testing import CliRunner

from conftest import REPO, emodb_clips, needs_ravdess
from emostore.cli import main
from emostore.lab.catalog import catalog
from emostore.lab.layout import LabError
from emostore.lab.plan import extract_plan, read_plan
from emostore.sweep.config import expand

pytest.importorskip("distributed")
NODES = ("ids", "num_frames", "offsets", "done", "pooled/mean", "frames")


def _short(src: Path, dst: Path, seconds: float = 0.6) -> None:
    """A real clip cut to its first ``seconds`` (few, short clips keep Whisper cheap)."""
    audio, sr = sf.read(src, dtype="float32")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, audio[: int(seconds * sr)], sr)


@pytest.fixture
def plan_file(tmp_path, ravdess_dir) -> Path:
    for f in emodb_clips()[:3]:
        _short(f, tmp_path / "emodb" / "wav" / (f.stem + ".wav"))
    for actor, step in (("Actor_01", 30), ("Actor_02", 60)):
        for f in sorted((ravdess_dir / actor).glob("*.flac"))[::step]:
            _short(f, tmp_path / "ravdess" / actor / f.name)
    plan = {"corpora": {"emodb": {"adapter": "emodb", "root": "emodb"}, "ravdess": {"adapter": "ravdess", "root": "ravdess"}},
            "encoders": {"fbank": {"encoder": "fbank", "block_rows": 1},
                         "whisper": {"encoder": "ct2-whisper", "block_rows": 1, "max_batch": 1}}}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def _stores(lab: Path) -> dict:
    out = {}
    for c, e in [(c, e) for c in ("emodb", "ravdess") for e in ("fbank", "whisper")]:
        g = zarr.open_group(str(lab / c / f"{e}.zarr"), mode="r")
        out[(c, e)] = {n: np.asarray(g[n][:]) for n in NODES}
    return out


def _cli(plan: Path, lab: Path) -> list[str]:
    return [sys.executable, "-m", "emostore.cli", "lab", "extract", str(plan), "--lab", str(lab), "--processes", "2"]


@needs_ravdess
def test_plan_killed_mid_way_resumes_to_the_uninterrupted_stores(plan_file, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMOSTORE_PROGRESS_INTERVAL": "0"}
    whole = tmp_path / "whole"  # the reference: the same plan, uninterrupted, in one process
    summaries = extract_plan(read_plan(plan_file), str(whole))
    assert [(s.corpus, s.encoder, s.rows, s.failed, s.error) for s in summaries] == [
        ("emodb", "fbank", 3, 0, None), ("emodb", "whisper", 3, 0, None),
        ("ravdess", "fbank", 3, 0, None), ("ravdess", "whisper", 3, 0, None)]

    lab = tmp_path / "killed"
    proc = subprocess.Popen(_cli(plan_file, lab), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    target = lab / "emodb" / "whisper.zarr"  # the second pair: kill once it exists and is not finished
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None:
            if (target / "zarr.json").exists():
                try:
                    d = np.asarray(zarr.open_group(str(target), mode="r")["done"][:])
                except Exception:  # noqa: BLE001 - its nodes are still being created: not finished
                    d = np.zeros(1, dtype=bool)
                if not d.all():
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the plan finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert target.exists()
    status = {(e["corpus"], e["encoder"]): e["status"] for e in catalog(str(lab))}
    assert status[("emodb", "fbank")] == "complete" and status[("emodb", "whisper")] == "partial"

    again = subprocess.run(_cli(plan_file, lab), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "emodb/fbank: 3 rows (0 extracted now, 3 already done)" in again.stdout  # finished: skipped
    assert len([ln for ln in again.stdout.splitlines() if " MB, " in ln]) == 4  # one summary line per pair
    a, b = _stores(whole), _stores(lab)
    for key in a:
        for node in NODES:
            np.testing.assert_array_equal(a[key][node], b[key][node], err_msg=f"{key} {node}")

    res = CliRunner().invoke(main, ["catalog", str(lab), "--json"])
    assert res.exit_code == 0, res.output
    entries = json.loads(res.output)
    assert [(e["corpus"], e["encoder"], e["status"], e["rows"], e["failed"]) for e in entries] == [
        ("emodb", "fbank", "complete", 3, 0), ("emodb", "whisper", "complete", 3, 0),
        ("ravdess", "fbank", "complete", 3, 0), ("ravdess", "whisper", "complete", 3, 0)]
    fp = {(e["corpus"], e["encoder"]): e["fingerprint"] for e in entries}
    assert fp[("emodb", "whisper")] == fp[("ravdess", "whisper")] != fp[("emodb", "fbank")]
    assert [e["layers"] for e in entries] == [[0], [0, 1, 2, 3, 4], [0], [0, 1, 2, 3, 4]]
    table = CliRunner().invoke(main, ["catalog", str(lab)]).output
    assert table.splitlines()[0].split() == ["corpus", "encoder", "rows", "failed", "size", "status", "layers",
                                             "fingerprint", "when"]

    # sweeps name stores by (corpus, encoder); a pair the lab lacks is one line naming what it holds
    labels = tmp_path / "l.jsonl"
    labels.write_text("")
    runs = expand({"lab": str(lab), "corpus": "emodb", "encoder": "fbank", "labels": str(labels),
                   "partition": str(labels), "head": "probe", "fold": "fold1"})
    assert runs[0].store == str(lab / "emodb" / "fbank.zarr")
    with pytest.raises(LabError, match=r"no store for corpus 'emodb' and encoder 'hubert' \(it holds: emodb/fbank, "):
        expand({"lab": str(lab), "corpus": "emodb", "encoder": "hubert", "labels": str(labels),
                "partition": str(labels), "head": "probe", "fold": "fold1"})


def test_a_bad_plan_is_one_line(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"corpora": {"emodb": {"adapter": "emodb"}}, "encoders": {"fbank": "fbank"}}))
    with pytest.raises(LabError, match="corpus 'emodb' needs both adapter and root"):
        read_plan(bad)
    bad.write_text(json.dumps({"corpora": {"emodb": {"manifest": "m.jsonl"}}, "encoders": {"fb": {"encoder": "fbank", "frams": True}}}))
    with pytest.raises(LabError, match="encoder 'fb': unknown settings frams"):
        read_plan(bad)
    res = CliRunner().invoke(main, ["catalog", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "no such lab" in res.output


def test_a_failing_pair_is_reported_and_the_plan_goes_on(tmp_path):
    for f in emodb_clips()[:2]:
        _short(f, tmp_path / "emodb" / "wav" / (f.stem + ".wav"))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"corpora": {"gone": {"adapter": "emodb", "root": "nowhere"},
                                            "emodb": {"adapter": "emodb", "root": "emodb"}},
                                "encoders": {"fbank": "fbank"}}))
    out = extract_plan(read_plan(plan), str(tmp_path / "lab"))
    assert out[0].error and "nowhere" in out[0].error and out[0].line().startswith("gone/fbank: FAILED")
    assert out[1].error is None and out[1].rows == 2 and out[1].extracted == 2
