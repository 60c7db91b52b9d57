"""``emostore manifest build | check | classes``: corpus manifests from native layouts."""

from __future__ import annotations

import sys

import click


@click.group()
def manifest():
    """Build corpus manifests from native layouts, check them, show class maps."""


@manifest.command("build")
@click.argument("corpus")
@click.argument("root", type=click.Path(exists=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="JSONL manifest to write.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Adapter option, repeatable (e.g. csv: id=file label=emo; crema-d: modality=voice).")
def manifest_build(corpus, root, out, options):
    """Build a manifest for CORPUS from its native layout at ROOT (see `emostore manifest classes`).

    Audio paths are written relative to the manifest's folder; each row records its corpus.
    """
    from emostore.manifests.build import build_manifest, parse_options

    rows = build_manifest(corpus, root, out, **parse_options(options))
    with_audio = sum(1 for r in rows if r.audio)
    rated = sum(1 for r in rows if r.ratings)
    click.echo(f"wrote {out}: {len(rows)} utterances ({with_audio} with audio, {rated} with ratings), "
               f"{len({r.speaker for r in rows if r.speaker})} speakers")


@manifest.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--corpus", default=None, help="Class map to check against (default: the rows' corpus column).")
@click.option("--no-probe", is_flag=True, help="Do not read audio headers for rows without a duration.")
def manifest_check(path, corpus, no_probe):
    """Check a manifest: audio files, duplicate ids, durations, ratings, class coverage.

    Exits non-zero when there are errors; warnings alone exit 0.
    """
    from emostore.manifests.check import check_manifest

    report = check_manifest(path, corpus=corpus, probe_audio=not no_probe)
    click.echo(report.format())
    if not report.ok:
        sys.exit(1)


@manifest.command("classes")
@click.argument("corpus", required=False)
def manifest_classes(corpus):
    """Print CORPUS's class map (classes, raw-label mapping, other, version, source); no CORPUS lists them."""
    from emostore.manifests.adapters.base import adapters, get_adapter

    if corpus is None:
        for name in sorted(adapters()):
            click.echo(name)
        return
    cm = get_adapter(corpus).class_map
    click.echo(f"corpus   {cm.corpus}")
    click.echo(f"version  {cm.version}")
    click.echo(f"classes  {', '.join(cm.classes) if cm.classes else '(none: raw labels kept)'}")
    click.echo(f"mapping  {', '.join(f'{k} -> {v}' for k, v in cm.mapping.items()) or '-'}")
    click.echo(f"other    {', '.join(sorted(cm.other)) or '-'}")
    click.echo(f"source   {cm.source}")


def register(group: click.Group) -> None:
    group.add_command(manifest)
