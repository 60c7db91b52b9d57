"""``emostore partition``: folds of train/dev/test ids by a benchmark's rule."""

from __future__ import annotations

import click

from emostore.commands import _choices


@click.command()
@click.argument("corpus")
@click.argument("manifest", type=click.Path(exists=True))
@click.option("--rule", required=True, type=_choices.partition_rules(),
              help="emo-superb: the paper's session tables / official sets; emobox: EmoBox's speaker rules; "
              "official: only the corpus's official split.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Partition JSON to write (metadata goes to NAME.meta.json).")
@click.option("--seed", default=0, show_default=True, help="Seed for the random parts (EmoBox test/dev draws).")
def partition(corpus, manifest, rule, out, seed):
    """Split MANIFEST of CORPUS into folds of train/dev/test ids by a benchmark's RULE.

    Writes {"fold1": {"train": [...], "dev": [...], "test": [...]}, ...} to --out and the rule,
    seed, class-map version and speaker-independence to the sibling NAME.meta.json. A partition
    that should be speaker-independent but shares speakers between train/dev and test is refused.
    """
    from emostore.manifests import load_manifest
    from emostore.manifests.partitions import make_partition, meta_path, write_partition

    p = make_partition(corpus, load_manifest(manifest, require_audio=False), rule, seed=seed)
    write_partition(p, out)
    sizes = ", ".join(f"{name} {s['train']}/{s['dev']}/{s['test']}" for name, s in p.meta["sizes"].items())
    kind = "speaker-independent" if p.speaker_independent else "speaker-dependent"
    click.echo(f"{out}: {len(p)} folds ({kind}; train/dev/test {sizes}); metadata in {meta_path(out)}")


def register(group: click.Group) -> None:
    group.add_command(partition)
