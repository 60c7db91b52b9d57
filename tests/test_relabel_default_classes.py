"""Relabeling defaults to the manifest corpus's class map and says how many rows have no in-class vote."""

from __future__ import annotations

import json

from emostore.labels.embed import relabel_manifest
from emostore.labels.relabeled import read_relabeling
from emostore.labels.votes import EMO_SUPERB_CLASSES, relabel_class_set
from emostore.manifests.adapters.base import get_adapter
from emostore.recipe.demo_data import bundled_root


def _emodb_rows():
    return [{**u.to_json(), "corpus": "emodb"} for u in get_adapter("emodb").build(bundled_root())]


def test_default_classes_are_the_corpus_class_map_not_emo_superbs():
    rows = _emodb_rows()
    assert relabel_class_set(rows).classes == get_adapter("emodb").class_map.classes
    assert relabel_class_set([{"id": "x", "ratings": []}]).classes == EMO_SUPERB_CLASSES
    assert relabel_class_set(rows, ["anger", "sadness"]).classes == ("anger", "sadness")


def test_embed_relabeling_of_emodb_keeps_every_row_and_warns_on_foreign_classes(tmp_path):
    manifest = tmp_path / "emodb.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in _emodb_rows()))
    meta = relabel_manifest(manifest, tmp_path / "embed.jsonl")
    assert meta["classes"] == list(get_adapter("emodb").class_map.classes)
    assert meta["counts"]["no_votes"] == 0 and "warnings" not in meta
    assert all(d is not None for d in read_relabeling(tmp_path / "embed.jsonl").by_id().values())
    # EMO-SUPERB's names (angry, sad, happy; no boredom) miss 4 of EmoDB's classes: counted, not silent
    meta = relabel_manifest(manifest, tmp_path / "es.jsonl", classes=list(EMO_SUPERB_CLASSES))
    lost = sum(r.emotion not in EMO_SUPERB_CLASSES for r in get_adapter("emodb").build(bundled_root()))
    assert meta["counts"]["no_votes"] == lost > 0
    assert meta["warnings"] == [f"{lost} of 135 rows have no vote in the classes {', '.join(EMO_SUPERB_CLASSES)}: "
                                "their distribution is null (pass --classes to match the corpus's labels)"]
