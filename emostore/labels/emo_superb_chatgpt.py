"""EMO-SUPERB's published GPT-4 relabeling (its ``chatGPT/`` folder) as data.

``input_<split>.csv``: per MSP-Podcast clip the file name, the reference distribution (vote shares) in
the order angry, sad, disgust, contempt, fear, neutral, surprise, happy, and ``words`` = the
annotators' typed descriptions, comma-separated. ``output_<split>.csv``: GPT-4's adjusted
distribution per clip in the same order, plus its ``reason``. The ids are the file names without
``.wav`` (the MSP-Podcast adapter's ids).

GPT-4's answers do not always sum to 1 (319 of the 28,750 train rows are off by more than 0.01,
sums 0.1-1.4); :func:`read_chatgpt` renormalises them, counts them, and refuses an all-zero answer.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from emostore.labels.relabeled import RelabelingError
from emostore.labels.votes import EMO_SUPERB_CLASSES

CLASSES = EMO_SUPERB_CLASSES  # the files' column order
OFF_SUM = 0.01  # an answer whose sum is further from 1 than this is counted as renormalised


@dataclass
class ChatGPTTable:
    """One published CSV: ids, [N, 8] distributions and the last column (``words`` or ``reason``)."""

    path: str
    ids: list[str]
    distributions: np.ndarray
    text: list[str]
    renormalised: int = 0
    meta: dict = field(default_factory=dict)

    def descriptions(self) -> list[list[str]]:
        """``words`` split at commas, stripped, empty ones dropped (one entry per typed description)."""
        return [[t.strip() for t in s.split(",") if t.strip()] for s in self.text]


def read_chatgpt(path: str | Path, last: str) -> ChatGPTTable:
    """Read ``input_*.csv`` (``last="words"``) or ``output_*.csv`` (``last="reason"``)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise RelabelingError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RelabelingError(f"{path}: not a CSV file ({exc})") from None
    want = ["", *CLASSES, last]
    if not rows or [h.strip() for h in rows[0]] != want:
        raise RelabelingError(f"{path}: expected the header {','.join(want)} (EMO-SUPERB's chatGPT/ files)")
    ids, dists, text, off = [], [], [], 0
    seen = set()
    for line, rec in enumerate(rows[1:], start=2):
        if len(rec) != len(want):
            raise RelabelingError(f"{path}:{line}: {len(rec)} fields, expected {len(want)}")
        uid = PurePosixPath(rec[0].strip()).stem
        if uid in seen:
            raise RelabelingError(f"{path}:{line}: {uid!r} is listed twice")
        seen.add(uid)
        try:
            vec = np.array([float(v) for v in rec[1:-1]])
        except ValueError:
            raise RelabelingError(f"{path}:{line}: a class column of {uid!r} is not a number") from None
        total = vec.sum()
        if not np.all(np.isfinite(vec)) or vec.min() < 0 or total <= 0:
            raise RelabelingError(f"{path}:{line}: {uid!r} has no distribution (values {rec[1:-1]})")
        off += int(abs(total - 1) > OFF_SUM)
        ids.append(uid)
        dists.append(vec / total)
        text.append(rec[-1])
    return ChatGPTTable(str(path), ids, np.stack(dists) if dists else np.zeros((0, len(CLASSES))), text, off)


def read_pair(input_csv: str | Path, output_csv: str | Path) -> tuple[ChatGPTTable, ChatGPTTable]:
    """The input (reference + words) and output (GPT-4) tables, which must list the same ids in order."""
    inp, out = read_chatgpt(input_csv, "words"), read_chatgpt(output_csv, "reason")
    if inp.ids != out.ids:
        raise RelabelingError(f"{input_csv} and {output_csv} do not list the same clips in the same order")
    return inp, out


def import_relabeling(output_csv: str | Path, out: str | Path, input_csv: str | Path | None = None,
                      reference_out: str | Path | None = None) -> dict:
    """Write GPT-4's published distributions as an emostore relabeling (``source: "llm"``, its reasons);
    with ``input_csv`` also check it lists the same clips, and write its reference distributions to
    ``reference_out`` (``source: "reference"``) so ``relabel compare`` can set the two side by side.
    Returns the relabeling's metadata."""
    from emostore.labels.relabeled import relabel_row, write_relabeling
    from emostore.provenance import file_sha256

    if reference_out is not None and input_csv is None:
        raise RelabelingError("--reference-out needs --input (the input_*.csv holding the references)")
    if input_csv is not None:
        inp, gpt = read_pair(input_csv, output_csv)
    else:
        inp, gpt = None, read_chatgpt(output_csv, "reason")
    source = {"repository": "https://github.com/ag027592/EMO-SUPERB", "folder": "chatGPT/",
              "file": str(output_csv), "sha256": file_sha256(output_csv)}
    meta = {"relabeler": "llm", "imported": "EMO-SUPERB's published GPT-4 relabeling", "classes": list(CLASSES),
            "model": "GPT-4 (as published by EMO-SUPERB)", "source": source,
            "counts": {"rows": len(gpt.ids), "renormalised": gpt.renormalised},
            "note": f"{gpt.renormalised} answers summed to more than {OFF_SUM} away from 1 and were renormalised"}
    rows = [relabel_row(i, d, "llm", reason.strip() or None) for i, d, reason in zip(gpt.ids, gpt.distributions, gpt.text)]
    write_relabeling(out, rows, meta)
    if reference_out is not None:
        ref_meta = {"relabeler": "reference", "imported": "EMO-SUPERB's published GPT-4 input (reference distributions)",
                    "classes": list(CLASSES),
                    "source": {**source, "file": str(input_csv), "sha256": file_sha256(input_csv)},
                    "counts": {"rows": len(inp.ids)}}
        write_relabeling(reference_out, [relabel_row(i, d, "reference") for i, d in zip(inp.ids, inp.distributions)],
                         ref_meta)
    return meta
