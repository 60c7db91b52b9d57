"""One mechanism to check the rows of every file format emostore reads: a pydantic model per format.

A reader declares what a row (or a whole file) may hold as a :class:`Row` model and calls
:func:`parse_rows` (or :func:`parse`); every row that breaks its model is reported in **one line**
naming the file, the line, the row's id, the field and the values it accepts. A file that is
wrong in three rows says so once, with the three rows, instead of failing somewhere downstream
(numpy's "inhomogeneous shape", an empty training set). The formats and their rules are listed in
docs/file-formats.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Iterable, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

SHOW = 3  # bad rows named per error line
SUM_TOLERANCE = 1e-3  # how far from 1 a distribution's sum may be (rounded JSON numbers)

M = TypeVar("M", bound=BaseModel)


class Row(BaseModel):
    """A file row: unknown keys are refused (a misspelt key is named, not ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_id(value):
    """Ids are strings; a JSON number (a CSV or hand-written id) is taken as its text."""
    if isinstance(value, bool):
        raise ValueError("an id is a string, not true/false")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and not value.strip():
        raise ValueError("an id is a non-empty string")
    return value


Id = Annotated[str, BeforeValidator(_as_id), Field(description="a non-empty id string")]
Share = Annotated[float, Field(ge=0, allow_inf_nan=False, description="a finite number >= 0")]


def _field_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _accepted(model: type[BaseModel], loc: tuple) -> str:
    """The accepted values of the top-level field at ``loc``, from the model's field descriptions."""
    if not loc or not isinstance(loc[0], str):
        return ""
    info = model.model_fields.get(loc[0])
    if info is None:
        return f"; the fields are {', '.join(model.model_fields)}"
    return f" (accepted: {info.description})" if info.description else ""


def problem(model: type[BaseModel], exc: ValidationError) -> str:
    """The first problem of a ValidationError as ``field: what is wrong (accepted: ...)``."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "is not a field of this format"
    elif err["type"] == "missing":
        msg = "is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    else:
        got = err.get("input")
        msg = f"{msg[0].lower()}{msg[1:]}" + (f", got {json.dumps(got)}" if _short(got) else "")
    return " ".join(p for p in (_field_name(loc), msg) if p) + _accepted(model, loc)


def _short(value) -> bool:
    try:
        return len(json.dumps(value)) <= 40
    except (TypeError, ValueError):
        return False


def parse(model: type[M], obj, where: str, error: type[Exception]) -> M:
    """``obj`` as ``model``, or ``error`` naming ``where`` and the field."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise error(f"{where}: {problem(model, exc)}") from None


def parse_rows(model: type[M], rows: Iterable[tuple[str, dict]], path: str | Path,
               error: type[Exception], context: dict | None = None) -> list[M]:
    """Every ``(where, obj)`` of ``rows`` as ``model``; the bad ones, all counted and the first
    :data:`SHOW` named, in one ``error`` line."""
    out, bad, n = [], [], 0
    for where, obj in rows:
        n += 1
        try:
            out.append(model.model_validate(obj, context=context))
        except ValidationError as exc:
            rid = obj.get("id") if isinstance(obj, dict) else None
            who = f"{where}" + (f" (id {rid!r})" if isinstance(rid, (str, int)) and not isinstance(rid, bool) else "")
            bad.append(f"{who}: {problem(model, exc)}")
    if bad:
        more = f"; and {len(bad) - SHOW} more" if len(bad) > SHOW else ""
        head = f"{path}: {len(bad)} of {n} rows are invalid: " if len(bad) > 1 else ""
        raise error(head + "; ".join(bad[:SHOW]) + more)
    return out


def read_json_file(path: str | Path, error: type[Exception], what: str = "file"):
    """The JSON value of ``path``, or ``error`` naming the file (missing, not UTF-8, not JSON)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    from emostore.jsonl import decode_text

    text = decode_text(data, path, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
