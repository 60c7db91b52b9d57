"""README's recipe table, written from a fresh `emostore recipe` run (never by hand).

README embeds the recipe's ``summary.md`` table between ``<!-- recipe-table:start -->`` and
``<!-- recipe-table:end -->``. This script runs the recipe (the bundled EmoDB subset, the default
heads, seed 0, 1000 bootstrap replicates: README's configuration) for the encoders asked for and
replaces *their* rows in README, keeping the other encoders' rows, so the fast FBANK rows and the
slow Whisper rows can be refreshed separately. ``--check`` changes nothing and exits 1, with the
differing rows, when README's rows for those encoders are not what the fresh run gives
(``tests/test_readme_tables.py`` does that for FBANK).

    python bench/readme_tables.py                         # both encoders (minutes), rewrite README
    python bench/readme_tables.py --encoder fbank --check # is README's FBANK part current?
    python bench/readme_tables.py --from emostore-recipe  # use a finished run's summary.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- recipe-table:start -->", "<!-- recipe-table:end -->"
BLOCK = re.compile(rf"{re.escape(START)}\n```\n(.*?)```\n{re.escape(END)}", re.S)


def table_rows(markdown: str) -> tuple[list[str], list[str]]:
    """(header lines, body rows) of the first Markdown table in ``markdown``."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return lines[:2], lines[2:]


def encoder_of(row: str) -> str:
    return row.split("|")[1].strip()


def readme_table(text: str) -> str:
    m = BLOCK.search(text)
    if not m:
        raise SystemExit(f"{README}: no recipe table between {START} and {END}")
    return m.group(1)


def merged(old: str, fresh: str) -> str:
    """``old``'s table with the rows of every encoder in ``fresh`` replaced by ``fresh``'s rows."""
    header, fresh_rows = table_rows(fresh)
    _, old_rows = table_rows(old)
    encoders = {encoder_of(r) for r in fresh_rows}
    rows = [r for r in old_rows if encoder_of(r) not in encoders] + fresh_rows
    rows.sort(key=encoder_of)  # stable: each encoder's rows keep the summary's order
    return "\n".join(header + rows) + "\n"


def fresh_summary(encoders: list[str], out: Path, jobs: int) -> str:
    from emostore.recipe.pipeline import RecipeOptions, run_recipe

    opts = RecipeOptions(out=str(out), encoders=tuple(encoders), jobs=jobs)
    run_recipe(opts, log=lambda line: print(line, file=sys.stderr))
    return (out / "summary.md").read_text(encoding="utf-8")


def differences(readme_text: str, fresh: str) -> list[str]:
    """Rows of ``fresh`` that README's table lacks, and README rows of those encoders not in ``fresh``."""
    _, fresh_rows = table_rows(fresh)
    _, old_rows = table_rows(readme_table(readme_text))
    encoders = {encoder_of(r) for r in fresh_rows}
    old_rows = [r for r in old_rows if encoder_of(r) in encoders]
    return [f"- README: {r}" for r in old_rows if r not in fresh_rows] + \
        [f"+ fresh:  {r}" for r in fresh_rows if r not in old_rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", action="append", help="encoder(s) to run (default: ct2-whisper and fbank)")
    ap.add_argument("--out", default="emostore-recipe-readme", help="recipe folder (reused: finished steps are skipped)")
    ap.add_argument("--from", dest="source", help="take summary.md from this finished recipe folder, run nothing")
    ap.add_argument("--jobs", type=int, default=1, help="training processes (the table does not depend on it)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if README differs")
    args = ap.parse_args(argv)
    if args.source:
        fresh = (Path(args.source) / "summary.md").read_text(encoding="utf-8")
    else:
        fresh = fresh_summary(args.encoder or ["ct2-whisper", "fbank"], Path(args.out), args.jobs)
    text = README.read_text(encoding="utf-8")
    if args.check:
        diff = differences(text, fresh)
        print("\n".join(diff) if diff else "README's recipe table equals the fresh run")
        return 1 if diff else 0
    new = BLOCK.sub(lambda m: f"{START}\n```\n{merged(m.group(1), fresh)}```\n{END}", text, count=1)
    if new == text and not BLOCK.search(text):
        raise SystemExit(f"{README}: no recipe table between {START} and {END}")
    README.write_text(new, encoding="utf-8")
    print(f"{README}: recipe table {'unchanged' if new == text else 'rewritten'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
