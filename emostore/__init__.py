"""emostore: run each speech encoder once, keep every layer in Zarr, do the rest from the cache."""

__version__ = "0.1.0"
