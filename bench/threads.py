"""torch threads for tiny heads: one training run's wall time at 1 thread vs torch's default.

A probe on one layer's pooled features is a [32, D] x [D, C] product per step; torch's default of
one intra-op thread per core spends more time synchronising threads than computing, and on a
loaded machine several times more. This measures it on a real store (the sweep's default of one
thread per run, ``emostore.heads.config.Execution``, comes from it; docs/sweeps.md "Threads"):
each setting is trained ``--repeat`` times, interleaved, in one process, and the medians are
printed with the machine load::

    emostore labels aggregate emodb.jsonl --rule mr --out mr.jsonl
    emostore partition emodb emodb.jsonl --rule emobox-rule --out part.json
    python bench/threads.py --store emodb-whisper.zarr --labels mr.jsonl --partition part.json
"""
import argparse
import os
import statistics
import time

import torch

from emostore.heads.config import config_from
from emostore.heads.loop import train
from emostore.labels.aggregate import read_label_set
from emostore.manifests.partitions import read_partition
from emostore.store.reader import open as open_store

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--store", required=True)
ap.add_argument("--labels", required=True)
ap.add_argument("--partition", required=True)
ap.add_argument("--heads", default="probe,weighted-sum")
ap.add_argument("--threads", default=f"1,{os.cpu_count()}", help="comma-separated thread counts")
ap.add_argument("--epochs", type=int, default=20)
ap.add_argument("--repeat", type=int, default=3)
args = ap.parse_args()
fs = open_store(args.store)
records, meta = read_label_set(args.labels)
part = read_partition(args.partition)
fold = next(iter(part.folds))
counts = [int(t) for t in args.threads.split(",")]
print(f"{args.store}: {len(fs)} rows, L={fs.num_layers}, D={fs.dim}; fold {fold}; {args.epochs} epochs, patience 0; "
      f"{os.cpu_count()} CPUs; load before {open('/proc/loadavg').read().split()[:3]}")
train(fs, records, meta["classes"], part, config_from(head="probe", fold=fold, epochs=1))  # warm: imports
for head in args.heads.split(","):
    cfg = config_from(head=head, fold=fold, epochs=args.epochs, patience=0)
    times = {t: [] for t in counts}
    for _ in range(args.repeat):
        for t in counts:
            t0 = time.perf_counter()
            train(fs, records, meta["classes"], part, cfg, threads=t)
            times[t].append(time.perf_counter() - t0)
    med = {t: statistics.median(v) for t, v in times.items()}
    line = ", ".join(f"{t} thread(s) {med[t]:.2f} s" for t in counts)
    print(f"{head}: {line}; default/1 = {med[counts[-1]] / med[counts[0]]:.2f}x "
          f"(load {open('/proc/loadavg').read().split()[:3]})", flush=True)
