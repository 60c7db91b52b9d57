"""``emostore partition``: folds of train/dev/test ids by a benchmark's rule."""

from __future__ import annotations

import click

from emostore.commands import _choices


@click.command()
@click.argument("corpus")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--rule", required=True, type=_choices.partition_rules(),
              help="emo-superb: EMO-SUPERB's published splits (IEMOCAP, CREMA-D, MSP-IMPROV, NNIME; MSP-Podcast with "
              "--from); emo-superb-paper: the session tables the EMO-SUPERB paper prints / official sets; emobox: EmoBox's published fold lists "
              "(EmoDB, CREMA-D, RAVDESS, IEMOCAP; MSP-Podcast with --from); emobox-rule: the EmoBox paper's stated "
              "speaker rules, for any corpus; official: only the corpus's official split.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Partition JSON to write (metadata goes to NAME.meta.json).")
@click.option("--seed", default=None, type=int,
              help="Seed for the random parts [default: 1993 for emobox (EmoBox's recipe dev split), else 0].")
@click.option("--from", "source_dir", default=None, type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="emobox / emo-superb: read the published folds from this EmoBox / EMO-SUPERB checkout instead "
                   "of emostore's shipped copy.")
@click.option("--allow-mismatch", is_flag=True, default=None,
              help="emobox / emo-superb: use the published folds restricted to the manifest when it lacks published ids (counted in the meta).")
@click.option("--allow-extra", is_flag=True, default=None,
              help="emobox / emo-superb: leave manifest rows that no published list names out of every fold (counted in the meta).")
def partition(corpus, manifest, rule, out, seed, source_dir, allow_mismatch, allow_extra):
    """Split MANIFEST of CORPUS into folds of train/dev/test ids by a benchmark's RULE.

    Writes {"fold1": {"train": [...], "dev": [...], "test": [...]}, ...} to --out and the rule,
    seed, class-map version and speaker-independence to the sibling NAME.meta.json. A partition
    that should be speaker-independent but shares speakers between train/dev and test is refused.
    """
    from emostore.manifests import load_manifest
    from emostore.manifests.partitions import make_partition, meta_path, write_partition

    p = make_partition(corpus, load_manifest(manifest, require_audio=False), rule, seed=seed,
                       source_dir=source_dir, allow_mismatch=allow_mismatch or None, allow_extra=allow_extra or None)
    write_partition(p, out)
    sizes = ", ".join(f"{name} {s['train']}/{s['dev']}/{s['test']}" for name, s in p.meta["sizes"].items())
    kind = "speaker-independent" if p.speaker_independent else "speaker-dependent"
    click.echo(f"{out}: {len(p)} folds ({kind}; train/dev/test {sizes}); metadata in {meta_path(out)}")


def register(group: click.Group) -> None:
    group.add_command(partition)
