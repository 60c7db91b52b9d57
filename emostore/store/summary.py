"""What ``emostore store info`` shows: a store's summary as a dict (JSON-ready) and as text."""

from __future__ import annotations

from emostore.store.reader import FeatureStore

MAX_ERRORS_SHOWN = 20


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def summarise(fs: FeatureStore, path: str | None = None) -> dict:
    """Corpus, encoder, N, L, D, frames, bytes on disk and error count of ``fs`` (``path``: as the user named it)."""
    a = fs.attrs
    return {
        "path": str(fs.path) if path is None else path, "format_version": a["format_version"],
        "corpus": a.get("corpus"), "encoder": a["encoder"]["name"], "backend": a["encoder"]["backend"],
        "weights_sha256": a["encoder"].get("weights_sha256"),
        "utterances": len(fs), "done": int(fs.done.sum()), "errors": len(fs.errors),
        "layers": fs.layers, "L": fs.num_layers, "D": fs.dim, "frame_rate": a["frame_rate"],
        "padding": a["padding"], "frames": fs.has_frames, "frames_dtype": a.get("frames_dtype"),
        "total_frames": int(fs.num_frames[fs.done].sum()), "bytes_on_disk": fs.nbytes_stored(),
        "audio": a["audio"],
    }


def format_summary(summary: dict, errors: list[dict]) -> str:
    """The summary as aligned lines, then the first :data:`MAX_ERRORS_SHOWN` of the store's ``errors``."""
    s = summary
    frames = f"{s['total_frames']} stored as {s['frames_dtype']}" if s["frames"] else "not stored"
    lines = [
        f"{s['path']}  (emostore store format {s['format_version']})",
        f"  corpus     {s['corpus']}",
        f"  encoder    {s['encoder']} [{s['backend']}], padding {s['padding']}",
        f"  utterances {s['utterances']} ({s['done']} done, {s['errors']} errors)",
        f"  layers     L = {s['L']} {s['layers']}, D = {s['D']}, {s['frame_rate']:g} frames/s",
        f"  frames     {frames}",
        f"  audio      {s['audio']['sample_rate']} Hz, normalise {s['audio']['normalise']}",
        f"  on disk    {format_bytes(s['bytes_on_disk'])}",
    ]
    lines += [f"  error      {e['id']}: {e['reason']}" for e in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "\n".join(lines)
