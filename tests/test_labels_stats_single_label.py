"""`labels stats` on a corpus with one label per clip says so instead of printing 0 % losses."""

from __future__ import annotations

import json

from click.testing import CliRunner

from emostore.cli import main
from emostore.recipe.demo_data import bundled_root


def test_stats_on_a_single_label_corpus_says_it_has_no_per_rater_ratings(tmp_path):
    runner = CliRunner()
    manifest = tmp_path / "emodb.jsonl"
    assert runner.invoke(main, ["manifest", "build", "emodb", str(bundled_root()), "--out", str(manifest)]).exit_code == 0
    res = runner.invoke(main, ["labels", "stats", str(manifest)])
    assert res.exit_code == 0, res.output
    assert "no per-rater ratings: each of the 135 utterances has at most one label" in res.output
    assert "paper avg" not in res.output
    res = runner.invoke(main, ["labels", "stats", str(manifest), "--json"])
    assert all(r["most_ratings"] == 1 for r in json.loads(res.output)["rules"].values())
