"""Downstream heads and their training from a feature store (no encoder runs here).

Import names from the module that defines them (:mod:`~emostore.heads.heads`,
:mod:`~emostore.heads.train`...); this package imports nothing, so reading
:mod:`~emostore.heads.names` or :mod:`~emostore.heads.config` costs no torch import.
"""
