"""The one ``--quiet/-q`` option of the long-running commands, and the progress factory it selects.

Not quiet: a tqdm bar when stderr is a terminal, else one plain line at most every 10 s
($EMOSTORE_PROGRESS_INTERVAL seconds when set), so batch logs show progress too. The older
``--no-progress`` is kept (hidden) as a synonym of ``--quiet``; ``--progress`` is the default.
"""

from __future__ import annotations

import click

QUIET_HELP = ("No progress. Otherwise: a bar on a terminal, else a plain line (done/total, rate, ETA) at most "
              "every 10 s on stderr ($EMOSTORE_PROGRESS_INTERVAL seconds when set).")


def quiet_option(fn):
    """Add ``--quiet/-q`` (and the hidden ``--progress/--no-progress`` it replaces) to a command."""
    fn = click.option("--progress/--no-progress", "progress", default=None, hidden=True,
                      help="Older form: --no-progress = --quiet.")(fn)
    return click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)(fn)


def progress_factory(quiet: bool, progress: bool | None = None):
    """The ``progress`` factory a command passes to the library: quiet, or auto (bar or lines)."""
    from emostore.progress import Progress

    try:
        return Progress.factory("quiet" if quiet or progress is False else "auto")
    except ValueError as exc:  # a bad $EMOSTORE_PROGRESS_INTERVAL
        raise click.ClickException(str(exc)) from None
