"""A sweep folder while a sweep writes it: one writer at a time, its plan, its live results table.

``OUT/.lock`` is the store's writer lock (:func:`emostore.store.lock.lock_store`: flock locally, a
lease object on object storage), so a second ``emostore sweep`` into the same folder is refused in
one line naming the holder instead of training every run twice. ``OUT/sweep.json`` records the
expanded specification; ``OUT/results.sqlite`` is written at the start (the plan, the runs already
finished), as runs finish and on the way out (:class:`~emostore.sweep.results.LiveTable`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from emostore.sweep.results import RUNS_DIR, LiveTable

SPEC_FILE = "sweep.json"


@contextmanager
def sweep_folder(out: str | Path, runs: list) -> Iterator[LiveTable]:
    """Hold ``out``'s lock while the block writes it; yield its live table (``runs``: RunSpecs).

    The table is written once more on the way out, also after Ctrl-C or an error.
    """
    from emostore.store.lock import lock_store

    out = Path(out).resolve()
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    lock = lock_store(str(out), what="sweep")
    try:
        (out / SPEC_FILE).write_text(json.dumps([r.to_json() for r in runs], indent=1) + "\n", encoding="utf-8")
        table = LiveTable(out, [r.run_id for r in runs])
        try:
            yield table
        finally:
            table.write()
    finally:
        lock.close()
