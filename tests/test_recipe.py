"""`emostore recipe`: every step on the bundled EmoDB subset, and a second run that does no work again."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.manifests.emobox_lists import shipped
from emostore.store import open as open_store


@pytest.mark.slow
def test_recipe_runs_every_step_then_reuses_every_store_and_run(tmp_path):
    out = tmp_path / "r"
    args = ["recipe", "--encoder", "fbank", "--head", "probe", "--head", "weighted-sum", "--n-boot", "50",
            "--out", str(out)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    # the partition is EmoBox's published EmoDB folds restricted to the 135 bundled clips
    part = json.loads((out / "partition.json").read_text())
    ids = {json.loads(line)["id"] for line in (out / "lab" / "emodb" / "manifest.jsonl").read_text().splitlines()}
    assert len(ids) == 135 and list(part) == [f"fold{k}" for k in range(1, 6)]
    for name, fold in part.items():
        assert fold["test"] == [i for i in shipped("emodb").folds[name]["test"] if i in ids]
    fs = open_store(out / "lab" / "emodb" / "fbank.zarr")
    assert int(fs.done.sum()) == 135 and not fs.has_frames  # no frame head asked for: pooled only
    table = (out / "summary.md").read_text()
    assert table.startswith("| encoder | labels | head (dev-selected) | folds | UA % |")
    assert "| fbank | MR | weighted-sum | 5 |" in table and "| fbank | MR | probe L0 | 5 |" in table
    assert (out / "report" / "index.html").is_file() and table.splitlines()[0] in first.output
    assert "[5/6] sweep: 10 runs: 10 trained, 0 already done, 0 failed" in first.output

    stamp = (out / "lab" / "emodb" / "fbank.zarr" / "zarr.json").stat().st_mtime_ns
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "fbank.zarr: finished, nothing to do (135 rows done, 0 failed earlier)" in second.output
    assert "[5/6] sweep: 10 runs: 0 trained, 10 already done, 0 failed" in second.output
    assert "[1/6] manifest: 135" in second.output and (out / "lab" / "emodb" / "fbank.zarr" / "zarr.json").stat().st_mtime_ns == stamp
    assert (out / "summary.md").read_text() == table  # same runs, same seeds: the same numbers


def test_recipe_needs_corpus_and_root_together():
    res = CliRunner().invoke(main, ["recipe", "emodb"])
    assert res.exit_code == 2 and "give both CORPUS and ROOT, or neither" in res.output


@pytest.mark.slow
def test_recipe_on_a_corpus_root_of_the_users_resolves_every_audio_path(tmp_path):
    """CORPUS ROOT in the native layout: the manifest's relative audio paths must hold from OUT."""
    import shutil

    from emostore.manifests import load_manifest
    from emostore.recipe.demo_data import bundled_root

    corpus = tmp_path / "corpus" / "wav"
    corpus.mkdir(parents=True)
    for flac in sorted((bundled_root() / "wav").glob("*.flac"))[::4]:  # 34 clips, every speaker
        shutil.copy(flac, corpus / flac.name)
    out = tmp_path / "runs" / "deeper" / "r"
    res = CliRunner().invoke(main, ["recipe", "emodb", str(tmp_path / "corpus"), "--encoder", "fbank", "--head", "probe",
                                    "--allow-mismatch", "--n-boot", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = load_manifest(out / "lab" / "emodb" / "manifest.jsonl")
    assert len(manifest) == 34 and all((out / r["audio"]).resolve().is_file() for r in manifest.rows)
    assert "34 extracted, 0 already done, 0 failed" in res.output
    assert not list(out.glob(".staged-*"))


@pytest.mark.slow
def test_a_corpus_whose_every_clip_fails_stops_with_one_line_before_training(tmp_path):
    wav = tmp_path / "corpus" / "wav"
    wav.mkdir(parents=True)
    for name in ("03a01Fa", "08a01Wa", "09a01Ta", "10a01Na", "11a01Fa"):  # 5 speakers: every fold gets a dev part
        (wav / f"{name}.wav").write_bytes(b"not audio")
    res = CliRunner().invoke(main, ["recipe", "emodb", str(tmp_path / "corpus"), "--encoder", "fbank", "--head", "probe",
                                    "--rule", "emobox-rule", "-q", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "every clip failed to extract, e.g. " in res.output and "Format not recognised" in res.output
    assert not (tmp_path / "r" / "sweep").exists()
