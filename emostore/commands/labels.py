"""``emostore labels aggregate | stats``: per-rater ratings -> MR / PR / AR label sets."""

from __future__ import annotations

import json

import click

from emostore.commands import _choices
from emostore.labels.presets import PRESETS, SMOOTHING_CONVENTIONS


@click.group()
def labels():
    """Turn per-rater ratings into label sets (MR / PR / AR) and report what each rule loses."""


@labels.command("aggregate")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--rule", default=None, type=_choices.label_rules(),
              help="mr: > half of all ratings; pr: most votes, ties excluded; ar: vote distribution. "
                   "Required unless --preset gives it.")
@click.option("--preset", default=None, type=click.Choice(sorted(PRESETS)),
              help="A benchmark's published target recipe; options given explicitly override it. "
                   "emo-superb = --rule ar --smoothing 0.05 --smoothing-convention emo-superb --test share "
                   "(EMO-SUPERB's labels_consensus targets).")
@click.option("--classes", default=None, metavar="A,B,C",
              help="Class order (default: the corpus's class map, else the sorted rating values). "
                   "Ratings outside it count as 'other'.")
@click.option("--smoothing", default=None, type=float,
              help="Label smoothing x of train targets [default: 0, or the preset's].")
@click.option("--smoothing-convention", default=None, type=click.Choice(SMOOTHING_CONVENTIONS),
              help="uniform: t*(1-x) + x/C (the default); emo-superb: t*(1 - x*C/(C-1)) + x/(C-1), the formula of "
                   "EMO-SUPERB's published targets (x=0.05, C=6: 0.94*share + 0.01).")
@click.option("--soft", is_flag=True, help="MR/PR: train on the vote distribution of the kept utterances.")
@click.option("--test", "test_mode", type=click.Choice(["onehot", "share"]), default=None,
              help="MR/PR test targets: one-hot of the kept class (the default), or classes whose share exceeds 1/C "
                   "(AR always uses the share rule).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="JSONL label set to write (class order and options go to OUT.meta.json).")
@click.option("--strict", is_flag=True, help="Refuse ratings that match no class or known label (else: counted, reported).")
@click.option("--allow-all-excluded", is_flag=True,
              help="Write the label set even when every row is excluded (refused otherwise: it trains nothing).")
def labels_aggregate(manifest, rule, preset, classes, smoothing, smoothing_convention, soft, test_mode, out, strict,
                     allow_all_excluded):
    """Aggregate MANIFEST's ratings under one rule: one JSONL row per utterance (excluded ones too).

    Each row: id, train (distribution in class order), test (0/1 list), excluded (null or the
    reason). Reads only the rows' id and ratings, so rating tables without audio work too.
    """
    from emostore.labels.aggregate import aggregate_manifest, unknown_note, write_label_set

    given = {"rule": rule, "smoothing": smoothing, "smoothing_convention": smoothing_convention, "test": test_mode}
    opts = {"rule": None, "smoothing": 0.0, "smoothing_convention": "uniform", "test": "onehot",
            **(PRESETS[preset] if preset else {}), **{k: v for k, v in given.items() if v is not None}}
    if opts["rule"] is None:
        raise click.UsageError("give --rule (or a --preset)")
    records, meta = aggregate_manifest(manifest, opts["rule"], _choices.class_list(classes), soft=soft,
                                       smoothing=opts["smoothing"], test=opts["test"], strict=strict,
                                       smoothing_convention=opts["smoothing_convention"],
                                       allow_all_excluded=allow_all_excluded)
    if preset:
        meta["preset"] = preset
    write_label_set(out, records, meta)
    if unknown_note(meta):
        click.echo(f"warning: {unknown_note(meta)}", err=True)
    excluded = meta["excluded"]
    click.echo(f"wrote {out}: {len(records)} utterances, {excluded} excluded "
               f"({100 * excluded / len(records):.2f}%), rule {opts['rule'].upper()}, classes {','.join(meta['classes'])}")


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


@labels.group("import")
def labels_import():
    """Turn a benchmark's published labels into an emostore label set (and its partition)."""


@labels_import.command("emo-superb")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="JSONL label set to write (classes and sources go to OUT.meta.json).")
@click.option("--partition", "partition_out", required=True, type=click.Path(dir_okay=False),
              help="Partition JSON to write: fold k = labels_consensus_<k>'s Split_Set (metadata in NAME.meta.json).")
@click.option("--corpus", default=None, help="Corpus name recorded in both files' metadata (e.g. crema-d).")
@click.option("--manifest", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Check that this manifest has every published id (and record its sha256).")
def labels_import_emo_superb(files, out, partition_out, corpus, manifest):
    """EMO-SUPERB's published labels_consensus_<k>.csv FILES (one per fold, .csv or .csv.gz) -> a label
    set and a partition, in one step.

    Train targets are the published soft labels as written (EMO-SUPERB smooths vote shares as
    t*(1 - 0.05*C/(C-1)) + 0.05/(C-1)); test targets are the classes above 1/C; class order is the
    files' (e.g. CREMA-D: angry,sad,disgust,fear,neutral,happy). A clip whose label differs between
    the files is refused.
    """
    from emostore.labels.aggregate import write_label_set
    from emostore.labels.published import import_consensus
    from emostore.manifests import load_manifest
    from emostore.manifests.partitions import meta_path, write_partition

    m = load_manifest(manifest, require_audio=False) if manifest else None
    records, meta, part = import_consensus(list(files), corpus=corpus, manifest=m)
    write_label_set(out, records, meta)
    write_partition(part, partition_out)
    sizes = ", ".join(f"{name} {s['train']}/{s['dev']}/{s['test']}" for name, s in part.meta["sizes"].items())
    click.echo(f"wrote {out}: {len(records)} utterances, classes {','.join(meta['classes'])}; "
               f"{partition_out}: {len(part)} folds (train/dev/test {sizes}); metadata in {meta_path(partition_out)}")


def register(group: click.Group) -> None:
    group.add_command(labels)
