"""``emostore leaderboard | crossrule | layers | report | compare``: thin commands over :mod:`emostore.analysis`.

The commands are defined here and attached to the ``emostore`` group by :func:`register`, which
``emostore/cli.py`` calls (so this module never imports cli.py). Library
imports happen inside the commands: ``emostore --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from emostore.commands import _choices

RESULTS = click.argument("results", type=click.Path(exists=True))
METRIC_HELP = ("Metric: macro_f1 (EMO-SUPERB multi-label F1, share > 1/C) | ua | wa | macro_f1_single (argmax F1) "
               "| kld | jsd (kld, jsd: lower is better). Default: the --protocol's metrics (leaderboard, report: a "
               "table each; crossrule, layers, compare: the primary one).")
PROTOCOL_HELP = ("Benchmark whose metrics to report when --metric is not given: emo-superb (macro_f1, multi-label) "
                 "or emobox (ua, wa, macro_f1_single; UA primary). Default: emobox when every label set is "
                 "single-label (one class per clip, e.g. EmoDB), else emo-superb.")
FORMATS = ["md", "csv", "html"]


def _metric(f):
    f = click.option("--protocol", type=click.Choice(["emo-superb", "emobox"]), default=None,
                     help=PROTOCOL_HELP)(f)
    return click.option("--metric", "-m", default=None, metavar="NAME", help=METRIC_HELP)(f)


def _metrics(metric: str | None, protocol: str | None, results=None, labels=None) -> tuple[str, ...]:
    """--metric, else the protocol's metrics (primary first; without --protocol, the one the label
    sets of RESULTS, or ``labels``, call for), as the analysis error class."""
    from emostore.analysis import AnalysisError, load_runs
    from emostore.evaluate import EvaluationError
    from emostore.evaluate.protocols import pick_metrics

    sets = [labels] if labels else []
    if metric is None and protocol is None and results is not None:
        sets = load_runs(results)["labels"].tolist()
    try:
        return pick_metrics(metric, protocol, sets)
    except EvaluationError as exc:
        raise AnalysisError(str(exc)) from None


def _by(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


BY_HELP = ("Columns added to each condition, comma-separated, from rule, head, features, preset (corpus, and rule "
           "when the runs use several rules, are always in): --by head gives one column per head.")


def _boot_options(minimum: int, help_text: str):
    def decorate(f):
        f = click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")(f)
        return click.option("--n-boot", default=_choices.N_BOOT, show_default=True, type=click.IntRange(minimum),
                            help=help_text)(f)

    return decorate


_bootstrap = _boot_options(0, "Bootstrap replicates for the 95% CIs (0: no CI).")
_paired_bootstrap = _boot_options(1, "Paired bootstrap replicates.")


def _emit(text: str, out: str | None) -> None:
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    from emostore.outputs import write_text

    write_text(out, text)
    click.echo(f"wrote {out}", err=True)


def _fmt_from(fmt: str | None, out: str | None) -> str:
    """--format, else the --out file's suffix (.md/.csv/.html), else Markdown."""
    if fmt:
        return fmt
    suffix = Path(out).suffix.lstrip(".").lower() if out else ""
    return {"htm": "html", "markdown": "md"}.get(suffix, suffix) if suffix in (*FORMATS, "htm", "markdown") else "md"


