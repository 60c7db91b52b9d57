"""`--rule emobox` is EmoBox's published lists; the paper's stated rule is `emobox-rule`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.manifests import emobox_lists
from emostore.manifests import emobox_published as published
from emostore.manifests.adapters.base import get_adapter
from emostore.manifests.partitions import PartitionError, make_partition
from emostore.recipe.demo_data import bundled_root


@pytest.fixture(scope="module")
def emodb_rows(full_emodb_dir):
    return [u.to_json() for u in get_adapter("emodb").build(full_emodb_dir.parent)]


def test_emobox_rule_on_real_emodb_is_the_published_five_folds(emodb_rows):
    p = make_partition("emodb", emodb_rows, "emobox")
    lists = emobox_lists.shipped("emodb")
    assert list(p.folds) == list(lists.folds) and len(p.folds) == 5
    for name, fold in p.folds.items():
        assert fold["test"] == lists.folds[name]["test"] and len(fold["test"]) == 107
        assert sorted(fold["train"] + fold["dev"]) == sorted(lists.folds[name]["train"])
    assert p.meta["rule"] == "emobox" and p.meta["seed"] == published.RECIPE_SEED
    assert p.meta["speaker_independent"] is False  # every speaker is in every fold, as published
    assert make_partition("emodb", emodb_rows, "emobox-rule").meta["speaker_independent"] is True


def test_a_subset_is_refused_with_counts_unless_allowed():
    rows = [u.to_json() for u in get_adapter("emodb").build(bundled_root())]
    with pytest.raises(PartitionError, match=r"fold1 train lacks \d+ of 428 .*; pass allow_mismatch"):
        make_partition("emodb", rows, "emobox")
    p = make_partition("emodb", rows, "emobox", allow_mismatch=True)
    assert sorted(i for f in p.folds.values() for i in f["test"]) == sorted(r["id"] for r in rows)
    assert p.meta["note"].startswith(f"{535 - 135} published ids ({5 * (535 - 135)} fold entries) are not in the manifest")


def test_unknown_corpus_and_unknown_option_name_the_alternatives(emodb_rows):
    with pytest.raises(PartitionError, match="emobox-rule"):
        make_partition("nnime", emodb_rows, "emobox")
    with pytest.raises(PartitionError, match="has no option emobox_dir .it takes none."):
        make_partition("emodb", emodb_rows, "emobox-rule", emobox_dir="x")


def test_cli_partition_emobox_with_allow_mismatch(tmp_path):
    runner = CliRunner()
    manifest = tmp_path / "m.jsonl"
    assert runner.invoke(main, ["manifest", "build", "emodb", str(bundled_root()), "--out", str(manifest)]).exit_code == 0
    out = tmp_path / "p.json"
    res = runner.invoke(main, ["partition", "emodb", str(manifest), "--rule", "emobox", "--out", str(out)])
    assert res.exit_code == 1 and "fold1 train lacks" in res.output
    res = runner.invoke(main, ["partition", "emodb", str(manifest), "--rule", "emobox", "--allow-mismatch",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["rule"] == "emobox" and len(json.loads(out.read_text())) == 5
