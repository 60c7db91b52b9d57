"""The CLI's error policy: a user's mistake is one line, a bug keeps its traceback and asks for a report."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

import emostore
from emostore.cli import main
from emostore.errors import EmostoreError


def test_user_error_is_one_line_exit_1():
    result = CliRunner().invoke(main, ["manifest", "classes", "no-such-corpus"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no-such-corpus" in lines[0]


@pytest.mark.parametrize("bug", [ValueError("bad shape"), KeyError("missing key")])
def test_library_bug_keeps_its_exception_and_asks_for_a_report(monkeypatch, bug):
    import emostore.manifests.adapters.base as base

    def broken(name):
        raise bug

    monkeypatch.setattr(base, "get_adapter", broken)
    result = CliRunner().invoke(main, ["manifest", "classes", "emodb"])
    assert result.exception is bug  # not turned into a one-line message
    assert any(f"bug in emostore {emostore.__version__}" in n for n in bug.__notes__)


def test_bug_prints_traceback_then_the_report_line():
    code = ("import emostore.manifests.adapters.base as b\n"
            "def broken(name): raise KeyError('missing key')\n"
            "b.get_adapter = broken\n"
            "from emostore.cli import main\n"
            "main(['manifest', 'classes', 'emodb'], prog_name='emostore')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert p.stderr.startswith("Traceback") and "KeyError: 'missing key'" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("this is a bug in emostore")


def test_store_unknown_utterance_is_a_user_error_and_a_key_error():
    from emostore.store.reader import UnknownUtterance

    exc = UnknownUtterance("x.zarr: no utterance 'u9'")
    assert isinstance(exc, EmostoreError) and isinstance(exc, KeyError)
    assert str(exc) == "x.zarr: no utterance 'u9'"  # not quoted the way KeyError prints


def _package_errors():
    found = {}
    for info in pkgutil.walk_packages(emostore.__path__, "emostore."):
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_package_error_derives_from_emostore_error():
    errors = _package_errors()
    assert "emostore.store.writer.StoreError" in errors and "emostore.extract.audio.AudioError" in errors
    # control flow inside the LLM runner, never raised out of it
    internal = {"emostore.labels.llm.transport.Fatal", "emostore.labels.llm.transport.GaveUp"}
    stray = sorted(k for k, cls in errors.items()
                   if k not in internal and not issubclass(cls, EmostoreError))
    assert stray == []
