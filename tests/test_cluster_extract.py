"""Extraction on a Dask cluster (2 worker processes) into a folder and into an S3 server (moto),
with a worker killed mid-block and a coordinator killed mid-run: the stores equal the
single-process store array by array."""

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

import emostore.store
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.manifests import load_manifest
from emostore.store import StoreError
from moto_s3 import s3  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow  # real models, clusters or killed subprocesses: see README's development notes

distributed = pytest.importorskip("distributed")
pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

# each test starts a Dask cluster, an S3 server or a subprocess: a hang fails it with a message
pytestmark = pytest.mark.timeout(600)

NODES = ("ids", "num_frames", "offsets", "done", "pooled/mean", "frames")

# Loaded into every worker process (Dask `preload`): with hook.json next to it, the first worker
# to encode `kill_row` dies at once (os._exit, mid-block), and one encoding `stall_row` waits for
# the file `release`. A marker file records that each happened.
HOOK = '''
import json, os, sys, time
from pathlib import Path
import emostore.extract.blocks as blocks

sys.path.insert(0, TESTS)  # the stand-in encoders (buggy-fbank), registered in every worker
import stand_in_encoders  # noqa: F401

CONF = Path(HOOK_CONF)  # Dask copies preload files elsewhere: the path is written in
real = blocks.__dict__.setdefault("_unhooked_encode_batch", blocks.encode_batch)  # preload may run twice


def encode_batch(work, encoder, waves, *args, **kw):
    conf = json.loads(CONF.read_text()) if CONF.exists() else {}
    if conf.get("kill_row") in waves and not Path(conf["marker"]).exists():
        Path(conf["marker"]).write_text(str(os.getpid()))
        os._exit(1)
    if conf.get("stall_row") in waves and not Path(conf["marker"]).exists():
        Path(conf["marker"]).write_text(str(os.getpid()))
        deadline = time.time() + 60
        while not Path(conf["release"]).exists() and time.time() < deadline:
            time.sleep(0.05)
    return real(work, encoder, waves, *args, **kw)


blocks.encode_batch = encode_batch
'''


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    """A LocalCluster of 2 single-threaded worker processes (started after the S3 env is set).

    A killed worker's nanny restarts it; LocalCluster drops that nanny for good when the restarted
    worker takes longer than ``lost-worker-timeout`` (15 s) to register, which on a loaded machine
    it does: two kills later the cluster had no worker and the tests waited forever. The tests
    kill workers on purpose, so they give restarts all the time they need."""
    import dask
    from distributed import Client, LocalCluster

    hook_dir = tmp_path_factory.mktemp("hook")
    (hook_dir / "emostore_test_hook.py").write_text(f"HOOK_CONF = {str(hook_dir / 'hook.json')!r}\n"
                                                    f"TESTS = {str(Path(__file__).parent)!r}\n" + HOOK)
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1 hour"}), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      preload=[str(hook_dir / "emostore_test_hook.py")]) as lc, Client(lc) as client:
        yield {"address": lc.scheduler_address, "client": client, "hook": hook_dir}


def _hook(cluster, **conf) -> dict:
    conf = {k: str(v) if isinstance(v, Path) else v for k, v in conf.items()}
    (cluster["hook"] / "hook.json").write_text(json.dumps(conf))
    return conf


def _opts(address: str, **kw) -> ExtractOptions:
    """The fbank_fold store's settings (float32 frames, blocks of 8 rows); batches of 2 clips, so
    a block has several batches and a worker can die in the middle of one."""
    return ExtractOptions(encoder="fbank", frames_dtype="float32", block_rows=8, max_batch=2,
                          scheduler=address, **kw)


def _assert_same_store(reference: str, other: str) -> None:
    a, b = zarr.open_group(reference, mode="r"), zarr.open_group(other, mode="r")
    for node in NODES:
        np.testing.assert_array_equal(np.asarray(a[node][:]), np.asarray(b[node][:]), err_msg=node)
    assert a["errors"].attrs["entries"] == b["errors"].attrs["entries"]


