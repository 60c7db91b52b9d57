"""The layer analysis's tables and figures, computed and written in one place.

``emostore layers`` and the HTML report both show the learned layer weights and the per-layer
probe curves. They once computed and drew them separately and drifted apart (the command's heat
map kept single-layer encoders, the report's dropped them); both now call
:func:`layer_analysis` and :func:`write_layer_files`. One behaviour for single-layer encoders
(FBANK): their weight is 1 by construction, so they stay in ``layers.csv`` but get no bar chart
and no heat-map row, with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emostore.analysis import plots
from emostore.analysis.layers import layer_weight_matrix, layer_weights, probe_curves
from emostore.analysis.runs import NoData

TABLES = ("layers.csv", "layer_matrix.csv", "probes.csv")


@dataclass
class LayerAnalysis:
    """Tables of the layer analysis (None where the runs have none) and notes on what is left out."""

    weights: pd.DataFrame | None = None  # every encoder, single-layer ones included
    matrix: pd.DataFrame | None = None  # heat-map data: encoders with two or more layers
    probes: pd.DataFrame | None = None
    single: list[str] = field(default_factory=list)  # single-layer encoders (no figure, no heat-map row)
    notes: list[str] = field(default_factory=list)  # why a part is absent, single-layer encoders
    figures: dict[str, list[Path]] = field(default_factory=dict)  # filled by write_layer_files
    tables: dict[str, Path] = field(default_factory=dict)

    def table_texts(self) -> dict[str, str]:
        """CSV text of each table present, by file name."""
        out = {}
        if self.weights is not None:
            out["layers.csv"] = self.weights.to_csv(index=False)
        if self.matrix is not None:
            out["layer_matrix.csv"] = self.matrix.to_csv()
        if self.probes is not None:
            out["probes.csv"] = self.probes.to_csv(index=False)
        return out


def layer_analysis(results, metric: str, n_boot: int = 1000, seed: int = 0) -> LayerAnalysis:
    """Layer weights, their heat-map matrix and probe curves of ``results``; raises :class:`NoData`
    when the runs have neither weighted-sum nor probe runs."""
    la = LayerAnalysis()
    try:
        la.weights = layer_weights(results)
    except NoData as exc:
        la.notes.append(str(exc))
    else:
        layers = la.weights.groupby("encoder", sort=True)["layer"].nunique()
        la.single = [str(e) for e, n in layers.items() if n < 2]
        multi = la.weights[~la.weights["encoder"].astype(str).isin(la.single)]
        la.matrix = layer_weight_matrix(multi) if len(multi) else None
        if la.single:
            la.notes.append(f"{', '.join(la.single)}: a single layer, whose weight is 1 by construction; "
                            "no layer-weight figure or heat-map row")
    try:
        la.probes = probe_curves(results, metric, n_boot=n_boot, seed=seed)
    except NoData as exc:
        la.notes.append(str(exc))
    if la.weights is None and la.probes is None:
        raise NoData("; ".join(la.notes))
    return la


def write_layer_files(la: LayerAnalysis, tables_dir: str | Path, figures_dir: str | Path) -> LayerAnalysis:
    """Write ``la``'s tables (CSV) to ``tables_dir`` and its figures (PNG + SVG) to ``figures_dir``."""
    tables_dir, figures_dir = Path(tables_dir), Path(figures_dir)
    from emostore.outputs import ensure_folder, write_text

    ensure_folder(tables_dir)
    for name, text in la.table_texts().items():
        write_text(tables_dir / name, text)
        la.tables[name] = tables_dir / name
    if la.weights is not None:
        figures, _ = plots.layer_weights_plots(la.weights, figures_dir / "layer-weights")
        la.figures.update({f"layer-weights-{enc}": paths for enc, paths in figures.items()})
    if la.matrix is not None:
        la.figures["layer-heatmap"] = plots.layer_heatmap(la.matrix, figures_dir / "layer-heatmap")
    if la.probes is not None:
        la.figures["probe-curves"] = plots.probe_curves_plot(la.probes, figures_dir / "probe-curves")
    return la
