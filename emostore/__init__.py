"""emostore: run each speech encoder once, keep every layer in Zarr, do the rest from the cache.

The one entry point for a script is :func:`open_store`; the torch view is :mod:`emostore.torch`.
Importing ``emostore`` loads neither zarr nor torch: they load when a store is opened.
"""

__version__ = "0.1.0"


def open_store(path, manifest=None):
    """Open a feature store (a folder or an fsspec URL) read-only: a :class:`~emostore.store.FeatureStore`.

    ``manifest``: the manifest whose columns :meth:`~emostore.store.FeatureStore.metadata` returns
    (default: the one the store recorded at extraction, if it is still there). See docs/api.md.
    """
    from emostore.store.reader import open as _open

    return _open(path, manifest)


__all__ = ["__version__", "open_store"]
