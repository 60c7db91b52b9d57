"""`store verify --manifest`: a store extracted from a folder passes against the EmoDB adapter's
manifest of the same clips (another hash, same ids and audio) with a note; other audio still fails."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.extract.planning import ExtractOptions
from emostore.extract.runner import extract
from emostore.manifests import load_manifest
from emostore.manifests.build import build_manifest
from emostore.store import open as open_store, verify


@pytest.fixture
def folder_store(tmp_path, shortest_clips):
    """README's first command: a store extracted from a folder of 4 real EmoDB clips, and the
    emodb adapter's manifest of that folder."""
    wav = tmp_path / "emodb" / "wav"
    wav.mkdir(parents=True)
    for c in shortest_clips[:4]:
        shutil.copy(c, wav / c.name)
    store = tmp_path / "s.zarr"
    extract(load_manifest(wav), str(store), ExtractOptions(encoder="fbank", frames=False))
    adapter = tmp_path / "emodb.jsonl"
    build_manifest("emodb", tmp_path / "emodb", adapter)
    return store, adapter, wav


def test_adapter_manifest_of_the_same_clips_passes_with_a_note(folder_store):
    store, adapter, wav = folder_store
    fs, m = open_store(store), load_manifest(adapter)
    assert m.sha256 != fs.attrs["manifest_sha256"]  # another manifest: the hashes differ
    notes: list[str] = []
    assert verify(fs, m, notes=notes) == []
    assert len(notes) == 1 and "same 4 ids in the same order with the same audio" in notes[0]
    r = CliRunner().invoke(main, ["store", "verify", str(store), "--manifest", str(adapter)])
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{store}: OK\n"
    assert r.stderr.startswith(f"note: manifest {adapter} differs from the one this store was made from ({wav})")


def test_a_manifest_with_other_audio_for_an_id_still_fails(folder_store, tmp_path):
    store, adapter, _ = folder_store
    rows = [json.loads(line) for line in adapter.read_text().splitlines()]
    rows[0]["audio"], rows[1]["audio"] = rows[1]["audio"], rows[0]["audio"]  # two clips swapped
    swapped = tmp_path / "swapped.jsonl"
    swapped.write_text("".join(json.dumps(r) + "\n" for r in rows))
    notes: list[str] = []
    problems = verify(open_store(store), load_manifest(swapped), notes=notes)
    assert len(problems) == 1 and f"id {rows[0]['id']!r} has other audio" in problems[0]
    assert notes == []
    r = CliRunner().invoke(main, ["store", "verify", str(store), "--manifest", str(swapped)])
    assert r.exit_code == 1 and "has other audio" in r.stderr


def test_other_ids_or_an_unreadable_original_fail_naming_why(folder_store, tmp_path):
    store, adapter, wav = folder_store
    rows = [json.loads(line) for line in adapter.read_text().splitlines()]
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))
    problems = verify(open_store(store), load_manifest(fewer))
    assert len(problems) == 1 and f"1 store ids not in it (e.g. {rows[0]['id']!r})" in problems[0]
    shutil.move(wav, tmp_path / "moved")  # the folder the store was made from is gone
    problems = verify(open_store(store), load_manifest(adapter))
    assert len(problems) == 1 and "the ids agree but the audio cannot be compared" in problems[0]
