"""``emostore labels aggregate | stats``: per-rater ratings -> MR / PR / AR label sets."""

from __future__ import annotations

import json

import click

from emostore.commands import _choices


@click.group()
def labels():
    """Turn per-rater ratings into label sets (MR / PR / AR) and report what each rule loses."""


@labels.command("aggregate")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--rule", required=True, type=_choices.label_rules(),
              help="mr: > half of all ratings; pr: most votes, ties excluded; ar: vote distribution.")
@click.option("--classes", default=None, metavar="A,B,C",
              help="Class order (default: the corpus's class map, else the sorted rating values). "
                   "Ratings outside it count as 'other'.")
@click.option("--smoothing", default=0.0, show_default=True, type=float,
              help="Label smoothing x of train targets: t*(1-x) + x/C (EMO-SUPERB: 0.05).")
@click.option("--soft", is_flag=True, help="MR/PR: train on the vote distribution of the kept utterances.")
@click.option("--test", "test_mode", type=click.Choice(["onehot", "share"]), default="onehot", show_default=True,
              help="MR/PR test targets: one-hot of the kept class, or classes whose share exceeds 1/C "
                   "(AR always uses the share rule).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="JSONL label set to write (class order and options go to OUT.meta.json).")
@click.option("--strict", is_flag=True, help="Refuse ratings that match no class or known label (else: counted, reported).")
@click.option("--allow-all-excluded", is_flag=True,
              help="Write the label set even when every row is excluded (refused otherwise: it trains nothing).")
def labels_aggregate(manifest, rule, classes, smoothing, soft, test_mode, out, strict, allow_all_excluded):
    """Aggregate MANIFEST's ratings under one rule: one JSONL row per utterance (excluded ones too).

    Each row: id, train (distribution in class order), test (0/1 list), excluded (null or the
    reason). Reads only the rows' id and ratings, so rating tables without audio work too.
    """
    from emostore.labels.aggregate import aggregate_manifest, unknown_note, write_label_set

    records, meta = aggregate_manifest(manifest, rule, _choices.class_list(classes), soft=soft, smoothing=smoothing,
                                       test=test_mode, strict=strict, allow_all_excluded=allow_all_excluded)
    write_label_set(out, records, meta)
    if unknown_note(meta):
        click.echo(f"warning: {unknown_note(meta)}", err=True)
    excluded = meta["excluded"]
    click.echo(f"wrote {out}: {len(records)} utterances, {excluded} excluded "
               f"({100 * excluded / len(records):.2f}%), rule {rule.upper()}, classes {','.join(meta['classes'])}")


@labels.command("stats")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--classes", default=None, metavar="A,B,C", help="Class set (default as in `labels aggregate`).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def labels_stats(manifest, classes, as_json):
    """Data loss and rating loss of MR, PR and AR on MANIFEST (the all-inclusive-rule paper's Table 3).

    Data loss: share of utterances excluded. Rating loss: share of all ratings that reach no kept
    target (ratings of excluded utterances, ratings disagreeing with a kept MR/PR label, ratings
    outside the class set).
    """
    from emostore.labels.stats import PAPER_TABLE3_AVERAGE, format_losses, manifest_loss_table

    losses, cs = manifest_loss_table(manifest, _choices.class_list(classes))
    if as_json:
        click.echo(json.dumps({"manifest": manifest, "classes": list(cs.classes),
                               "rules": {r.rule: r.to_json() for r in losses},
                               "paper_table3_average_percent": PAPER_TABLE3_AVERAGE}, indent=1))
    else:
        click.echo(f"classes  {', '.join(cs.classes)}")
        click.echo(format_losses(losses))


def register(group: click.Group) -> None:
    group.add_command(labels)
