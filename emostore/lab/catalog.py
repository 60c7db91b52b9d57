"""What a lab holds: one entry per (corpus, encoder) store, read from the stores themselves.

Status: ``complete`` (every row done), ``partial`` (rows still to extract, or creation
interrupted: re-running the plan resumes it), ``failed`` (nothing left to try, but some clips failed:
the store is usable without them; ``emostore store info`` lists why). ``fingerprint`` is a short
hash of the store's extraction fingerprint without its manifest: equal for two corpora extracted
with the same encoder, layers, audio policy and frame settings (what a cross-corpus pair needs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np

from emostore.lab.layout import STORE_SUFFIX, LabError
from emostore.store import layout, urls

COLUMNS = ("corpus", "encoder", "rows", "done", "failed", "bytes", "status", "layers", "fingerprint", "when")


def pairs(lab: str) -> list[tuple[str, str]]:
    """(corpus, encoder) of every store folder in ``lab``, sorted; folders starting with '.' or '_' are not corpora."""
    fs, root = urls.filesystem(urls.normalise(lab))
    if not fs.isdir(root):
        raise LabError(f"{lab}: no such lab (a folder or fsspec URL holding <corpus>/<encoder>.zarr)")
    out = []
    for cdir in fs.ls(root, detail=True):
        cname = cdir["name"].rstrip("/").rsplit("/", 1)[-1]
        if cdir["type"] != "directory" or cname.startswith((".", "_")):
            continue
        for sdir in fs.ls(cdir["name"], detail=True):
            sname = sdir["name"].rstrip("/").rsplit("/", 1)[-1]
            if sdir["type"] == "directory" and sname.endswith(STORE_SUFFIX):
                out.append((cname, sname[: -len(STORE_SUFFIX)]))
    return sorted(out)


def extraction_fingerprint(fingerprint: dict) -> str:
    """Short hash of a store fingerprint less its manifest (module docstring)."""
    key = {k: v for k, v in fingerprint.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _modified(path: str) -> str | None:
    """ISO time (UTC) of the newest object under the store's ``done`` node, where the filesystem says."""
    fs, root = urls.filesystem(path)
    try:
        infos = fs.find(f"{root}/{layout.DONE}", detail=True).values()
    except (OSError, ValueError):
        return None
    stamps = []
    for info in infos:
        t = info.get("mtime") or info.get("LastModified") or info.get("created")
        if isinstance(t, dt.datetime):
            t = t.timestamp()
        if isinstance(t, (int, float)):
            stamps.append(float(t))
    if not stamps:
        return None
    return dt.datetime.fromtimestamp(max(stamps), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(lab: str, corpus: str, encoder: str) -> dict:
    """The catalog entry of one store (see COLUMNS)."""
    import zarr

    from emostore.lab.layout import store_path

    path = store_path(lab, corpus, encoder)
    out = dict.fromkeys(COLUMNS)
    out.update(corpus=corpus, encoder=encoder, path=path, status="partial", bytes=urls.nbytes(path))
    try:
        g = zarr.open_group(path, mode="r")
        attrs = dict(g.attrs)
        done = np.asarray(g[layout.DONE][:], dtype=bool)
        errors = g[layout.ERRORS].attrs.get("entries", [])
    except Exception:  # noqa: BLE001 - a store whose creation was interrupted: nodes missing or half-written
        return out
    failed = {e["index"] for e in errors if not done[e["index"]]}
    out.update(rows=int(done.size), done=int(done.sum()), failed=len(failed), layers=attrs.get("layers"),
               fingerprint=extraction_fingerprint(attrs.get("fingerprint") or {}), when=_modified(path),
               encoder_name=(attrs.get("encoder") or {}).get("name"))
    if out["done"] == out["rows"]:
        out["status"] = "complete"
    elif out["done"] + out["failed"] == out["rows"]:
        out["status"] = "failed"
    return out


def catalog(lab: str) -> list[dict]:
    """Every store of ``lab``, by corpus then encoder."""
    return [entry(lab, c, e) for c, e in pairs(lab)]


def _size(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def rows_for_table(entries: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the catalog table (the CLI and the report share it)."""
    header = ["corpus", "encoder", "rows", "failed", "size", "status", "layers", "fingerprint", "when"]
    body = []
    for e in entries:
        layers = e["layers"]
        body.append([e["corpus"], e["encoder"], "-" if e["rows"] is None else f"{e['done']}/{e['rows']}",
                     "-" if e["failed"] is None else str(e["failed"]), _size(e["bytes"]), e["status"],
                     "-" if not layers else (f"{layers[0]}-{layers[-1]}" if len(layers) > 1 else str(layers[0])),
                     e["fingerprint"] or "-", e["when"] or "-"])
    return header, body


def format_catalog(entries: list[dict]) -> str:
    """A plain-text table, columns aligned."""
    header, body = rows_for_table(entries)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *body])
