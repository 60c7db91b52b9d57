"""``emostore store info | verify | export | import``: inspect, check and convert feature stores."""

from __future__ import annotations

import json
import sys

import click

from emostore.commands import _choices


@click.group()
def store():
    """Inspect, check and convert feature stores."""


@store.command()
@click.argument("path", type=_choices.STORE)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def info(path, as_json):
    """Summarise a store: corpus, encoder, N, L, D, bytes, errors.

    Also checks that every stored object the done rows need is there and readable (exit 1 and a
    `problem:` line each when not; `store verify` checks the contents)."""
    from emostore.store import open as open_store
    from emostore.store.summary import format_summary, summarise
    from emostore.store.verify import object_problems

    fs = open_store(path)
    summary = summarise(fs, path)
    problems = object_problems(fs)
    if as_json:
        summary["problems"] = problems
    click.echo(json.dumps(summary) if as_json else format_summary(summary, fs.errors))
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    if problems:
        sys.exit(1)


@store.command("verify")
@click.argument("path", type=_choices.STORE)
@click.option("--manifest", type=click.Path(exists=True), default=None,
              help="Also check the store was made from it (or from a manifest with the same ids and audio).")
def verify_cmd(path, manifest):
    """Check offsets, done mask, shapes, NaNs and (with --manifest) that the store was made from MANIFEST.

    Another manifest of the same clips (a folder scan vs an adapter's JSONL) passes with a note
    when its ids and audio files agree with those the store was made from.
    """
    from emostore.manifests import load_manifest
    from emostore.store import open as open_store, verify

    notes: list[str] = []
    problems = verify(open_store(path), load_manifest(manifest) if manifest else None, notes=notes)
    for n in notes:
        click.echo(f"note: {n}", err=True)
    for p in problems:
        click.echo(f"problem: {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{path}: OK")


@store.command("export")
@click.argument("path", type=_choices.STORE)
@click.option("--hdf5", "hdf5_out", required=True, type=click.Path(), help="HDF5 file to write.")
def export_cmd(path, hdf5_out):
    """Export a store to one HDF5 file (h5py), for tools that do not read Zarr."""
    from emostore.store import export_hdf5, open as open_store

    export_hdf5(open_store(path), hdf5_out)
    click.echo(f"wrote {hdf5_out}")


@store.command("import")
@click.argument("hdf5_file", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="Zarr store to create.")
def import_cmd(hdf5_file, out):
    """Import an HDF5 export back into a Zarr store."""
    from emostore.store import import_hdf5

    import_hdf5(hdf5_file, out)
    click.echo(f"wrote {out}")


def register(group: click.Group) -> None:
    group.add_command(store)
