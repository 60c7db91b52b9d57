"""``emostore train``: one head on one fold, from the feature store."""

from __future__ import annotations

import click

from emostore.commands import _choices
from emostore.commands._progress import progress_factory, quiet_option
from emostore.commands._training import threads_option, train_options


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
@threads_option
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
    the last one (the dev loss was still falling). Inputs are checked first (the layer is in the
    store, the label set covers the fold, class counts agree): nothing is written before; a run
    that fails leaves no folder it created.
    """
    from pathlib import Path

    from emostore.heads.config import Execution, config_from
    from emostore.heads.preflight import check_inputs
    from emostore.labels.aggregate import read_label_set
    from emostore.manifests.partitions import read_partition

    folds = list(read_partition(partition_path).folds) if fold == "all" else [fold]
    records, _ = read_label_set(labels)
    cfgs = {name: config_from(head=head, fold=name, **settings) for name in folds}
    for cfg in cfgs.values():
        check_inputs(store_path, labels, partition_path, cfg, allow_overlap)
    from emostore.heads.report import fold_mean, format_estimates, last_epoch_warning, test_estimates
    from emostore.heads.train import run

    make = progress_factory(quiet)
    threads = Execution(threads=threads).threads_per_run()
    per_fold = {}
    for name, cfg in cfgs.items():
        run_out = Path(out) / name if fold == "all" else Path(out)
        res = _run_or_clean(run_out, lambda: run(store_path, labels, partition_path, cfg, run_out, progress=make,
                                                 tensorboard=tensorboard, threads=threads,
                                                 allow_overlap=allow_overlap))
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


def _run_or_clean(out, train):
    """``train()``; if it raises, remove ``out`` when this call created it (a failed run leaves no folder)."""
    import shutil

    created = not out.exists()
    try:
        return train()
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def register(group: click.Group) -> None:
    group.add_command(train)
