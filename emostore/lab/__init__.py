"""A lab: feature stores laid out by (corpus, encoder), with a catalog of what exists.

Layout (a local folder or an fsspec URL)::

    LAB/<corpus>/manifest.jsonl      the manifest every store of that corpus was extracted from
    LAB/<corpus>/<encoder>.zarr      one store per encoder

:mod:`layout` names the paths, :mod:`plan` extracts every (corpus, encoder) pair of a plan into
them, :mod:`catalog` lists what a lab holds. Sweeps and cross-corpus runs name stores by
(corpus, encoder) in a lab instead of paths.
"""
