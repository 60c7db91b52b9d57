"""README's recipe table is a fresh run's: its FBANK rows equal a recipe run made now, and the
numbers do not depend on how many torch threads trained them."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import REPO


def _script():
    spec = importlib.util.spec_from_file_location("readme_tables", REPO / "bench" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fbank_recipe(tmp_path_factory):
    """README's configuration (bundled subset, default heads, seed 0, 1000 replicates), FBANK only."""
    out = tmp_path_factory.mktemp("readme_fbank")
    return _script().fresh_summary(["fbank"], out, jobs=1)


@pytest.mark.timeout(900)
def test_readme_recipe_table_fbank_rows_equal_a_fresh_run(fbank_recipe):
    script = _script()
    diff = script.differences(script.README.read_text(encoding="utf-8"), fbank_recipe)
    assert diff == [], "README's recipe table is stale; run `python bench/readme_tables.py`:\n" + "\n".join(diff)
    _, rows = script.table_rows(fbank_recipe)
    assert len(rows) == 4 and all(script.encoder_of(r) == "fbank" for r in rows)


def test_merging_fresh_rows_keeps_the_other_encoders_rows():
    script = _script()
    header = "| encoder | x |\n|---|---|\n"
    old = header + "| a | 1 |\n| b | 2 |\n| c | 3 |\n"
    assert script.merged(old, header + "| b | 9 |\n| b | 8 |\n") == header + "| a | 1 |\n| b | 9 |\n| b | 8 |\n| c | 3 |\n"
