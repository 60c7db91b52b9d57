"""Figures that cannot mislead: heat maps on a scale from 0, overplotted probe curves kept apart,
legends by settings (never run ids), and the layer files written once for the CLI and the report."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.image import imread

from emostore.analysis import plots


def _share_of_colour(png, rgb, tol=0.03) -> float:
    img = imread(png)[..., :3]
    return float(np.mean(np.all(np.abs(img - np.asarray(rgb)[None, None, :]) < tol, axis=-1)))


def test_layer_heatmap_colour_scale_starts_at_zero(tmp_path):
    m = pd.DataFrame([[0.16, 0.17, 0.18, 0.27, 0.22]], index=["whisper-tiny.en"], columns=range(5))
    png, _ = plots.layer_heatmap(m, tmp_path / "heat")
    viridis = colormaps["viridis"]
    # the 0.16 cell (a fifth of the axes) has the colour of 0.16 / 0.27 on a 0-based scale ...
    assert _share_of_colour(png, viridis(0.16 / 0.27)[:3]) > 0.08
    # ... not the darkest colour, which a scale starting at the minimum gives it (colour bar only)
    assert _share_of_colour(png, viridis(0.0)[:3]) < 0.01


def test_equal_probe_curves_stay_visible_side_by_side(tmp_path):
    rows = [{"encoder": "whisper-tiny.en", "corpus": "emodb", "rule": rule, "layer": layer, "value": 0.3 + 0.1 * layer,
             "ci_low": np.nan, "ci_high": np.nan} for rule in ("mr", "pr", "ar") for layer in range(5)]
    curves = pd.DataFrame(rows)
    curves.attrs["metric"] = "ua"
    png, _ = plots.probe_curves_plot(curves, tmp_path / "probe")
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][:3]
    for c in colours:  # every curve's own colour shows (drawn over each other, only the last one would)
        assert _share_of_colour(png, matplotlib.colors.to_rgb(c), tol=0.05) > 0.002, c
    assert plots.dodge(0, 1) == 0.0 and plots.dodge(0, 3) == -plots.dodge(2, 3) != 0.0


def test_learning_curve_legend_names_settings_not_run_ids(tmp_path):
    ids = [f"fbank-weighted-sum-lr0.001-fold{k}-s0-3f9a2c1b7e" for k in (1, 2)]
    rows = [{"run_id": r, "fold": f"fold{k}", "seed": 0, "epoch": e, "train_loss": 1.0 / e, "dev_loss": 1.2 / e,
             "selected": e == 3} for k, r in enumerate(ids, 1) for e in range(1, 4)]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as <text>, so the legend can be read
        _, svg = plots.learning_curves_plot(pd.DataFrame(rows), tmp_path / "lc")
    text = svg.read_text()
    assert "fold1" in text and "fold2" in text and "train (dashed)" in text
    assert not any(r in text for r in ids)
    assert plots.run_labels(pd.DataFrame(rows).assign(seed=[0, 0, 0, 1, 1, 1])) == {ids[0]: "fold1 seed 0",
                                                                                    ids[1]: "fold2 seed 1"}
