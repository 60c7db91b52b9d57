"""``emostore train``: one head on one fold, from the feature store."""

from __future__ import annotations

import click

from emostore.commands import _choices
from emostore.commands._progress import progress_factory, quiet_option
from emostore.commands._training import train_options


@click.command()
@click.option("--store", "store_path", required=True, type=_choices.STORE,
              help="Feature store (a .zarr folder or an fsspec URL such as s3://bucket/x.zarr).")
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False), help="Label set (JSONL).")
@click.option("--partition", "partition_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Partition JSON ({fold: {train, dev, test}}).")
@click.option("--fold", required=True, metavar="NAME|all",
              help="Fold name in the partition; `all`: every fold, each into OUT/<fold>/, then the mean over folds.")
@click.option("--head", type=_choices.heads(), default=None,
              help="Head to train (required unless --preset names one).")
@train_options()
@quiet_option
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
              help="Write TensorBoard scalars (loss/train, loss/dev, lr, layer weights) to OUT/tb.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads for this run (recorded in run.json) [default: 1, so the numbers do not depend "
                   "on the machine's core count; more threads can change their last bits].")
@click.option("--allow-overlap", is_flag=True,
              help="Train even if the fold has ids in both train and test (or dev and test); refused otherwise.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
def train(store_path, labels, partition_path, fold, head, quiet, tensorboard, threads, allow_overlap, out,
          **settings):
    """Train one head on one fold from the store; keep the epoch with the lowest dev loss.

    Writes OUT/run.json (config, versions, store/label/partition hashes, learning curves, selected
    epoch, test metrics), OUT/model.pt, OUT/predictions.jsonl (every test utterance of the fold:
    {"id", "probs"}), OUT/tb (TensorBoard) and, for weighted-sum, OUT/layer_weights.json.
    Ends by printing the test metrics with 95% bootstrap CIs, and warns when the kept epoch is
    the last one (the dev loss was still falling).
    """
    from pathlib import Path

    from emostore.heads.report import fold_mean, format_estimates, last_epoch_warning, test_estimates
    from emostore.heads.config import config_from
    from emostore.heads.train import run
    from emostore.labels.aggregate import read_label_set
    from emostore.manifests.partitions import read_partition

    folds = list(read_partition(partition_path).folds) if fold == "all" else [fold]
    records, _ = read_label_set(labels)
    make = progress_factory(quiet)
    per_fold = {}
    for name in folds:
        cfg = config_from(head=head, fold=name, **settings)
        run_out = Path(out) / name if fold == "all" else Path(out)
        res = run(store_path, labels, partition_path, cfg, run_out, progress=make, tensorboard=tensorboard,
                  threads=threads, allow_overlap=allow_overlap)
        click.echo(f"{run_out}: {cfg.head} on {res.features} features, selected epoch {res.selected_epoch} of "
                   f"{len(res.dev_losses)} (dev loss {res.dev_losses[res.selected_epoch - 1]:.4f}), "
                   f"{len(res.test_ids)} test predictions")
        warning = last_epoch_warning(res)
        if warning:
            click.echo(warning, err=True)
        est, n = test_estimates(res, records)
        per_fold[name] = est
        click.echo(format_estimates(est, n))
    if fold == "all":
        click.echo(fold_mean(per_fold))


def register(group: click.Group) -> None:
    group.add_command(train)
