"""Do the training defaults converge? Per head and lr:epochs:patience, each fold's kept epoch vs the epochs run.

A default that keeps its last epoch has not reached its dev-loss minimum. Prints one line per
(head, setting): kept epochs, epochs run, mean minimum dev loss, test macro-F1 and UA over the folds.
The table in docs/sweeps.md ("Defaults") came from::

    emostore manifest build emodb ../shared/data/emodb --out emodb.jsonl
    emostore labels aggregate emodb.jsonl --rule mr --out emodb.mr.jsonl
    emostore partition emodb emodb.jsonl --rule emobox-rule --out emodb.folds.json
    emostore extract emodb.jsonl --out emodb-whisper.zarr   # and --encoder fbank --out emodb-fbank.zarr
    python bench/defaults.py --store emodb-whisper.zarr --labels emodb.mr.jsonl --partition emodb.folds.json \
        --heads weighted-sum,probe,ar-mlp --grid 1e-4:20:0,1e-3:100:10,3e-4:100:10
"""
import argparse
import time

import numpy as np
import torch

from emostore.heads.artifacts import test_metrics
from emostore.heads.config import config_from
from emostore.heads.loop import train
from emostore.labels.aggregate import read_label_set
from emostore.manifests.partitions import read_partition
from emostore.store.reader import open as open_store

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--store", required=True)
ap.add_argument("--labels", required=True)
ap.add_argument("--partition", required=True)
ap.add_argument("--heads", default="weighted-sum,probe,ar-mlp,emobox")
ap.add_argument("--grid", default="1e-3:100:10", help="lr:epochs:patience,... (patience 0: off)")
ap.add_argument("--folds", default=None, help="comma-separated folds [default: all]")
args = ap.parse_args()
torch.set_num_threads(1)
store, heads = args.store, args.heads.split(",")
grid = [x.split(":") for x in args.grid.split(",")]
fs = open_store(store)
records, meta = read_label_set(args.labels)
part = read_partition(args.partition)
folds = args.folds.split(",") if args.folds else list(part.folds)
for head in heads:
    for lr, ep, pat in grid:
        sel, ran, dl, f1, ua, t0 = [], [], [], [], [], time.time()
        for fold in folds:
            cfg = config_from(head=head, fold=fold, lr=float(lr), epochs=int(ep), patience=int(pat))
            r = train(fs, records, meta["classes"], part, cfg)
            m = test_metrics(r, records)
            sel.append(r.selected_epoch); ran.append(len(r.dev_losses)); dl.append(min(r.dev_losses))
            f1.append(m["macro_f1"]); ua.append(m["ua"])
        lw = f" lw={np.round(r.layer_weights, 3).tolist()}" if r.layer_weights else ""
        print(f"{store} {head:12s} lr={lr} ep={ep} pat={pat}: kept {sel} of run {ran}; devloss {np.mean(dl):.3f}; "
              f"macroF1 {np.mean(f1):.3f} UA {np.mean(ua):.3f} ({time.time()-t0:.0f}s){lw}", flush=True)
