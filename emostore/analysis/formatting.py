"""Tables as Markdown and HTML, numbers as text: one formatter for every table of the analysis.

Cells are strings already formatted by the caller; a cell wrapped as :class:`Bold` is emphasised
(``**x**`` in Markdown, ``<strong>`` in HTML), as papers mark the best value of a column. No
template engine and no pandas optional dependency (``tabulate``, ``jinja2``) is needed.
"""

from __future__ import annotations

import html
import math


class Bold(str):
    """A cell to emphasise."""


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


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (first column left-aligned, the others right-aligned)."""
    def cell(x) -> str:
        text = str(x).replace("|", "\\|")
        return f"**{text}**" if isinstance(x, Bold) else text

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(header: list[str], rows: list[list[str]], caption: str | None = None, cls: str = "table") -> str:
    """An escaped HTML ``<table>`` (first column as row headers)."""
    def cell(x, tag) -> str:
        text = html.escape(str(x))
        return f"<{tag}><strong>{text}</strong></{tag}>" if isinstance(x, Bold) else f"<{tag}>{text}</{tag}>"

    out = [f'<table class="{html.escape(cls)}">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(cell(h, "th") for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>" + cell(r[0], "th") + "".join(cell(x, "td") for x in r[1:]) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"

