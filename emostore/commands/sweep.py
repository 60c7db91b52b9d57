"""``emostore sweep``: many training configs from the store(s), one results table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from emostore.commands import _choices
from emostore.commands._progress import progress_factory, quiet_option
from emostore.commands._training import bounded_type, grid_value, threads_option, train_options
from emostore.heads.config import Execution


@click.command()
@click.argument("spec_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--store", "stores", multiple=True, help="Feature store(s) (a grid axis when repeated).")
@click.option("--labels", "label_sets", multiple=True, help="Label set(s).")
@click.option("--partition", "partitions", multiple=True, help="Partition file(s).")
@click.option("--fold", "folds", multiple=True, metavar="NAME|all",
              help="Fold name(s); `all`: every fold of the partition.")
@click.option("--head", "heads", multiple=True, type=_choices.heads(),
              help="Head(s).")
@train_options(multiple=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Sweep folder: runs/<run id>/ per run, results.sqlite (live), sweep.json. One sweep writes "
                   "a folder at a time.")
@click.option("--jobs", "-j", type=bounded_type(Execution, "jobs"), default=None,
              help="Groups of runs in parallel in local processes [default: one per core, at most 8; a sweep "
                   "of one run trains in this process].")
@threads_option
@click.option("--scheduler", default=None, help="Dask distributed scheduler address (tcp://host:8786) to run on "
              "instead of local processes; every worker must see the store and label files.")
@click.option("--no-group", is_flag=True, help="Train runs one at a time instead of grouping the runs that read the "
              "same features into one stacked module (the results are the same; grouped is faster).")
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is done; run nothing.")
@quiet_option
def sweep(spec_file, stores, label_sets, partitions, folds, heads, out, jobs, threads, scheduler, no_group, dry_run,
          quiet, **settings):
    """Train many configs from the store(s) and gather one results table.

    SPEC_FILE (TOML, YAML or JSON) holds settings; a list is a grid axis, [[runs]] tables are
    sub-grids (see docs/sweeps.md). An option replaces the file's value of that setting everywhere,
    [[runs]] tables included; a repeated option is a grid axis. Every run's inputs are checked
    before any is trained (layers, label-set coverage, class counts). Finished runs are skipped on
    re-run; a run failing in training is recorded with its error and the sweep goes on. The table
    is updated as runs finish: `emostore leaderboard OUT` works during the sweep and says how
    many runs are missing. Read it with `emostore.sweep.load_results(OUT)` (pandas) or any SQLite
    client.
    """
    from emostore.sweep.config import expand, read_spec
    from emostore.sweep.results import RUN_FILE, RUNS_DIR

    spec = read_spec(spec_file) if spec_file else {}
    given = {"store": stores, "labels": label_sets, "partition": partitions, "fold": folds, "head": heads,
             **settings}
    overrides = {}
    for key, values in given.items():
        if values:
            values = [grid_value(key, v) for v in values]
            overrides[key] = values if len(values) > 1 else values[0]
    runs = expand(spec, overrides=overrides)
    done = {r.run_id for r in runs if (Path(out) / RUNS_DIR / r.run_id / RUN_FILE).exists()}
    if dry_run:
        for r in runs:
            click.echo(f"{'done' if r.run_id in done else 'todo'}  {r.run_id}")
        click.echo(f"{len(runs)} runs")
        return
    click.echo(f"{out}: {len(runs)} runs planned, {len(runs) - len(done)} to train "
               f"({len({r.store for r in runs})} store(s), {len({r.labels for r in runs})} label set(s)); "
               "checking their inputs", err=True)
    from emostore.sweep.runner import run_sweep  # the training code (torch on first use): after the plan

    summary = run_sweep(runs, out, jobs=jobs or Execution.cores(), scheduler=scheduler, progress=progress_factory(quiet),
                        log=lambda m: click.echo(m, err=True), threads=threads,
                        group=not no_group)
    click.echo(f"{out}: {summary.total} runs: {summary.done} trained, {summary.skipped} already done, "
               f"{summary.failed} failed in {summary.seconds:.1f} s; table {summary.results}")
    if summary.failed:
        sys.exit(1)


def register(group: click.Group) -> None:
    group.add_command(sweep)
