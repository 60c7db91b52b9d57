"""The ``emostore`` command: the top group, assembled from :mod:`emostore.commands` (one module per group).

Library imports happen inside the commands, so ``emostore --help`` stays fast. Errors follow
:mod:`emostore.commands._errors`: a user's mistake is one line, a bug keeps its traceback.
"""

from __future__ import annotations

import click

from emostore import __version__
from emostore.commands import (
    analysis, evaluate, extract, lab, labels, manifest, partition, recipe, relabel, store, sweep, train,
)
from emostore.commands._errors import PolicyGroup


@click.group(cls=PolicyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emostore")
def main():
    """emostore: run each speech encoder once, keep every layer, do the rest from the cache.

    Start with `emostore recipe`: the whole pipeline on a bundled EmoDB subset (extract once,
    sweep heads from the store, HTML report). Then `emostore recipe CORPUS ROOT` on your corpus,
    or the steps one by one: `manifest build`, `partition`, `labels aggregate`, `extract`, `sweep`,
    `report`.
    """


for _group in (recipe, extract, lab, store, manifest, partition, labels, relabel, train, sweep, evaluate, analysis):
    _group.register(main)


if __name__ == "__main__":
    main()
