"""One sha256 helper and one versions helper (emostore.provenance), checked against hashlib and the libraries."""

from __future__ import annotations

import hashlib
import platform

import numpy as np

from emostore import __version__
from emostore.provenance import file_sha256, files_sha256, library_versions


def test_file_sha256_is_hashlib_over_the_bytes(tmp_path):
    data = np.random.default_rng(0).bytes((1 << 22) + 123)  # more than one read chunk
    f = tmp_path / "w.bin"
    f.write_bytes(data)
    assert file_sha256(f) == hashlib.sha256(data).hexdigest()


def test_files_sha256_hashes_names_then_bytes_in_name_order(tmp_path):
    (tmp_path / "b.bin").write_bytes(b"second")
    (tmp_path / "a.bin").write_bytes(b"first")
    want = hashlib.sha256(b"a.bin" + b"first" + b"b.bin" + b"second").hexdigest()
    assert files_sha256([tmp_path / "b.bin", tmp_path / "a.bin"]) == want  # the stores' weights_sha256 recipe
    assert files_sha256([str(tmp_path / "a.bin"), tmp_path / "b.bin"]) == want


def test_library_versions_in_the_order_asked():
    v = library_versions("emostore", "numpy", "python")
    assert list(v) == ["emostore", "numpy", "python"]
    assert v == {"emostore": __version__, "numpy": np.__version__, "python": platform.python_version()}
