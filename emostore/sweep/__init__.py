"""Sweeps: many training runs from one store, one results table (``emostore sweep``)."""

from emostore.sweep.results import COLUMNS, METRIC_COLUMNS, ResultsError, gather, load_results, row_from_run_dir, write_results  # noqa: F401
