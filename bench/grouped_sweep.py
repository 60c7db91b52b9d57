"""Grouped sweeps: the wall time of `emostore sweep` for 1 config against 8, 100 and 500, in one run.

Run from the repository root, given a full-EmoDB Whisper tiny.en store (e.g. the one
``emostore recipe emodb ../shared/data/emodb`` writes to ``emodb-recipe/lab/emodb/ct2-whisper.zarr``)::

    nice -n 10 python bench/grouped_sweep.py --store STORE --manifest MANIFEST [--workdir DIR] [--threads 1]
        [--emobox-epochs 20] [--only probe|emobox] [--reference] [--repeat 3]

Inputs (made once in ``--workdir``): the MR label set of the manifest and EmoBox's published 5
EmoDB folds (``emostore partition emodb --rule emobox``). Every case is one whole
``python -m emostore.cli sweep ...`` command in a fresh process (cold start, store opening,
writing every run folder and the results table included), into an empty folder, with its default
``--jobs`` (one process per core) and ``OMP_NUM_THREADS=--threads`` (torch's intra-op threads) for
all of them:

* pooled ``probe`` (defaults: at most 100 epochs, early stopping after 10): 1 config (last layer,
  lr 1e-2, seed 0, fold1), 100 configs (5 layers x 4 lrs x 5 seeds, fold1), 500 (x 5 folds);
  targets: 100 <= 2x and 500 <= 5x the wall time of 1;
* frame head ``emobox`` on the last layer, ``--emobox-epochs`` epochs (early stopping after 10):
  1 config against 8 (lr 1e-3 / 3e-4 x hidden 128 / 256 x seed 0 / 1); target: 8 <= 3x of 1;
* ``--reference``: the 100 probe configs again with ``--no-group`` (one at a time): how many runs'
  test probabilities agree with the grouped ones within 1e-5, the largest difference and its run,
  and how many selected another epoch.

Printed: each command's wall time with the load average before and after it, then the ratio
lines. Ratios compare commands measured in this one run: ``--repeat`` rounds (default 3) of every
case, interleaved (1, 100, 500, 1, 100, ...) so that a slow spell of the machine falls on all cases
alike; a case's figure is its median, and each ratio line also gives the range of the per-round
ratios (on a shared 2-core machine one command's time swung 30% between back-to-back runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LRS = ("1e-2", "3e-3", "1e-3", "3e-2")
TARGETS = {"probe 100": 2.0, "probe 500": 5.0, "emobox 8": 3.0}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "emostore.cli", *args]


def inputs(args, work: Path) -> tuple[str, str]:
    """(label set, partition) in ``work``, made once."""
    labels, part = work / "mr.jsonl", work / "emobox.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not labels.exists():
        subprocess.run(cli("labels", "aggregate", args.manifest, "--rule", "mr", "-o", str(labels)), check=True,
                       env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    if not part.exists():
        subprocess.run(cli("partition", "emodb", args.manifest, "--rule", "emobox", "-o", str(part)), check=True,
                       env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    return str(labels), str(part)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed(name: str, argv: list[str], out: Path, threads: int) -> float:
    """Wall seconds of one sweep command into an empty ``out``; exits if any run failed."""
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    before = load()
    t = time.perf_counter()
    r = subprocess.run(argv + ["--out", str(out), "--quiet"], env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{name} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    print(f"{name:<22} {seconds:8.1f} s   {r.stdout.strip().splitlines()[-1].split(': ', 1)[1].split(';')[0]}"
          f"   load {before} -> {load()}", flush=True)
    return seconds


def prob_differences(a: Path, b: Path) -> dict[str, float]:
    """Per run id: the largest |test probability difference| between sweep folders ``a`` and ``b``."""
    out = {}
    for d in sorted((a / "runs").iterdir()):
        pa = [json.loads(x)["probs"] for x in (d / "predictions.jsonl").read_text().splitlines()]
        pb = [json.loads(x)["probs"] for x in (b / "runs" / d.name / "predictions.jsonl").read_text().splitlines()]
        out[d.name] = max([0.0] + [abs(x - y) for ra, rb in zip(pa, pb) for x, y in zip(ra, rb)])
    return out


def selected_epochs_differ(a: Path, b: Path) -> list[str]:
    """Run ids whose selected epoch differs between sweep folders ``a`` and ``b``."""
    def epoch(d):
        return json.loads((d / "run.json").read_text())["selected_epoch"]
    return [d.name for d in sorted((a / "runs").iterdir()) if epoch(d) != epoch(b / "runs" / d.name)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="emodb-recipe/lab/emodb/ct2-whisper.zarr")
    ap.add_argument("--manifest", default="emodb-recipe/lab/emodb/manifest.jsonl")
    ap.add_argument("--workdir", default="bench/out/grouped")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for every command")
    ap.add_argument("--emobox-epochs", type=int, default=20)
    ap.add_argument("--only", choices=("probe", "emobox"), default=None)
    ap.add_argument("--reference", action="store_true", help="also the 100 probes with --no-group")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of every case, interleaved; each case's figure is its median")
    args = ap.parse_args(argv)
    if not Path(args.store).exists():
        sys.exit(f"{args.store}: no such store (extract one, or pass --store)")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    labels, part = inputs(args, work)
    common = ["sweep", "--store", args.store, "--labels", labels, "--partition", part]
    print(f"bench/grouped_sweep.py: {args.store}, MR labels, EmoBox's 5 EmoDB folds; OMP_NUM_THREADS={args.threads}, "
          f"{os.cpu_count()} CPUs, niceness {os.nice(0)}, load average {load()}")
    cases = []  # (key, label, argv, folder), timed in rounds: every case once per round, in this order
    if args.only in (None, "probe"):
        one = ["--head", "probe", "--layer", "4", "--lr", "1e-2", "--seed", "0", "--fold", "fold1"]
        grid = ["--head", "probe"] + sum((["--layer", str(k)] for k in range(5)), []) \
            + sum((["--lr", lr] for lr in LRS), []) + sum((["--seed", str(s)] for s in range(5)), [])
        cases += [("probe 1", "probe, 1 config", cli(*common, *one), work / "probe1"),
                  ("probe 100", "probe, 100 configs", cli(*common, *grid, "--fold", "fold1"), work / "probe100"),
                  ("probe 500", "probe, 500 configs", cli(*common, *grid, "--fold", "all"), work / "probe500")]
    if args.only in (None, "emobox"):
        base = ["--head", "emobox", "--layer", "4", "--fold", "fold1", "--epochs", str(args.emobox_epochs)]
        cases += [("emobox 1", "emobox, 1 config", cli(*common, *base, "--lr", "1e-3", "--hidden", "128", "--seed", "0"),
                   work / "emobox1"),
                  ("emobox 8", "emobox, 8 configs", cli(*common, *base, "--lr", "1e-3", "--lr", "3e-4", "--hidden",
                                                        "128", "--hidden", "256", "--seed", "0", "--seed", "1"),
                   work / "emobox8")]
    samples: dict[str, list[float]] = {key: [] for key, *_ in cases}
    for round_ in range(args.repeat):
        if args.repeat > 1:
            print(f"round {round_ + 1} of {args.repeat}")
        for key, label, argv, folder in cases:
            samples[key].append(timed(label, argv, folder, args.threads))
    seconds = {key: statistics.median(v) for key, v in samples.items()}
    if args.reference and "probe 100" in seconds:
        seconds["probe 100 no-group"] = timed("probe, 100, --no-group", cli(*common, *grid, "--fold", "fold1",
                                                                           "--no-group"),
                                              work / "probe100-nogroup", args.threads)
        diffs = prob_differences(work / "probe100", work / "probe100-nogroup")
        worst = max(diffs, key=diffs.get)
        print(f"grouped vs --no-group: {sum(v <= 1e-5 for v in diffs.values())} of {len(diffs)} runs' test "
              f"probabilities within 1e-5, largest difference {diffs[worst]:.2e} ({worst}); selected epoch "
              f"differs in {len(selected_epochs_differ(work / 'probe100', work / 'probe100-nogroup'))}")
    print()
    for name, target in TARGETS.items():
        fam, n = name.split()
        if name in seconds:
            ratio = seconds[name] / seconds[f"{fam} 1"]
            rounds = [a / b for a, b in zip(samples[name], samples[f"{fam} 1"])]
            spread = f"; per round {min(rounds):.2f}-{max(rounds):.2f}x" if len(rounds) > 1 else ""
            print(f"{fam} {n} configs / 1 config: {ratio:.2f}x{' (medians)' if len(rounds) > 1 else ''} "
                  f"(target <= {target:g}x: {'met' if ratio <= target else 'NOT met'}){spread}")
    if "probe 100 no-group" in seconds:
        print(f"probe 100 configs, --no-group / grouped: {seconds['probe 100 no-group'] / seconds['probe 100']:.1f}x")
    print(f"load average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
