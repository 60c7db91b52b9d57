"""EmoBox on EmoDB or RAVDESS, reproduced from the store: FBANK and Whisper tiny.en, both fold protocols.

Run from the repository root::

    python bench/reproduce_emobox.py [--corpus emodb|ravdess] [--workdir bench/out/reproduce]
        [--store-dir DIR | --lab LAB] [--manifest M] [--data ../shared/data/emodb] [--jobs 2]
        [--protocol emobox ...] [--lr 1e-3 ...] [--hidden 128 ...]
        [--emobox-runs PROTOCOL:ENCODER:LAYER,...] [--emobox-lr 1e-3 ...] [--time-clips 16] [--n-boot 1000] [--no-sweep]

``--lab LAB`` reads the stores and manifest from a lab (``LAB/<corpus>/{whisper,fbank}.zarr``, or
``ct2-whisper.zarr`` as ``emostore recipe`` names it, and
``LAB/<corpus>/manifest.jsonl``, see :mod:`emostore.lab`); ``--protocol``/``--lr``/``--hidden``
narrow the grid (RAVDESS is 2.7x EmoDB: the README's RAVDESS table says what ran).

The README's table came from ``--store-dir DIR --emobox-lr 1e-3`` (both protocols; ~25 min on 2
busy cores one run at a time, 9 min grouped) then ``--store-dir DIR --emobox-runs
emobox:whisper:last,emobox:fbank:last`` (lr 1e-4 added on EmoBox's folds; ~8 min, 4.5 min grouped).

What it does, every step resumable (inputs are rewritten only when their content changes, and the
sweeps skip finished runs, so an interrupted run picks up where it stopped):

1. Inputs in ``--workdir``: the corpus manifest (``emostore manifest build CORPUS``), its MR label
   set (EmoDB and RAVDESS have one acted label per clip, so MR is that label, one-hot), and two partitions:
   ``emobox`` (EmoBox's published folds, EmoDB 5, RAVDESS 6; dev = EmoBox's recipe 20 % of train, seed 1993)
   and ``emobox-rule`` (the EmoBox paper's stated rule: speaker-disjoint folds, speaker-disjoint dev).
2. Stores: ``--store-dir`` holding ``emodb-whisper.zarr`` (ct2-whisper, 5 layers x 384) and
   ``emodb-fbank.zarr`` (80 log-mel bins) of the same manifest, else both are extracted into the
   workdir and timed end to end.
3. Extraction time for the README: the full extraction's wall time when step 2 ran it (kept in
   ``WORKDIR/extraction.json``, so ``--store-dir WORKDIR`` later reports it); otherwise
   (the stores do not record their own timing) a timed extraction of ``--time-clips`` clips with
   each encoder, its encoder seconds scaled to the corpus by audio seconds and its once-only costs
   (encoder load, weights hash, store creation) added once -- printed as ``scaled from N clips``.
4. Sweeps (``emostore.sweep``), one directory per protocol, EmoBox's recipe for every head
   (``--preset emobox``: 100 epochs, 10 warm-up epochs, AdamW, batch 32, the epoch with the lowest
   dev loss kept), grid lr {1e-3, 1e-4} x hidden {128, 256} (hidden does not apply to ``probe``):
   ``probe`` on every layer and ``weighted-sum`` (learned layer weights) on pooled features for both
   encoders, then the frame-level ``emobox`` head on the layers ``--emobox-runs`` names
   (``PROTOCOL:ENCODER:LAYER`` with LAYER a number, ``last`` or ``best`` = the probe layer with the
   lowest dev loss on that protocol). A whole grid of 100-epoch frame runs on every layer does not
   fit 2 shared CPU cores, so the default is the last layer, both protocols; what ran is printed.
5. One markdown table: protocol x encoder x head (the grid point with the lowest mean dev loss, as
   EmoBox selects on dev) -> UA / WA / macro-F1, single-label as EmoBox reports them (argmax class;
   ``macro_f1_single``), fold means with 95 % percentile bootstrap CIs (``fold_mean``); per-layer
   probe curves and the learned layer weights, per protocol and encoder.
6. Timing: extraction vs the whole store sweep (sum of the runs' own training seconds; a grouped
   member's seconds are its share of its group's time, so they sum to the training time), and the
   same sweep with the encoder recomputed on every batch (the s3prl way). That one is
   **extrapolated**, not run: the per-clip encoder cost is measured with
   ``EncoderSource`` (bench/encoder_source.py) on ``--time-clips`` real clips, and each run
   would encode epochs x (train + dev) + test clips.

Raw outputs (runs, results.sqlite, JSON summary) stay in ``--workdir`` (bench/out/ is git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/reproduce_emobox.py` from anywhere
    sys.path.insert(0, str(REPO))
if str(REPO / "bench") not in sys.path:  # bench/encoder_source.py, however this file was loaded
    sys.path.insert(0, str(REPO / "bench"))

from emostore.heads.config import PRESETS  # noqa: E402
from emostore.evaluate.bootstrap import DEFAULT_BOOT

PROTOCOLS = {"emobox": "EmoBox published folds (5, speaker-dependent)",
             "emobox-rule": "stated rule (4 speaker-disjoint folds)"}
ENCODERS = {"fbank": "fbank", "whisper": "ct2-whisper"}
GRID = {"lr": [1e-3, 1e-4], "hidden": [128, 256]}
METRICS = (("ua", "UA"), ("wa", "WA"), ("macro_f1_single", "macro-F1"))
# EmoBox's published UA (Ma et al. 2024, Table 4, its folds), for the README beside ours
PUBLISHED_UA = {
    "emodb": {"wav2vec 2.0 base": 82.06, "HuBERT large": 89.81, "WavLM large": 92.58, "Whisper large v3": 91.26},
    "ravdess": {"wav2vec 2.0 base": 54.33, "WavLM large": 72.00, "Whisper large v3": 75.32},
}
CORPUS = "emodb"  # set by --corpus before any work
PATIENCE = None  # set by --patience: the recipe runs all 100 epochs (patience 0)


# -- inputs --------------------------------------------------------------------------------------


def find_data(arg: str | None) -> Path:
    cands = [Path(arg)] if arg else [REPO.parent / f"shared/data/{CORPUS}", Path(f"/work/shared/data/{CORPUS}")]
    for c in cands:
        if (c / "wav").is_dir() or (CORPUS != "emodb" and c.is_dir()):
            return c.resolve()
    sys.exit(f"no {CORPUS} in {', '.join(map(str, cands))}; pass --data")


def write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file alone (its content is part of every run id)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def store_manifest(store_dir: Path) -> Path:
    """The manifest the reused Whisper store was extracted from (its attrs name it, relative to its folder)."""
    import emostore.store

    fs = emostore.store.open(store_dir / f"{CORPUS}-whisper.zarr")
    path = store_dir / fs.attrs.get("manifest", "")
    if not path.is_file():
        sys.exit(f"{store_dir}: the stores' manifest {path} is gone; pass --manifest")
    return path


def prepare_inputs(work: Path, data: Path, manifest: Path | None = None) -> dict[str, Path]:
    """Manifest (``manifest``, else built from ``data``), MR labels and both partitions in ``work``."""
    from emostore.labels.aggregate import aggregate_manifest
    from emostore.manifests import load_manifest
    from emostore.manifests.build import build_manifest
    from emostore.manifests.partitions import make_partition

    if manifest is None:  # audio paths in a manifest are relative to it, so it is built where it lives
        tmp = work / "manifest.tmp.jsonl"
        build_manifest(CORPUS, data, tmp)
        manifest = work / f"{CORPUS}.jsonl"
        write_if_changed(manifest, tmp.read_text(encoding="utf-8"))
        tmp.unlink()
    manifest = manifest.resolve()
    records, meta = aggregate_manifest(manifest, "mr")
    labels = work / f"{CORPUS}.mr.jsonl"
    write_if_changed(labels, "".join(json.dumps(r.to_json()) + "\n" for r in records))
    write_if_changed(work / f"{CORPUS}.mr.meta.json", json.dumps(meta, indent=1) + "\n")
    m = load_manifest(manifest, require_audio=False)
    out = {"manifest": manifest, "labels": labels}
    for rule in PROTOCOLS:
        p = make_partition(CORPUS, m, rule)
        path = work / f"{CORPUS}.{rule}.json"
        write_if_changed(path, json.dumps(p.folds, indent=1) + "\n")
        write_if_changed(path.with_suffix(".meta.json"), json.dumps(p.meta, indent=1) + "\n")
        out[rule] = path
    return out


def extract(manifest: Path, store: Path, encoder: str) -> tuple[float, float, float]:
    """(wall seconds, audio seconds, seconds inside the encoder) of extracting ``manifest`` with
    ``encoder`` into a new ``store``."""
    import shutil

    from emostore.extract import runner
    from emostore.extract.planning import ExtractOptions
    from emostore.manifests import load_manifest

    if store.exists():
        shutil.rmtree(store)
    t = time.perf_counter()
    s = runner.extract(load_manifest(manifest), str(store), ExtractOptions(encoder=encoder))
    wall = time.perf_counter() - t
    if s.failed:
        sys.exit(f"{store}: extraction failed for {s.failed} clips: {s.errors[:3]}")
    return wall, float(s.audio_seconds), float(s.encoder_seconds)


def stores_and_extraction(args, work: Path, manifest: Path) -> tuple[dict[str, Path], dict]:
    """The two stores, and per encoder the extraction time: measured in full, or scaled from a subset."""
    import emostore.store
    from emostore.manifests import load_manifest

    m = load_manifest(manifest)
    total_audio = sum(float(r["duration"]) for r in m.rows)
    timing = {}
    stores = {}
    measured_file = work / "extraction.json"  # whole-corpus timings measured here, by store and manifest
    measured = json.loads(measured_file.read_text()) if measured_file.exists() else {}
    for name, enc in ENCODERS.items():
        if args.store_dir or args.lab:
            if args.lab:  # a lab plan's name (whisper) or the recipe's, the encoder's (ct2-whisper)
                found = [p for p in (Path(args.lab) / CORPUS / f"{n}.zarr" for n in (name, enc)) if p.exists()]
                if not found:
                    sys.exit(f"{args.lab}/{CORPUS}: no {name}.zarr or {enc}.zarr store")
                path = found[0]
            else:
                path = Path(args.store_dir) / f"{CORPUS}-{name}.zarr"
            fs = emostore.store.open(path)
            if fs.attrs.get("manifest_sha256") != m.sha256:
                sys.exit(f"{path} was extracted from another manifest than {manifest} (built from {args.data}); "
                         "drop --store-dir to extract here")
            stores[name] = path
            earlier = measured.get(str(Path(path).resolve()))
            if earlier and earlier.get("manifest_sha256") == m.sha256:
                timing[name] = {**earlier["timing"], "how": f"measured, whole corpus ({earlier['date']})"}
        else:
            path = work / f"{CORPUS}-{name}.zarr"
            wall, audio_s, _ = extract(manifest, path, enc)
            timing[name] = {"seconds": wall, "audio_seconds": audio_s, "how": "measured, whole corpus"}
            stores[name] = path
            measured[str(path.resolve())] = {"manifest_sha256": m.sha256, "timing": timing[name],
                                             "date": time.strftime("%Y-%m-%d %H:%M")}
            measured_file.write_text(json.dumps(measured, indent=1) + "\n", encoding="utf-8")
    if len(timing) < len(ENCODERS):  # no timing recorded: time a subset of real clips and scale by audio seconds
        rows = m.rows[:: max(1, len(m.rows) // args.time_clips)][: args.time_clips]
        sub = work / "timing-subset.jsonl"
        sub.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        for name, enc in [(n, e) for n, e in ENCODERS.items() if n not in timing]:
            # once per extraction (encoder load, weights hash, store creation): not scaled
            wall, audio_s, enc_s = extract(sub, work / f"timing-{name}.zarr", enc)
            fixed = wall - enc_s
            timing[name] = {"seconds": fixed + enc_s * total_audio / audio_s, "audio_seconds": total_audio,
                            "how": f"scaled from {len(rows)} clips: {audio_s:.0f} s of audio encoded in {enc_s:.1f} s, "
                                   f"x {total_audio / audio_s:.0f}, + {fixed:.1f} s once"}
    return stores, timing


# -- sweeps --------------------------------------------------------------------------------------


def base_spec(store: Path, inputs: dict, protocol: str) -> dict:
    return {"store": str(store), "labels": str(inputs["labels"]), "partition": str(inputs[protocol]),
            "preset": "emobox", "fold": sorted(json.loads(Path(inputs[protocol]).read_text())),
            "lr": GRID["lr"], "seed": 0, **({"patience": PATIENCE} if PATIENCE is not None else {})}
    # GRID: narrowed by --lr / --hidden; PATIENCE: --patience (early stopping instead of the recipe's 100 epochs)


def pooled_specs(stores: dict, inputs: dict, protocol: str) -> list:
    from emostore.sweep.config import expand

    runs = []
    for store in stores.values():
        spec = base_spec(store, inputs, protocol)
        runs += expand({**spec, "runs": [{"head": "probe", "layer": "all"},
                                          {"head": "weighted-sum", "hidden": GRID["hidden"]}]})
    return runs


def best_probe_layer(sweep_dir: Path, encoder: str) -> int:
    """The probe layer whose best grid point has the lowest mean dev loss (selection on dev only)."""
    from emostore.analysis.runs import done_runs, select_best

    runs = done_runs(sweep_dir, head="probe", encoder=encoder)
    best = select_best(runs, ["layer"])
    per_layer = best.groupby("layer")["mean_dev_loss"].first()
    return int(per_layer.idxmin())


def emobox_specs(store: Path, inputs: dict, protocol: str, layer: int, lrs: list[float]) -> list:
    from emostore.sweep.config import expand

    return expand({**base_spec(store, inputs, protocol), "head": "emobox", "layer": layer, "hidden": GRID["hidden"],
                   "lr": lrs})


def run_sweep(runs: list, out: Path, jobs: int, what: str) -> float:
    from emostore.sweep.runner import run_sweep as sweep

    t = time.perf_counter()
    s = sweep(runs, out, jobs=jobs, log=lambda m: print(f"  {m}", flush=True))
    print(f"{what}: {s.total} runs, {s.skipped} already done, {s.done} done now, {s.failed} failed "
          f"({time.perf_counter() - t:.0f} s)", flush=True)
    if s.failed:
        for rid, err in list(s.failures.items())[:3]:
            print(f"  failed {rid}: {err}")
    return time.perf_counter() - t


# -- report --------------------------------------------------------------------------------------


def complete_settings(runs):
    """The runs of settings that ran on every fold of the protocol, and how many settings were left out:
    an interrupted grid must not compete on a mean dev loss over fewer folds."""
    from emostore.manifests.partitions import read_partition

    folds = len(read_partition(runs["partition"].iloc[0]).folds)
    per = runs.groupby("setting")["fold"].nunique()
    keep = per.index[per == folds]
    return runs[runs["setting"].isin(keep)], int((per < folds).sum())


def table_rows(sweep_dirs: dict, encoder_names: dict, n_boot: int) -> list[dict]:
    from emostore.analysis.runs import NoData, done_runs, select_best
    from emostore.analysis.scoring import fold_mean

    out = []
    for protocol, d in sweep_dirs.items():
        for short, enc in encoder_names.items():
            for head in ("probe", "weighted-sum", "emobox"):
                try:
                    runs = done_runs(d, encoder=enc, head=head)
                except NoData:
                    continue
                runs, left_out = complete_settings(runs)
                best = select_best(runs, ["head"])
                row = {"protocol": protocol, "encoder": short, "head": head, "setting": best["setting"].iloc[0],
                       "folds": int(best["fold"].nunique()), "settings": int(best["settings_compared"].iloc[0]),
                       "dev_loss": float(best["mean_dev_loss"].iloc[0]), "incomplete_left_out": left_out}
                for m, _ in METRICS:
                    row[m] = fold_mean(best, m, n_boot=n_boot)
                out.append(row)
    return out


def fmt_ci(e: dict) -> str:
    return f"{100 * e['value']:.1f} [{100 * e['ci_low']:.1f}, {100 * e['ci_high']:.1f}]"


def markdown(rows: list[dict]) -> str:
    head = ["protocol", "encoder", "head (selected on dev)", "folds", *[n + " % [95 % CI]" for _, n in METRICS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        setting = r["setting"].replace("head=", "").split(" preset=")[0]
        setting = " ".join(p for p in setting.split() if not p.startswith(("beta=", "smoothing=", "epochs=",
                                                                           "warmup_epochs=", "batch_size=", "features=")))
        more = f", {r['incomplete_left_out']} unfinished left out" if r["incomplete_left_out"] else ""
        lines.append("| " + " | ".join([r["protocol"], r["encoder"], f"{setting} (best of {r['settings']}{more})",
                                        str(r["folds"]), *[fmt_ci(r[m]) for m, _ in METRICS]]) + " |")
    return "\n".join(lines)


def layer_views(sweep_dirs: dict, n_boot: int) -> dict:
    from emostore.analysis.layers import layer_weights, probe_curves
    from emostore.analysis.runs import NoData

    out = {}
    for protocol, d in sweep_dirs.items():
        curves = probe_curves(d, metric="ua", n_boot=n_boot)
        try:
            weights = layer_weights(d)
        except NoData:
            weights = None
        out[protocol] = (curves, weights)
    return out


def s3prl_way_seconds(runs_table, stores: dict, manifest: Path, clips: int) -> dict:
    """Per encoder: measured encoder s/clip (EncoderSource on ``clips`` real clips) and the encodings a
    recompute-every-batch sweep of the same runs would do: epochs x (train + dev) + test per run."""
    import emostore.store
    from emostore.extract.encoders import load_encoder
    from encoder_source import EncoderSource  # bench/encoder_source.py
    from emostore.manifests import load_manifest
    from emostore.manifests.partitions import read_partition

    m = load_manifest(manifest)
    out = {}
    for short, path in stores.items():
        fs = emostore.store.open(path)
        enc = load_encoder(ENCODERS[short], "cpu")
        src = EncoderSource.for_store(fs, m, enc)
        src.hidden(np.arange(4, dtype=np.int64))  # warm-up
        src.clips_encoded, src.encoder_seconds = 0, 0.0
        idx = np.linspace(0, len(fs) - 1, clips).astype(np.int64)
        t = time.perf_counter()
        for k in range(0, len(idx), 4):  # the runner's Whisper packing: 4 clips of 30 s windows
            src.hidden(idx[k:k + 4])
        wall = time.perf_counter() - t
        per_clip = wall / len(idx)
        mine = runs_table[runs_table["store"] == str(Path(path).resolve())]
        encodings = 0
        for r in mine.to_dict("records"):
            f = read_partition(r["partition"]).folds[r["fold"]]
            encodings += int(r["epochs_run"]) * (len(f["train"]) + len(f["dev"])) + len(f["test"])
        out[short] = {"per_clip": per_clip, "encoder_per_clip": src.encoder_seconds / len(idx),
                      "encodings": encodings, "seconds": encodings * per_clip, "runs": len(mine),
                      "store_seconds": float(mine["seconds"].sum())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="emodb", choices=sorted(PUBLISHED_UA))
    ap.add_argument("--workdir", default=None, help="default bench/out/reproduce (EmoDB), bench/out/reproduce-CORPUS")
    ap.add_argument("--data", default=None, help="the corpus (default ../shared/data/CORPUS)")
    ap.add_argument("--store-dir", default=None,
                    help="reuse CORPUS-whisper.zarr and CORPUS-fbank.zarr from here (same manifest)")
    ap.add_argument("--lab", default=None,
                    help="reuse LAB/CORPUS/{whisper or ct2-whisper,fbank}.zarr and LAB/CORPUS/manifest.jsonl (a lab's or the recipe's layout)")
    ap.add_argument("--manifest", default=None,
                    help="manifest to use (default: the lab's or the --store-dir stores' own, else built from --data)")
    ap.add_argument("--protocol", action="append", choices=sorted(PROTOCOLS), default=None,
                    help="fold protocols to run (repeat; default both)")
    ap.add_argument("--lr", type=float, action="append", default=None, help="pooled-head lrs (default 1e-3 and 1e-4)")
    ap.add_argument("--hidden", type=int, action="append", default=None, help="hidden sizes (default 128 and 256)")
    ap.add_argument("--patience", type=int, default=None,
                    help="stop a run after N epochs without a better dev loss (default: the recipe's 100 epochs); "
                         "the epoch kept is still the one with the lowest dev loss")
    ap.add_argument("--jobs", type=int, default=2, help="sweep processes")
    ap.add_argument("--emobox-runs", default=None,
                    help="frame-head grids to run: PROTOCOL:ENCODER:LAYER,... (LAYER: number, last, best; "
                         "default the last layer of both encoders on every --protocol)")
    ap.add_argument("--emobox-lr", type=float, action="append", default=None,
                    help="frame-head learning rates (repeat; default the recipe's 1e-3 and 1e-4)")
    ap.add_argument("--time-clips", type=int, default=16, help="clips timed for extraction and the s3prl way")
    ap.add_argument("--n-boot", type=int, default=DEFAULT_BOOT)
    ap.add_argument("--no-sweep", action="store_true", help="only report what the workdir's sweeps hold")
    args = ap.parse_args(argv)
    global CORPUS, PATIENCE
    CORPUS, PATIENCE = args.corpus, args.patience
    args.workdir = args.workdir or str(REPO / ("bench/out/reproduce" if CORPUS == "emodb" else f"bench/out/reproduce-{CORPUS}"))
    for name in [p for p in PROTOCOLS if args.protocol and p not in args.protocol]:
        del PROTOCOLS[name]
    GRID["lr"], GRID["hidden"] = args.lr or GRID["lr"], args.hidden or GRID["hidden"]
    args.emobox_lr = args.emobox_lr or GRID["lr"]
    if args.emobox_runs is None:
        args.emobox_runs = ",".join(f"{p}:{e}:last" for p in PROTOCOLS for e in ("whisper", "fbank"))
    for item in filter(None, args.emobox_runs.split(",")):  # before any work
        protocol, short, layer = (item.split(":") + ["", "", ""])[:3]
        if protocol not in PROTOCOLS or short not in ENCODERS or not (layer in ("last", "best") or layer.isdigit()):
            sys.exit(f"--emobox-runs {item!r}: want PROTOCOL:ENCODER:LAYER with PROTOCOL in "
                     f"{', '.join(PROTOCOLS)}, ENCODER in {', '.join(ENCODERS)}, LAYER a number, last or best")

    import emostore.store
    from emostore.analysis.runs import done_runs

    t_all = time.perf_counter()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.data = str(find_data(args.data))
    manifest = (Path(args.manifest) if args.manifest else Path(args.lab) / CORPUS / "manifest.jsonl" if args.lab
                else store_manifest(Path(args.store_dir)) if args.store_dir else None)
    inputs = prepare_inputs(work, Path(args.data), manifest)
    stores, extraction = stores_and_extraction(args, work, inputs["manifest"])
    enc_names = {short: emostore.store.open(p).attrs["encoder"]["name"] for short, p in stores.items()}
    sweep_dirs = {p: work / f"sweep-{p}" for p in PROTOCOLS}
    print(f"bench/reproduce_emobox.py: {CORPUS} {args.data}, stores {', '.join(map(str, stores.values()))}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)

    ran_emobox, sweep_wall = [], {}
    if not args.no_sweep:
        for protocol in PROTOCOLS:
            sweep_wall[f"{protocol} pooled"] = run_sweep(pooled_specs(stores, inputs, protocol), sweep_dirs[protocol], args.jobs,
                      f"{protocol}: probe (every layer) + weighted-sum")
        for item in filter(None, args.emobox_runs.split(",")):
            protocol, short, layer = item.split(":")
            fs = emostore.store.open(stores[short])
            if layer == "last":
                layer = fs.layers[-1]
            elif layer == "best":
                layer = best_probe_layer(sweep_dirs[protocol], enc_names[short])
            ran_emobox.append((protocol, short, int(layer)))
            sweep_wall[f"{protocol} emobox {short} L{layer}"] = run_sweep(
                emobox_specs(stores[short], inputs, protocol, int(layer), args.emobox_lr), sweep_dirs[protocol], args.jobs,
                      f"{protocol}: emobox head, {short} layer {layer}")

    if not any((d / "results.sqlite").exists() for d in sweep_dirs.values()):
        sys.exit(f"{work}: no sweep has run here yet (run without --no-sweep)")
    rows = table_rows(sweep_dirs, enc_names, args.n_boot)
    print()
    print(f"{CORPUS}, MR (= the acted label), EmoBox recipe ({PRESETS['emobox']['epochs']} epochs, "
          f"{PRESETS['emobox']['warmup_epochs']} warm-up), grid lr {GRID['lr']} x hidden {GRID['hidden']} "
          "('best of N': the grid points that ran on every fold), selection on mean dev loss; single-label "
          "UA / WA / macro-F1, fold mean, 95 % bootstrap CI:")
    print(markdown(rows))
    print("protocols: " + "; ".join(f"{k} = {v}" for k, v in PROTOCOLS.items()))
    print(f"EmoBox's published {CORPUS} UA % (its folds): " + ", ".join(f"{k} {v}" for k, v in PUBLISHED_UA[CORPUS].items()))
    print()
    for protocol, (curves, weights) in layer_views(sweep_dirs, args.n_boot).items():
        for enc, c in curves.groupby("encoder"):
            pts = ", ".join(f"L{int(r.layer)} {100 * r.value:.1f}" for r in c.itertuples())
            print(f"probe curve (UA %), {protocol}, {enc}: {pts}")
        if weights is not None:
            for enc, w in weights.groupby("encoder"):
                print(f"learned layer weights, {protocol}, {enc}: "
                      + ", ".join(f"L{int(r.layer)} {r.weight:.3f}" for r in w.itertuples()))
    print()

    import pandas as pd

    table = pd.concat([done_runs(d).assign(sweep=p) for p, d in sweep_dirs.items()], ignore_index=True)
    s3 = s3prl_way_seconds(table, stores, inputs["manifest"], args.time_clips)
    print(f"timing ({os.cpu_count()} CPUs shared with other work, load average {os.getloadavg()[0]:.1f} now; "
          "store sweep = the runs' own training seconds summed; s3prl way = the same runs with the encoder "
          "recomputed on every batch, EXTRAPOLATED from the measured per-clip cost):")
    for short in ENCODERS:
        e, s = extraction[short], s3[short]
        base = s["seconds"] + s["store_seconds"]  # the same head training, plus the encoder on every batch
        print(f"  {short}: extraction {e['seconds']:.0f} s ({e['how']}); store sweep {s['runs']} runs in "
              f"{s['store_seconds']:.0f} s; s3prl way {base:,.0f} s = {s['encodings']:,} clip encodings x "
              f"{s['per_clip']:.3f} s/clip (measured on {args.time_clips} clips) + the same training")
        print(f"  {short}: ratio s3prl way / (extraction + store sweep) = "
              f"{base / (e['seconds'] + s['store_seconds']):,.0f}x; sweep only (store reads vs encoder) "
              f"{base / max(s['store_seconds'], 1e-9):,.0f}x")
    if sweep_wall:
        print("  sweep wall time this invocation: " + ", ".join(f"{k} {v:.0f} s" for k, v in sweep_wall.items()))
    summary = {"rows": rows, "extraction": extraction, "s3prl_way": s3, "emobox_runs": ran_emobox,
               "sweep_wall": sweep_wall,
               "total_seconds": time.perf_counter() - t_all}
    (work / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"total wall time {time.perf_counter() - t_all:.0f} s; summary in {work / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