def _last_packed_row(rows: list[dict], block: int, block_rows: int = 8) -> int:
    """The block's row encoded last (longest clip): killing there is mid-block."""
    idx = range(block * block_rows, min(len(rows), (block + 1) * block_rows))
    return max(idx, key=lambda r: (sf.info(rows[r]["audio"]).frames, r))


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_encoder_bug_on_a_worker_keeps_its_traceback_not_a_cluster_error(fbank_fold, cluster, tmp_path):
    import traceback

    import stand_in_encoders  # noqa: F401  (buggy-fbank here too: the coordinator plans with it)

    _hook(cluster)
    with pytest.raises(TypeError) as info:
        extract(load_manifest(fbank_fold["manifest"]), str(tmp_path / "bug.zarr"),
                ExtractOptions(encoder="buggy-fbank", frames_dtype="float32", block_rows=8, max_batch=2,
                               scheduler=cluster["address"]))
    assert "encode" in [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert any("Dask worker" in n for n in getattr(info.value, "__notes__", []))


def test_cluster_run_with_a_killed_worker_equals_the_single_process_store(fbank_fold, cluster, tmp_path):
    m = load_manifest(fbank_fold["manifest"])
    conf = _hook(cluster, kill_row=_last_packed_row(fbank_fold["rows"], 2), marker=tmp_path / "killed")
    s = extract(m, str(tmp_path / "c.zarr"), _opts(cluster["address"]))
    pid = int(Path(conf["marker"]).read_text())
    assert _dead(pid), "the hooked worker should have died mid-block"
    assert (s.extracted, s.failed) == (len(m), 0)
    _assert_same_store(fbank_fold["store"], str(tmp_path / "c.zarr"))


def test_a_cluster_without_workers_stops_with_one_error_instead_of_waiting(fbank_fold, tmp_path, monkeypatch):
    from distributed import LocalCluster

    from emostore.extract import cluster as cluster_mod

    monkeypatch.setattr(cluster_mod, "WORKERLESS_S", 2.0)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as lc:
        with pytest.raises(cluster_mod.ClusterError, match=r"no worker for 2 s with \d+ blocks still to run"):
            extract(load_manifest(fbank_fold["manifest"]), str(tmp_path / "none.zarr"), _opts(lc.scheduler_address))


def test_s3_store_from_the_cluster_equals_the_local_one_and_trains_the_same_head(fbank_fold, cluster, s3, tmp_path):
    from emostore.heads.config import TrainConfig
    from emostore.heads.train import run

    m = load_manifest(fbank_fold["manifest"])
    url = "s3://emo/killed-worker.zarr"
    conf = _hook(cluster, kill_row=_last_packed_row(fbank_fold["rows"], 1), marker=tmp_path / "killed")
    extract(m, url, _opts(cluster["address"]))
    assert _dead(int(Path(conf["marker"]).read_text()))
    _assert_same_store(fbank_fold["store"], url)
    assert not s3.exists("emo/killed-worker.zarr/.lock"), "the lease lock is removed when extraction ends"
    local, remote = emostore.store.open(fbank_fold["store"]), emostore.store.open(url)
    np.testing.assert_array_equal(local.pooled(), remote.pooled())
    for i in (0, 17, len(local) - 1):
        np.testing.assert_array_equal(local.frames(i), remote.frames(i))
    assert emostore.store.verify(remote) == [] and remote.nbytes_stored() > 0
    cfg = TrainConfig(head="probe", fold="f1", epochs=3, lr=1e-2, batch_size=8)
    a = run(fbank_fold["store"], fbank_fold["labels"], fbank_fold["part"], cfg, tmp_path / "a", tensorboard=False)
    b = run(url, fbank_fold["labels"], fbank_fold["part"], cfg, tmp_path / "b", tensorboard=False)
    assert a.test_ids == b.test_ids
    np.testing.assert_array_equal(a.test_probs, b.test_probs)


def test_s3_extraction_killed_mid_run_resumes_to_the_same_store(fbank_fold, cluster, s3, tmp_path):
    """SIGKILL the coordinator while a block is in flight: its lease lock stays and refuses a second
    writer until the lease runs out; then a re-run finishes the store, equal to the clean one."""
    url = "s3://emo/killed-coordinator.zarr"
    conf = _hook(cluster, stall_row=_last_packed_row(fbank_fold["rows"], 2), marker=tmp_path / "stalled",
                 release=tmp_path / "release")
    cmd = [sys.executable, "-m", "emostore.cli", "extract", fbank_fold["manifest"], "--out", url, "--encoder",
           "fbank", "--frames-dtype", "float32", "--block-rows", "8", "--max-batch", "2",
           "--scheduler", cluster["address"]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if Path(conf["marker"]).exists():
            try:
                fresh = {"skip_instance_cache": True, "use_listings_cache": False}  # no cached "absent"
                done = int(np.asarray(zarr.open_group(url, mode="r", storage_options=fresh)["done"][:]).sum())
            except Exception:  # noqa: BLE001 - the store is still being created
                done = 0
            if done >= 8:
                break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    Path(conf["release"]).touch()
    assert proc.returncode == -signal.SIGKILL and 8 <= done < len(fbank_fold["rows"]), (proc.returncode, done)

    m = load_manifest(fbank_fold["manifest"])
    with pytest.raises(StoreError, match="another extraction is writing this store"):
        extract(m, url, _opts(cluster["address"]))
    lock = json.loads(s3.cat_file("emo/killed-coordinator.zarr/.lock"))
    lock["heartbeat"] -= lock["ttl"] + 1  # as if the dead holder's lease had run out
    s3.pipe_file("emo/killed-coordinator.zarr/.lock", json.dumps(lock).encode())
    s = extract(m, url, _opts(cluster["address"]))
    assert s.skipped == done and s.extracted == len(fbank_fold["rows"]) - done
    _assert_same_store(fbank_fold["store"], url)


def test_lease_lock_refuses_a_second_writer_and_its_holder_notices_a_takeover(s3):
    from emostore.store.lock import LeaseLock

    first = LeaseLock("s3://emo/locked.zarr", ttl=60)
    with pytest.raises(StoreError, match="another extraction is writing this store"):
        LeaseLock("s3://emo/locked.zarr", ttl=60)
    first.check()
    held = json.loads(s3.cat_file("emo/locked.zarr/.lock"))
    held["heartbeat"] -= 120
    s3.pipe_file("emo/locked.zarr/.lock", json.dumps(held).encode())
    second = LeaseLock("s3://emo/locked.zarr", ttl=60)  # the first looks dead: taken over
    with pytest.raises(StoreError, match="lost its lock"):
        first.check()
    first.close()
    assert json.loads(s3.cat_file("emo/locked.zarr/.lock"))["owner"] == second.owner
    second.close()
    assert not s3.exists("emo/locked.zarr/.lock")
