"""``emostore train``: one head on one fold, from the feature store."""

from __future__ import annotations

import sys

import click

from emostore.commands import _choices
from emostore.commands._training import train_options


@click.command()
@click.option("--store", "store_path", required=True, type=click.Path(exists=True), help="Feature store (.zarr).")
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False), help="Label set (JSONL).")
@click.option("--partition", "partition_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Partition JSON ({fold: {train, dev, test}}).")
@click.option("--fold", required=True, help="Fold name in the partition.")
@click.option("--head", type=_choices.heads(), default=None,
              help="Head to train (required unless --preset names one).")
@train_options()
@click.option("--progress/--no-progress", default=None, help="Epoch progress bar [default: on a terminal].")
@click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
              help="Write TensorBoard scalars (loss/train, loss/dev, lr, layer weights) to OUT/tb.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads for this run (recorded in run.json) [default: torch's, one per core].")
@click.option("--allow-overlap", is_flag=True,
              help="Train even if the fold has ids in both train and test (or dev and test); refused otherwise.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
def train(store_path, labels, partition_path, fold, head, progress, tensorboard, threads, allow_overlap, out,
          **settings):
    """Train one head on one fold from the store; keep the epoch with the lowest dev loss.

    Writes OUT/run.json (config, versions, store/label/partition hashes, learning curves, selected
    epoch, test metrics), OUT/model.pt, OUT/predictions.jsonl (every test utterance of the fold:
    {"id", "probs"}), OUT/tb (TensorBoard) and, for weighted-sum, OUT/layer_weights.json.
    """
    from emostore.heads.train import config_from, run

    cfg = config_from(head=head, fold=fold, **settings)
    show = sys.stderr.isatty() if progress is None else progress
    res = run(store_path, labels, partition_path, cfg, out, log=None if show else click.echo, progress=show,
              tensorboard=tensorboard, threads=threads, allow_overlap=allow_overlap)
    click.echo(f"{out}: {cfg.head} on {res.features} features, selected epoch {res.selected_epoch} of "
               f"{len(res.dev_losses)} (dev loss {res.dev_losses[res.selected_epoch - 1]:.4f}), "
               f"{len(res.test_ids)} test predictions")


def register(group: click.Group) -> None:
    group.add_command(train)
