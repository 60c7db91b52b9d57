"""bench/reproduce_emobox.py: its inputs are EmoBox's protocols on the real EmoDB and stay byte-stable across
reruns (their content is part of every sweep run id), and an unfinished grid point never wins selection."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd

from conftest import REPO, need_full_emodb


def _bench():
    spec = importlib.util.spec_from_file_location("reproduce_emobox", REPO / "bench" / "reproduce_emobox.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_inputs_are_both_protocols_and_rewritten_only_when_changed(tmp_path):
    bench = _bench()
    emodb = need_full_emodb().parent  # the published folds name all 535 clips
    inputs = bench.prepare_inputs(tmp_path, emodb)
    published = json.loads(inputs["emobox"].read_text())
    assert [{p: len(v) for p, v in f.items()} for f in published.values()] == \
        [{"train": 342, "dev": 86, "test": 107}] * 5
    rule = json.loads(inputs["emobox-rule"].read_text())
    assert len(rule) == 4
    for f in rule.values():  # the stated rule: no test speaker in train or dev
        assert not {i[:2] for i in f["test"]} & {i[:2] for i in f["train"] + f["dev"]}
    labels = [json.loads(line) for line in inputs["labels"].read_text().splitlines()]
    assert len(labels) == 535 and all(sum(r["test"]) == 1 for r in labels)  # one acted label per clip

    stamps = {k: Path(p).stat().st_mtime_ns for k, p in inputs.items()}
    again = bench.prepare_inputs(tmp_path, emodb)
    assert {k: Path(p).stat().st_mtime_ns for k, p in again.items()} == stamps


def test_settings_missing_a_fold_are_left_out_of_selection(tmp_path):
    bench = _bench()
    part = tmp_path / "p.json"
    part.write_text(json.dumps({f"fold{k}": {"train": ["a"], "dev": ["b"], "test": ["c"]} for k in (1, 2, 3)}))
    runs = pd.DataFrame({"setting": ["full"] * 3 + ["partial"] * 2, "fold": ["fold1", "fold2", "fold3", "fold1", "fold2"],
                         "dev_loss": [0.9, 0.9, 0.9, 0.1, 0.1], "partition": str(part)})
    kept, left_out = bench.complete_settings(runs)
    assert set(kept["setting"]) == {"full"} and left_out == 1
