"""Tables as Markdown and HTML, numbers as text: one formatter for every table of the analysis.

Cells are strings already formatted by the caller; a cell wrapped as :class:`Bold` is emphasised
(``**x**`` in Markdown, ``<strong>`` in HTML), as papers mark the best value of a column. A
:class:`Cell` also carries a note (the head that produced a leaderboard cell): a second line in
HTML, ``[note]`` in Markdown. A :class:`RuleLine` in place of a row is a full-width separator with
a label (the line under which a leaderboard lists its unranked rows). A caption goes *under* the
table (it explains the marks: bold, "–", ranks). No template engine and no pandas optional
dependency (``tabulate``, ``jinja2``) is needed.
"""

from __future__ import annotations

import html
import math


class Bold(str):
    """A cell to emphasise."""


class Cell(str):
    """A cell's text with an optional note (second line) and emphasis."""

    def __new__(cls, text: str, note: str | None = None, bold: bool = False):
        obj = super().__new__(cls, text)
        obj.note, obj.bold = note, bold
        return obj


class RuleLine(str):
    """A separator row with a label, spanning the table."""


def _bold(x) -> bool:
    return isinstance(x, Bold) or bool(getattr(x, "bold", False))


def _note(x) -> str | None:
    return getattr(x, "note", None)


def number(v, digits: int = 3) -> str:
    """``0.512`` / ``–`` for a missing value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def with_spread(mean, std, n, digits: int = 3) -> str:
    """``0.512 ± 0.031 (n=5)``; the spread is left out when it is undefined (one fold)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    spread = "" if std is None or (isinstance(std, float) and math.isnan(std)) else f" ± {std:.{digits}f}"
    return f"{mean:.{digits}f}{spread} (n={int(n)})"


def with_ci(value, lo, hi, digits: int = 3) -> str:
    """``0.512 [0.480, 0.545]``; the interval is left out without a bootstrap."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(header: list[str], rows: list, caption: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (first column left-aligned, the others right-aligned), the
    caption as a paragraph under it."""
    def cell(x) -> str:
        text = str(x).replace("|", "\\|")
        text = f"**{text}**" if _bold(x) else text
        return f"{text} [{_note(x)}]" if _note(x) else text

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        if isinstance(r, RuleLine):
            lines.append("| " + " | ".join([f"*{cell(r)}*", *[""] * (len(header) - 1)]) + " |")
        else:
            lines.append("| " + " | ".join(cell(x) for x in r) + " |")
    text = "\n".join(lines) + "\n"
    return text + f"\n{caption}\n" if caption else text


def html_table(header: list[str], rows: list, caption: str | None = None, cls: str = "table") -> str:
    """An escaped HTML ``<table>`` (first column as row headers), the caption under it."""
    def cell(x, tag) -> str:
        text = html.escape(str(x))
        text = f"<strong>{text}</strong>" if _bold(x) else text
        if _note(x):
            text += f'<br><span class="note">{html.escape(_note(x))}</span>'
        return f"<{tag}>{text}</{tag}>"

    out = [f'<table class="{html.escape(cls)}">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(cell(h, "th") for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        if isinstance(r, RuleLine):
            out.append(f'</tbody><tbody class="below-rule"><tr class="rule"><th colspan="{len(header)}">'
                       f"{html.escape(str(r))}</th></tr>")
            continue
        out.append("<tr>" + cell(r[0], "th") + "".join(cell(x, "td") for x in r[1:]) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"

