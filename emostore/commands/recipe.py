"""``emostore recipe``: the whole pipeline in one command (manifest → partition → labels → extraction → sweep → report)."""

from __future__ import annotations

import click

from emostore.commands import _choices
from emostore.commands._progress import progress_factory, quiet_option


@click.command()
@click.argument("corpus", required=False)
@click.argument("root", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--encoder", "-e", "encoders", multiple=True, metavar="NAME[:PATH]",
              help="Encoder to extract with; repeat for several [default: ct2-whisper and fbank].")
@click.option("--rule", type=_choices.partition_rules(), default="emobox", show_default=True,
              help="Partition rule (emobox: EmoBox's published folds).")
@click.option("--labels", "label_rules", multiple=True, type=_choices.label_rules(),
              help="Label aggregation rule; repeat for several [default: mr].")
@click.option("--head", "heads", multiple=True, type=_choices.heads(),
              help="Head to sweep; repeat for several [default: weighted-sum, ar-mlp, probe over every layer, emobox].")
@click.option("--lr", "lrs", multiple=True, type=float, help="Learning rate grid [default: each head's default].")
@click.option("--out", "-o", default="emostore-recipe", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every output (manifest, partition, labels, stores, sweep, report).")
@click.option("--jobs", default=None, type=click.IntRange(1),
              help="Training processes in parallel [default: one per core, at most 8; results do not depend on it].")
@click.option("--device", default="cpu", show_default=True, help="Device for extraction and training (cpu, cuda, cuda:N).")
@click.option("--allow-mismatch", is_flag=True, default=None,
              help="emobox: use EmoBox's published folds restricted to the manifest when it lacks published ids "
                   "(on by default for the bundled subset).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Adapter option (see `manifest build`).")
@click.option("--n-boot", default=_choices.N_BOOT, show_default=True, type=click.IntRange(0), help="Bootstrap replicates for the CIs.")
@quiet_option
def recipe(corpus, root, encoders, rule, label_rules, heads, lrs, out, jobs, device, allow_mismatch, options, n_boot,
           quiet):
    """Run everything: extract once, sweep heads from the store, write the report and a results table.

    With no CORPUS the recipe runs on the EmoDB subset bundled with emostore (135 real clips, all 10
    speakers and 7 emotions): EmoBox's published EmoDB folds restricted to those clips, MR labels,
    Whisper tiny.en and FBANK stores, a sweep of weighted-sum, ar-mlp, per-layer probes and the
    EmoBox head over every fold, the HTML report and a UA / WA / macro-F1 table with 95 % CIs.
    With CORPUS ROOT it runs the same on a corpus in its native layout (see `emostore manifest
    classes`). A second run reuses every store and finished training run.
    """
    from emostore.heads.config import Execution
    from emostore.manifests.build import parse_options
    from emostore.recipe.pipeline import DEFAULT_ENCODERS, DEFAULT_HEADS, RecipeOptions, format_summary, run_recipe

    if (corpus is None) != (root is None):
        raise click.UsageError("give both CORPUS and ROOT, or neither (the bundled EmoDB subset)")
    opts = RecipeOptions(
        corpus=corpus or "emodb", root=root, out=out, encoders=encoders or DEFAULT_ENCODERS, rule=rule,
        label_rules=label_rules or ("mr",), heads=heads or DEFAULT_HEADS, lrs=lrs, jobs=jobs or Execution.cores(),
        device=device,        allow_mismatch=allow_mismatch, n_boot=n_boot, adapter_options=parse_options(options),
    )
    result = run_recipe(opts, log=lambda line: click.echo(line, err=True), progress=progress_factory(quiet))
    click.echo(format_summary(result.summary))
    click.echo(f"\nreport: {result.report}\ntable:  {result.out / 'summary.md'}")


def register(group: click.Group) -> None:
    group.add_command(recipe)
