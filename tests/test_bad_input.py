"""Bad input files: one clear line naming the file, the line and the problem; nothing dropped silently."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from emostore.cli import main
from emostore.evaluate import evaluate_files, format_evaluation
from emostore.labels.aggregate import LabelRecord, aggregate_manifest, read_label_set, write_label_set
from emostore.labels.votes import ClassSet
from emostore.manifests import ManifestError, load_manifest
from emostore.manifests.adapters.base import get_adapter


def test_csv_saved_by_excel_with_a_bom_reads_like_one_without(tmp_path):
    body = "id,audio,emotion\r\na1,a1.wav,anger\r\nb2,b2.wav,sadness\r\n"
    (tmp_path / "plain.csv").write_bytes(body.encode("utf-8"))
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    plain, excel = load_manifest(tmp_path / "plain.csv"), load_manifest(tmp_path / "excel.csv")
    assert excel.ids == ["a1", "b2"] and excel.rows == plain.rows and excel.sha256 == plain.sha256


@pytest.mark.parametrize("row, fields", [("c3,c3.wav,anger,loud", 4), ("c3,c3.wav", 2)])
def test_csv_row_with_a_field_too_many_or_too_few_names_the_row_and_the_count(tmp_path, row, fields):
    path = tmp_path / "m.csv"
    path.write_text(f"id,audio,emotion\na1,a1.wav,anger\nb2,b2.wav,sadness\n{row}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"m\.csv:4: row 3 has {fields} fields, the header 3"):
        load_manifest(path)
    r = CliRunner().invoke(main, ["labels", "aggregate", str(path), "--rule", "mr", "--out", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 1 and "Traceback" not in r.output and f"row 3 has {fields} fields" in r.output


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_a_byte_that_is_not_utf8_names_the_file_and_the_line(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        text = b"id,audio\na1,a1.wav\nb2,b\xe9.wav\n"  # Latin-1 'e acute'
    else:
        text = b'{"id": "a1", "audio": "a1.wav"}\n{"id": "b2", "audio": "b\xe9.wav"}\n'
    path.write_bytes(text)
    line = 3 if name.endswith(".csv") else 2
    with pytest.raises(ManifestError, match=rf"{name}:{line}: not UTF-8 \(byte 0xe9 at column \d+\)"):
        load_manifest(path)


def _ratings_manifest(tmp_path):
    rows = [{"id": "u1", "corpus": "crema-d", "ratings": ["Anger", "zzz_unknown"]},
            {"id": "u2", "corpus": "crema-d", "ratings": ["A", "S", "zzz_unknown", "Furious"]},
            {"id": "u3", "corpus": "crema-d", "ratings": ["N", "N"]}]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ratings_outside_the_class_map_are_counted_per_value_and_reported(tmp_path):
    path = _ratings_manifest(tmp_path)
    records, meta = aggregate_manifest(path, "ar")
    assert meta["unknown_labels"] == {"zzz_unknown": 2, "Furious": 1}
    out = tmp_path / "ar.jsonl"
    r = CliRunner().invoke(main, ["labels", "aggregate", str(path), "--rule", "ar", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert ("warning: 3 ratings match no class or known label ('zzz_unknown' x2, 'Furious' x1); "
            "they count as 'other'" in r.stderr)
    assert read_label_set(out)[1]["unknown_labels"] == {"zzz_unknown": 2, "Furious": 1}
    r = CliRunner().invoke(main, ["labels", "aggregate", str(path), "--rule", "ar", "--strict",
                                  "--out", str(tmp_path / "strict.jsonl")])
    assert r.exit_code == 1 and "'zzz_unknown' x2" in r.output and "drop --strict" in r.output
    assert not (tmp_path / "strict.jsonl").exists()


def test_known_other_labels_and_deliberately_left_out_classes_are_not_unknown():
    crema = ClassSet(("angry", "sad"), get_adapter("crema-d").class_map)
    assert not crema.is_unknown("H") and not crema.is_unknown("happy")  # a class of the map, left out of C
    assert crema.is_unknown("zzz_unknown")
    raw = ClassSet(("a", "b"))
    assert not raw.is_unknown("Other") and not raw.is_unknown(" A ") and raw.is_unknown("c")


def test_evaluate_says_once_how_many_prediction_rows_were_renormalised(tmp_path):
    labels = tmp_path / "l.jsonl"
    write_label_set(labels, [LabelRecord(f"u{i}", [1.0, 0.0], [1, 0]) for i in range(4)],
                    {"classes": ["a", "b"], "rule": "mr"})
    probs = [[0.9, 0.1], [0.8, 0.2], [1.8, 0.2], [0.3, 0.3]]  # the last two do not sum to 1
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": f"u{i}", "probs": p}) + "\n" for i, p in enumerate(probs)))
    ev = evaluate_files(pred, labels, n_boot=0)
    assert ev.renormalised == 2 and ev.to_json()["renormalised"] == 2
    table = format_evaluation(ev)
    assert table.count("renormalised") == 1
    assert "2 prediction rows did not sum to 1 (by more than 0.001) and were renormalised" in table
    pred.write_text("".join(json.dumps({"id": f"u{i}", "probs": [0.5, 0.5]}) + "\n" for i in range(4)))
    assert "renormalised" not in format_evaluation(evaluate_files(pred, labels, n_boot=0))
