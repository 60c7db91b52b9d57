"""``emostore lab extract PLAN`` and ``emostore catalog LAB``: every encoder x every corpus, once, catalogued."""

from __future__ import annotations

import json

import click

from emostore.commands._progress import progress_factory, quiet_option


@click.group()
def lab():
    """A lab: stores laid out as LAB/<corpus>/<encoder>.zarr beside LAB/<corpus>/manifest.jsonl."""


@lab.command("extract")
@click.argument("plan", type=click.Path(exists=True, dir_okay=False))
@click.option("--lab", "lab_dir", default=None, metavar="LAB",
              help="The lab (a folder or fsspec URL); default: the plan's `lab:`.")
@click.option("--processes", type=click.IntRange(min=0), default=0, show_default=True,
              help="Encode on a local Dask cluster of N worker processes (0: in this process).")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="Encode on the Dask cluster at ADDRESS.")
@quiet_option
def extract_cmd(plan, lab_dir, processes, scheduler, quiet):
    """Extract every (corpus, encoder) pair of PLAN into the lab.

    PLAN (YAML or JSON) names corpora (`adapter` + `root`, or `manifest`) and encoders (an
    `--encoder` spec, or extraction settings). Finished stores are skipped, interrupted ones resume;
    a pair that fails is reported and the others go on. Ends with one line per pair: rows, failed
    clips, size, time. Exit status 1 if any pair failed.
    """
    from emostore.lab.plan import extract_plan, read_plan

    summaries = extract_plan(read_plan(plan), lab_dir, processes=processes, scheduler=scheduler,
                             progress=progress_factory(quiet), log=lambda m: click.echo(m, err=True))
    for s in summaries:
        click.echo(s.line())
    if any(s.error for s in summaries):
        raise click.ClickException(f"{sum(1 for s in summaries if s.error)} of {len(summaries)} pairs failed")


@click.command()
@click.argument("lab_dir", metavar="LAB")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of entries instead of the table.")
def catalog(lab_dir, as_json):
    """List what LAB holds: corpus x encoder, rows done/total, failed clips, size, status
    (complete / partial / failed), layers, extraction fingerprint (equal = same encoder settings),
    when last written."""
    from emostore.lab.catalog import catalog as read_catalog, format_catalog

    entries = read_catalog(lab_dir)
    click.echo(json.dumps(entries, indent=1) if as_json else format_catalog(entries))


@lab.command("matrix")
@click.argument("results", type=click.Path(exists=True))
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap replicates for the 95 % CIs (0: none).")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
def matrix_cmd(results, n_boot, seed, fmt):
    """The cross-corpus matrix (EmoBox Table 5) of RESULTS (a sweep directory or its results.sqlite):
    train corpus x test corpus, UA / WA / macro-F1 with 95 % CIs, per encoder and head."""
    from emostore.crosscorpus.matrix import cross_matrix, format_matrix

    click.echo(format_matrix(cross_matrix(results, n_boot=n_boot, seed=seed), fmt))


def register(group: click.Group) -> None:
    group.add_command(lab)
    group.add_command(catalog)
