"""Named aggregation settings (no numpy here: the CLI reads them to build its --help).

``SMOOTHING_CONVENTIONS``: the two label-smoothing formulas :func:`emostore.labels.aggregate.smooth`
knows. ``PRESETS``: option sets for ``labels aggregate --preset``, i.e. what a benchmark's published
targets are made of.
"""

SMOOTHING_CONVENTIONS = ("uniform", "emo-superb")

PRESETS: dict[str, dict] = {
    # EMO-SUPERB's labels_consensus files: vote shares (AR), smoothed 0.05 in its own convention
    # t(1 - xC/(C-1)) + x/(C-1), test positives = share > 1/C.
    "emo-superb": {"rule": "ar", "smoothing": 0.05, "smoothing_convention": "emo-superb", "test": "share"},
}
