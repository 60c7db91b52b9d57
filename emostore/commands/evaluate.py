"""``emostore evaluate``: score predictions on a label set (metrics with bootstrap CIs)."""

from __future__ import annotations

import json

import click

from emostore.commands import _choices


@click.command("evaluate")
@click.argument("pred", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", "labels_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Label set from `emostore labels aggregate` (its OUT.meta.json gives the class order).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--n-boot", default=_choices.N_BOOT, show_default=True, type=click.IntRange(0),
              help="Bootstrap replicates (utterance resampling) for the 95% CIs; 0 = no CIs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap draws.")
@click.option("--partition", default=None, type=click.Path(exists=True, dir_okay=False),
              help="With --fold: score only that fold's test utterances (what `emostore train` predicts).")
@click.option("--fold", default=None, help="Fold of --partition.")
def evaluate_cmd(pred, labels_path, as_json, n_boot, seed, partition, fold):
    """Score predictions PRED on a label set: macro-F1, UA, WA, KL and JS divergence with 95% CIs.

    PRED is JSONL, one {"id", "probs": [...]} per utterance, probs in the label set's class order
    (any model's output works). Multi-label macro-F1 binarises probs with share > 1/C against the
    test targets; UA / WA / single-label macro-F1 compare argmaxes; KL / JSD compare probs with the
    train targets. Excluded utterances are skipped and counted; labelled ids missing from PRED are
    an error. A run's predictions cover one fold's test part: give --partition and --fold.
    """
    from emostore.analysis.scoring import fold_test_ids
    from emostore.evaluate import evaluate_files, format_evaluation

    if (partition is None) != (fold is None):
        raise click.UsageError("give both --partition and --fold, or neither")
    ids = fold_test_ids(partition, fold) if partition else None
    ev = evaluate_files(pred, labels_path, n_boot=n_boot, seed=seed, ids=ids)
    click.echo(json.dumps(ev.to_json()) if as_json else format_evaluation(ev))


def register(group: click.Group) -> None:
    group.add_command(evaluate_cmd)
