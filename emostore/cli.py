"""The ``emostore`` command: the top group, assembled from :mod:`emostore.commands` (one module per group).

Library imports happen inside the commands, so ``emostore --help`` stays fast. Errors follow
:mod:`emostore.commands._errors`: a user's mistake is one line, a bug keeps its traceback.
"""

from __future__ import annotations

import click

from emostore import __version__
from emostore.commands import (
    analysis, evaluate, extract, labels, manifest, partition, relabel, store, sweep, train,
)
from emostore.commands._errors import PolicyGroup


@click.group(cls=PolicyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emostore")
def main():
    """emostore: run each speech encoder once, keep every layer, do the rest from the cache.

    Start with `emostore extract FOLDER_OR_MANIFEST --out corpus.zarr`, then inspect the
    store with `emostore store info` and `emostore store verify`.
    """


for _group in (extract, store, manifest, partition, labels, relabel, train, sweep, evaluate, analysis):
    _group.register(main)


if __name__ == "__main__":
    main()
