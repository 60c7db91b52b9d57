"""`emostore store info`'s presentation, done by the library (emostore.store.summary)."""

from __future__ import annotations

from emostore.store.summary import MAX_ERRORS_SHOWN, format_bytes, format_summary


def _summary(**kw):
    s = {"path": "c.zarr", "format_version": 1, "corpus": "emodb", "encoder": "fbank", "backend": "fbank",
         "weights_sha256": None, "utterances": 30, "done": 5, "errors": 25, "layers": [0], "L": 1, "D": 80,
         "frame_rate": 100.0, "padding": "none", "frames": True, "frames_dtype": "float16", "total_frames": 1000,
         "bytes_on_disk": 3 * 1024 ** 2, "audio": {"sample_rate": 16000, "normalise": "none"}}
    return s | kw


def test_format_bytes_uses_binary_units():
    assert [format_bytes(n) for n in (0, 1023, 1536, 3 * 1024 ** 3, 1024 ** 6)] == [
        "0.0 B", "1023.0 B", "1.5 KiB", "3.0 GiB", "1024.0 PiB"]


def test_summary_text_shows_counts_and_only_the_first_errors():
    errors = [{"id": f"u{i}", "reason": "empty audio"} for i in range(25)]
    lines = format_summary(_summary(), errors).splitlines()
    assert lines[0] == "c.zarr  (emostore store format 1)"
    assert "  utterances 30 (5 done, 25 errors)" in lines
    assert "  layers     L = 1 [0], D = 80, 100 frames/s" in lines
    assert "  frames     1000 stored as float16" in lines and "  on disk    3.0 MiB" in lines
    assert sum(line.startswith("  error      ") for line in lines) == MAX_ERRORS_SHOWN == 20
    assert lines[-1] == "  ... and 5 more errors"


def test_summary_text_without_frames():
    lines = format_summary(_summary(frames=False, errors=0), []).splitlines()
    assert "  frames     not stored" in lines and not any("error  " in line for line in lines)
