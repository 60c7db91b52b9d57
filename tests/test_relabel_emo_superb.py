"""EMO-SUPERB's published GPT-4 relabeling: `relabel import emo-superb`, and the offline relabeler's
calibrated map fitted on it, on the real files (../shared/data/emo-superb-chatgpt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EMO_SUPERB_CHATGPT
from emostore.cli import main
from emostore.labels import calibrate
from emostore.labels.embed import EmbedRelabeler, SentenceEncoder, relabel_manifest
from emostore.labels.votes import EMO_SUPERB_CLASSES
from emostore.labels.emo_superb_chatgpt import read_pair
from emostore.labels.relabeled import RelabelingError, read_relabeling
from emostore.labels.votes import ClassSet, count_votes
from emostore.provenance import file_sha256

DATA = EMO_SUPERB_CHATGPT
INPUT, OUTPUT = DATA / "input_train.csv", DATA / "output_train.csv"


@pytest.fixture(scope="module")
def pair(emo_superb_chatgpt_dir):
    return read_pair(INPUT, OUTPUT)


def test_relabel_import_emo_superb(tmp_path, emo_superb_chatgpt_dir):
    gpt, ref = tmp_path / "gpt4.jsonl", tmp_path / "ref.jsonl"
    res = CliRunner().invoke(main, ["relabel", "import", "emo-superb", str(OUTPUT), "--input", str(INPUT),
                                    "--reference-out", str(ref), "--out", str(gpt)])
    assert res.exit_code == 0, res.output
    a, b = read_relabeling(ref), read_relabeling(gpt)
    assert len(a) == len(b) == 28750 and b.classes == EMO_SUPERB_CLASSES
    assert b.ids[0] == "MSP-PODCAST_0001_0028" and b.distributions[0].tolist() == [0, 0, 0, 0, 0, 0.7, 0, 0.3]
    assert b.reasons[0] == "Interest suggests a positive emotion, increasing 'happy'." and b.sources[0] == "llm"
    assert a.distributions[0].tolist() == [0, 0, 0, 0, 0, 1.0, 0, 0] and a.sources[0] == "reference"
    assert b.meta["counts"] == {"rows": 28750, "renormalised": 319}
    assert b.meta["source"]["sha256"] == file_sha256(OUTPUT)
    res = CliRunner().invoke(main, ["relabel", "compare", str(ref), str(gpt), "--json"])
    report = json.loads(res.output)
    assert report["js_mean"] == pytest.approx(0.0724, abs=1e-4) and report["argmax_changed"] == pytest.approx(0.1993, abs=1e-4)
    res = CliRunner().invoke(main, ["relabel", "import", "emo-superb", str(INPUT), "--out", str(tmp_path / "x.jsonl")])
    assert res.exit_code != 0 and "expected the header" in res.output and "Traceback" not in res.output


def test_shipped_calibration_provenance_and_held_out_figures(pair):
    """The shipped map was fitted on these files, and its held-out figures are what it scores here."""
    inp, gpt = pair
    cal = calibrate.load()
    assert cal.classes == EMO_SUPERB_CLASSES and cal.prototypes.shape == (8, 384)
    assert len(cal.members) == cal.info["hyperparameters"]["members"]
    assert cal.info["fitted_on"]["input"]["sha256"] == file_sha256(INPUT)
    assert cal.info["fitted_on"]["output"]["sha256"] == file_sha256(OUTPUT)
    held = calibrate.held_out(inp.ids)
    assert held.sum() == cal.info["split"]["held_out_rows"] and (~held).sum() == cal.info["split"]["fitted_rows"]
    fitted_podcasts = {calibrate.podcast_of(i) for i, h in zip(inp.ids, held) if not h}
    assert not fitted_podcasts & {calibrate.podcast_of(i) for i, h in zip(inp.ids, held) if h}
    descs = [d for d, h in zip(inp.descriptions(), held) if h]
    per_row = calibrate.embed_rows(descs, SentenceEncoder().encode)
    pred = cal.predict(inp.distributions[held], per_row)
    ours = calibrate.figures(pred, gpt.distributions[held])
    ref = calibrate.figures(inp.distributions[held], gpt.distributions[held])
    assert ours == pytest.approx(cal.info["held_out"]["calibrated"], abs=2e-5)
    assert ref == cal.info["held_out"]["reference"]
    assert ours["js_mean_bits"] < ref["js_mean_bits"] and ours["argmax_agreement"] > ref["argmax_agreement"]
    # better than the linear gate it replaced (format 1: 0.06129 bits, 80.912 %); the goal, half
    # the reference's JSD (0.0360), is not met (GPT-4's own noise: docs/labels.md)
    assert ours["js_mean_bits"] < 0.0612 and ours["argmax_agreement"] > 0.8092
    assert cal.info["held_out"]["prototype_blend_w0.25_T0.05"]["js_mean_bits"] > ref["js_mean_bits"]


def _rows():
    return [{"id": "a", "ratings": ["neutral", "neutral", "happy"], "raters": ["r0", "r1", "r2"],
             "description": ["Concerned", "Interest"]},
            {"id": "b", "ratings": ["angry"], "raters": ["r0"], "description": ["furious, yelling"]},
            {"id": "c", "ratings": ["sad", "fear"], "raters": ["r0", "r1"], "description": []}]


def test_relabel_embed_uses_the_calibrated_map(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    cal, enc = calibrate.load(), SentenceEncoder(batch_size=8)
    cs = ClassSet(EMO_SUPERB_CLASSES)
    meta = relabel_manifest(m, tmp_path / "out.jsonl")
    assert meta["method"] == "calibrated" and meta["calibration"]["held_out"] == cal.info["held_out"]
    out = read_relabeling(tmp_path / "out.jsonl")
    for row, got, src in zip(_rows(), out.distributions, out.sources):
        ref = count_votes(row, cs).shares()
        if not row["description"]:
            assert src == "reference" and np.array_equal(got, ref)
            continue
        want = cal.predict(ref[None], [np.asarray(enc.encode(row["description"]), np.float64)])[0]
        assert src == "embed" and np.allclose(got, want / want.sum(), atol=1e-12)
    # another class order: the same distributions, reordered
    order = list(reversed(EMO_SUPERB_CLASSES))
    relabel_manifest(m, tmp_path / "rev.jsonl", classes=order)
    rev = read_relabeling(tmp_path / "rev.jsonl")
    assert np.allclose(rev.distributions[:, ::-1], out.distributions, atol=1e-12)
    # other classes: auto falls back to prototypes; calibrated is refused
    assert relabel_manifest(m, tmp_path / "p.jsonl", classes=["angry", "neutral", "happy"])["method"] == "prototypes"
    with pytest.raises(RelabelingError, match="calibrated map is for the classes"):
        EmbedRelabeler(ClassSet(("angry", "neutral", "happy")), enc, calibration=cal)
    res = CliRunner().invoke(main, ["relabel", "embed", str(m), "--method", "prototypes", "--out", str(tmp_path / "q.jsonl")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "q.meta.json").read_text())["method"] == "prototypes"
