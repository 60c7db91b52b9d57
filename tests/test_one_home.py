"""Every name has one home: no module re-exports what it imports; no catch-all turns a bug into a user error."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emostore"


def _unused_imports(path: Path) -> list[str]:
    """Module-level imported names the module never uses (what a re-export shim consists of)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            imported += [a.asname or a.name for a in node.names]
        elif isinstance(node, ast.Import):
            imported += [(a.asname or a.name).split(".")[0] for a in node.names]
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return [n for n in imported if n not in used]


def test_no_module_re_exports_names_it_does_not_use():
    # a package's __init__ is its public face and may gather names; any other module imports what it uses
    found = {str(p.relative_to(PACKAGE.parent)): names for p in sorted(PACKAGE.rglob("*.py"))
             if p.name != "__init__.py" and (names := _unused_imports(p))}
    assert found == {}


def test_a_corpus_without_adapter_has_no_class_map_version_but_an_adapter_bug_surfaces(monkeypatch):
    from emostore.manifests.adapters import base
    from emostore.manifests.partitions import registry

    assert registry._class_map_version("no-such-corpus") is None
    assert registry._class_map_version("emodb") == base.get_adapter("emodb").class_map.version

    def broken(name):
        raise ImportError("an adapter module failed to import")

    monkeypatch.setattr(base, "get_adapter", broken)
    with pytest.raises(ImportError, match="failed to import"):
        registry._class_map_version("emodb")


@pytest.mark.parametrize("settings, needle", [
    (dict(head={"a": 1}, fold="f1"), "setting head: expected a string"),
    (dict(preset=["emobox"], head="probe", fold="f1"), "unknown preset"),
])
def test_a_table_or_list_where_a_setting_belongs_is_a_training_error_not_a_type_error(settings, needle):
    from emostore.heads.config import TrainError, config_from

    with pytest.raises(TrainError, match=needle):
        config_from(**settings)
