"""Tests run from any clone: one setting (EMOSTORE_TEST_DATA) finds the data, EmoDB-only fixtures fall
back to the bundled subset, missing data skips with one line, and under CI=true it fails instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import conftest
from conftest import REPO


def test_missing_data_skips_with_one_line_and_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^needs corpus X from there: not at .*none \(point EMOSTORE_TEST_DATA"):
        conftest.need_data(tmp_path / "none", "corpus X from there")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true runs every data test: needs corpus X"):
        conftest.need_data(tmp_path / "none", "corpus X from there")
    assert conftest.need_data(tmp_path, "corpus X") == tmp_path  # present: no skip, CI or not


@pytest.mark.timeout(300)
def test_a_clone_without_data_gets_the_bundled_subset_for_every_emodb_fixture(tmp_path):
    code = """
import json, conftest
from pathlib import Path
rows, fold = conftest.emodb_fold_rows(per_train=3)
print(json.dumps({"full": conftest.EMODB_IS_FULL, "emodb": str(conftest.EMODB), "data": str(conftest.TEST_DATA),
                  "rows": len(rows), "fold": {k: len(v) for k, v in fold.items()},
                  "audio": all(Path(r["audio"]).is_file() and r["audio"].endswith(".flac") for r in rows),
                  "clips": len(conftest.emodb_clips())}))
"""
    env = {**os.environ, "EMOSTORE_TEST_DATA": str(tmp_path / "no-data-here"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["data"] == str(tmp_path / "no-data-here") and not got["full"]
    assert got["emodb"].endswith("emodb16k/wav") and got["clips"] == 135 and got["audio"]
    # 3 emotions x (3 train speakers x 2 bundled clips, 1 dev, 1 test): the fold the fixtures build on
    assert got["rows"] == 24 and got["fold"] == {"train": 18, "dev": 3, "test": 3}
