"""The one ``--quiet/-q`` option of the long-running commands, and the progress factory it selects.

Not quiet: a tqdm bar when stderr is a terminal, else one plain line at most every 10 s
($EMOSTORE_PROGRESS_INTERVAL seconds when set), so batch logs show progress too.
"""

from __future__ import annotations

import click

QUIET_HELP = ("No progress. Otherwise: a bar on a terminal, else a plain line (done/total, rate, ETA) at most "
              "every 10 s on stderr ($EMOSTORE_PROGRESS_INTERVAL seconds when set).")


def quiet_option(fn):
    """Add ``--quiet/-q`` to a command."""
    return click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)(fn)


def progress_factory(quiet: bool):
    """The ``progress`` factory a command passes to the library: quiet, or auto (bar or lines)."""
    from emostore.progress import Progress

    try:
        return Progress.factory("quiet" if quiet else "auto")
    except ValueError as exc:  # a bad $EMOSTORE_PROGRESS_INTERVAL
        raise click.ClickException(str(exc)) from None
