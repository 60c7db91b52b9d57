"""`emostore` assembled from emostore/commands: fast top-level help, choices from the library's registries."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from emostore.cli import main


def _param(path: list[str], name: str) -> click.Parameter:
    cmd = main
    for part in path:
        cmd = cmd.commands[part]
    return next(p for p in cmd.params if p.name == name)


def test_top_level_help_imports_no_library_stack():
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from emostore.cli import main\n"
            "r = CliRunner().invoke(main, ['--help'])\n"
            "assert r.exit_code == 0 and 'extract' in r.output and 'sweep' in r.output, r.output\n"
            "print(sorted(m for m in ('torch', 'numpy', 'zarr', 'pandas', 'emostore.heads.heads', 'emostore.store')"
            " if m in sys.modules))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert p.stdout.strip() == "[]"


def test_every_group_is_assembled():
    assert set(main.commands) == {
        "recipe", "extract", "encoders", "store", "manifest", "partition", "labels", "relabel", "train", "sweep", "evaluate",
        "leaderboard", "crossrule", "layers", "report", "compare", "lab", "catalog"}
    assert set(main.commands["store"].commands) == {"info", "verify", "export", "import"}
    assert set(main.commands["lab"].commands) == {"extract", "matrix"}


@pytest.mark.parametrize("path, name, module, attr", [
    (["train"], "head", "emostore.heads.heads", "HEADS"),
    (["sweep"], "heads", "emostore.heads.heads", "HEADS"),
    (["train"], "preset", "emostore.heads.config", "PRESETS"),
    (["labels", "aggregate"], "rule", "emostore.labels.aggregate", "RULES"),
    (["partition"], "rule", "emostore.manifests.partitions", "RULES"),
])
def test_choices_come_from_the_registries(path, name, module, attr):
    import importlib

    registry = getattr(importlib.import_module(module), attr)
    assert _param(path, name).type.choices == tuple(registry)


def test_a_name_not_in_the_registry_is_a_usage_error_listing_the_known_ones(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text("")
    r = CliRunner().invoke(main, ["labels", "aggregate", str(f), "--rule", "majority", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "'majority' is not one of 'mr', 'pr', 'ar'" in r.output


def test_encoders_prints_each_backends_form_what_it_takes_and_an_example():
    import re

    from click.testing import CliRunner

    from emostore.cli import main
    from emostore.extract.encoders import available, load_encoder

    res = CliRunner().invoke(main, ["encoders"])
    assert res.exit_code == 0, res.output
    for form in ("ct2-whisper[:DIR]", "fbank", "hf:DIR", "s3prl:NAME[:CKPT]"):
        assert re.search(rf"^{re.escape(form)}$", res.output, re.M), form
    examples = re.findall(r"^    e\.g\. --encoder (\S+)$", res.output, re.M)
    assert sorted(e.split(":")[0] for e in examples) == available()  # one example per backend
    assert load_encoder("fbank").name == "fbank"  # the example that needs no files works as printed
