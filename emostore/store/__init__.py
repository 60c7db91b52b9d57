"""The Zarr feature store: layout, writer, reader, verify, HDF5 export/import."""

from emostore.store.hdf5 import export_hdf5, import_hdf5
from emostore.store.layout import FORMAT_VERSION
from emostore.store.reader import FeatureStore, open
from emostore.store.verify import verify
from emostore.store.writer import StoreError

__all__ = ["FORMAT_VERSION", "FeatureStore", "StoreError", "export_hdf5", "import_hdf5", "open", "verify"]
