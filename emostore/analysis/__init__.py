"""Analysis of a sweep's results table: leaderboards, cross-rule matrices, layer analysis, figures, reports.

Python API (every function takes the results table as a sweep directory, its ``results.sqlite`` or
a DataFrame, and returns a pandas DataFrame)::

    from emostore import analysis

    board = analysis.leaderboard("sweep/", metric="macro_f1")   # encoders × corpora, Average, Rank (complete rows)
    print(analysis.format_leaderboard(board, "md"))              # or "csv", "html"
    cross = analysis.crossrule("sweep/")                        # train rule × test rule, 95% CIs (long form)
    analysis.matrices(cross)                                     # [(identity, train × test DataFrame)]
    w = analysis.layer_weights("sweep/")                         # weighted-sum weights per layer
    analysis.layer_weight_matrix(w)                              # heat-map data: model × layer
    curves = analysis.probe_curves("sweep/")                     # probe metric per layer with CIs
    analysis.compare_predictions("a.jsonl", "b.jsonl", "labels.jsonl", partition="p.json", fold="fold1")
    analysis.write_report("sweep/", "report/")                  # index.html + tables + figures

Model selection is always on dev loss (:func:`select_best`), never on test scores. Modules:
:mod:`~emostore.analysis.runs` (the table, settings, selection), :mod:`~emostore.analysis.scoring`
(fold-averaged scores with bootstrap CIs), :mod:`~emostore.analysis.leaderboard`,
:mod:`~emostore.analysis.crossrule`, :mod:`~emostore.analysis.layers`, :mod:`~emostore.analysis.compare`,
:mod:`~emostore.analysis.plots`, :mod:`~emostore.analysis.report`. Details: docs/analysis.md.
"""

from emostore.analysis.compare import compare_predictions
from emostore.analysis.crossrule import crossrule, format_crossrule, label_sets, matrices
from emostore.analysis.layers import layer_weight_matrix, layer_weights, probe_curves
from emostore.analysis.leaderboard import (
    board_from_cells, format_leaderboard, format_leaderboards, leaderboard, leaderboard_cells,
)
from emostore.analysis.report import write_report
from emostore.analysis.runs import (
    AnalysisError,
    NoData,
    done_runs,
    failed_runs,
    learning_curves,
    load_runs,
    select_best,
)
from emostore.analysis.scoring import confusion_matrix, evaluate_run, fold_mean

__all__ = [
    "AnalysisError", "NoData", "board_from_cells", "compare_predictions", "confusion_matrix", "crossrule",
    "done_runs", "evaluate_run", "failed_runs", "fold_mean", "format_crossrule", "format_leaderboard",
    "format_leaderboards",
    "label_sets", "layer_weight_matrix", "layer_weights", "leaderboard", "leaderboard_cells", "learning_curves",
    "load_runs", "matrices", "probe_curves", "select_best", "write_report",
]