@click.command("leaderboard")
@RESULTS
@_metric
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: from --out's suffix, else md).")
@click.option("--by", default=None, metavar="COLS", help=BY_HELP)
@click.option("--head", default=None, help="Only runs of this head (e.g. weighted-sum).")
@click.option("--rule", default=None, help="Only runs trained on this label-set rule (e.g. mr).")
@click.option("--out", "-o", default=None, type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
def leaderboard_cmd(results, metric, protocol, fmt, by, head, rule, out):
    """Encoders × corpora table of RESULTS (EMO-SUPERB Table 2 layout), one per metric.

    RESULTS is a sweep directory or its results.sqlite. Per cell: the setting with the lowest mean
    dev loss (selection never looks at test scores), its test metric averaged over seeds, then
    folds, ± the std across folds, n = runs, and the head of that setting. Average and Rank only
    for encoders with every cell; the others follow below a line with their partial average.
    """
    from emostore.analysis import format_leaderboards, leaderboard

    boards = [leaderboard(results, m, by=_by(by), head=head, rule=rule) for m in _metrics(metric, protocol, results)]
    _emit(format_leaderboards(boards, _fmt_from(fmt, out)), out)


@click.command("crossrule")
@RESULTS
@_metric
@_bootstrap
@click.option("--select", type=click.Choice(["dev", "all"]), default="dev", show_default=True,
              help="dev: the settings that won dev-loss selection for some training rule; all: every setting "
                   "trained on two or more rules.")
@click.option("--labels", "overrides", multiple=True, metavar="RULE=PATH",
              help="Label set to test RULE on (default: the one the table's runs trained on). Repeatable.")
@click.option("--head", default=None, help="Only this head (default: a matrix per head).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="md/html: one matrix per model; csv: the long table (default: from --out's suffix, else md).")
@click.option("--out", "-o", default=None, type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
def crossrule_cmd(results, metric, protocol, n_boot, seed, select, overrides, head, fmt, out):
    """Train-rule × test-rule matrix of RESULTS (all-inclusive-rule paper, Tables 4–6).

    For runs that differ only by their label-set rule (MR, PR, AR...), each run's predictions are
    scored on every rule's label set over its fold's test utterances; cells are averaged over folds
    and seeds, with 95% bootstrap CIs. One matrix per encoder, corpus and head (dev selection per
    head). Needs runs on two or more rules: one --labels per rule in the sweep. Metric: --metric,
    else the protocol's primary one.
    """
    from emostore.analysis import AnalysisError, crossrule, format_crossrule

    sets = {}
    for item in overrides:
        rule, sep, path = item.partition("=")
        if not sep or not rule or not path:
            raise AnalysisError(f"--labels takes RULE=PATH, got {item!r}")
        sets[rule] = path
    cross = crossrule(results, _metrics(metric, protocol, results)[0], n_boot=n_boot, seed=seed, select=select,
                      label_sets_by_rule=sets, head=head)
    _emit(format_crossrule(cross, _fmt_from(fmt, out)), out)


@click.command("layers")
@RESULTS
@_metric
@_bootstrap
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False),
              help="Folder for layers.csv, layer_matrix.csv, probes.csv and the figures (PNG + SVG); "
                   "without it the tables are printed.")
def layers_cmd(results, metric, protocol, n_boot, seed, out):
    """Layer-wise analysis of RESULTS: learned layer weights and per-layer probe curves.

    Layer weights: the weighted-sum heads' softmax weights per layer (dev-selected setting, mean ±
    std over folds and seeds). Probe curves: the metric of a linear probe on each layer, with 95%
    bootstrap CIs. Either part may be absent; at least one must be there.
    """
    from emostore.analysis.layer_files import layer_analysis, write_layer_files

    la = layer_analysis(results, _metrics(metric, protocol, results)[0], n_boot=n_boot, seed=seed)
    for note in la.notes:
        click.echo(f"note: {note}", err=True)
    if out is None:
        for name, df in (("layers", la.weights), ("layer_matrix", la.matrix), ("probes", la.probes)):
            if df is not None:
                click.echo(f"# {name}\n{df.to_string()}\n")
        return
    write_layer_files(la, out, out)
    written = [*la.tables.values(), *(p for paths in la.figures.values() for p in paths)]
    click.echo("\n".join(str(p) for p in written))


@click.command("report")
@RESULTS
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder to write the report to.")
@_metric
@_bootstrap
@click.option("--by", default=None, metavar="COLS", help=BY_HELP)
@click.option("--title", default="emostore sweep report", show_default=True, help="Page title.")
def report_cmd(results, out, metric, protocol, n_boot, seed, by, title):
    """One static HTML report of RESULTS: OUT/index.html plus its tables and figures.

    Leaderboards (one per metric of the protocol, Markdown, CSV, HTML), cross-rule matrices per head
    (when the runs use two or more rules), layer weights per encoder and probe curves, per-model
    confusion matrices and learning curves, failed runs with their errors, and summary.json. Plain
    HTML, relative links: the folder opens anywhere.
    """
    from emostore.analysis import write_report

    files = write_report(results, out, metric=metric, n_boot=n_boot, seed=seed, title=title, protocol=protocol,
                         by=_by(by))
    click.echo(f"{Path(out) / 'index.html'}: {len(files)} files, {files['bytes'].sum() / 1024:.0f} KiB")


@click.command("compare")
@click.argument("pred_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("pred_b", type=click.Path(exists=True, dir_okay=False))
@click.option("--labels", "-l", "labels_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Label set both are scored on.")
@_metric
@_paired_bootstrap
@click.option("--partition", default=None, type=click.Path(exists=True, dir_okay=False),
              help="With --fold: score only that fold's test utterances (what a run predicts).")
@click.option("--fold", default=None, help="Fold of --partition.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def compare_cmd(pred_a, pred_b, labels_path, metric, protocol, n_boot, seed, partition, fold, as_json):
    """Paired bootstrap test: are predictions PRED_A better than PRED_B?

    Both are scored on the same utterances of the label set; each bootstrap replicate resamples
    them once for both. delta > 0 means A is better (for kld and jsd: lower); p is the one-sided
    p-value of "A is better than B", (1 + replicates where A is not better) / (n-boot + 1): at least
    1/(n-boot + 1), printed as that bound when A was better in every replicate.
    """
    from emostore.analysis import compare_predictions
    from emostore.evaluate.bootstrap import format_p

    metric = _metrics(metric, protocol, labels=labels_path)[0]
    r = compare_predictions(pred_a, pred_b, labels_path, metric, n_boot=n_boot, seed=seed,
                            partition=partition, fold=fold).iloc[0].to_dict()
    if as_json:
        click.echo(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}))
        return
    click.echo(f"{metric}: A {r['a']:.4f}, B {r['b']:.4f}; delta {r['delta']:+.4f} "
               f"(95% CI [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]; > 0: A better)")
    click.echo(f"{format_p(r['p_value'], r['n_boot'])} (one-sided, H1: A better than B; {r['n_boot']} paired replicates, "
               f"seed {r['seed']}, {r['n']} utterances)")


COMMANDS = (leaderboard_cmd, crossrule_cmd, layers_cmd, report_cmd, compare_cmd)


def register(group: click.Group) -> None:
    """Add the analysis commands to ``group``."""
    for cmd in COMMANDS:
        group.add_command(cmd)
