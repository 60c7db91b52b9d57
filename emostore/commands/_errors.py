"""The command's error policy: a mistake the user can fix is one line, a bug keeps its traceback.

Library errors derive from :class:`emostore.errors.EmostoreError`; the top ``emostore`` group runs
every subcommand through :class:`PolicyGroup`, which prints those as ``Error: ...`` (exit 1) and
lets anything else raise with its traceback, followed by a line asking to report it.
"""

from __future__ import annotations

import click

from emostore import __version__
from emostore.errors import EmostoreError

BUG_NOTE = "this is a bug in emostore {version}; please report it with the traceback above"

# click's own ways out (usage errors, --help, Ctrl-C) are not bugs.
_CLICK_EXITS = (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort)


class PolicyGroup(click.Group):
    """A click group whose subcommands (nested groups included) run under the error policy."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EmostoreError as exc:
            raise click.ClickException(str(exc)) from None
        except _CLICK_EXITS:
            raise
        except Exception as exc:
            exc.add_note(BUG_NOTE.format(version=__version__))
            raise
