"""DataFusion's error text -> a short message a user can act on, with its SQLSTATE.

DataFusion says `Error during planning: table 'restate.public.nosuch' not found` or
`Schema error: No field named statu. Did you mean 'sys_invocation.status'?\nValid fields are
...`; users get `table "nosuch" does not exist (tables: ...)` and `column "statu" does not
exist; did you mean "status"?`. The SQLSTATE is decided on DataFusion's text, as before.
Shared by `POST /query`, `rstq sql` and the Postgres wire (no engine imports here).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from rstq.query.api import QueryError

_STATES = (
    ("DDL not supported", "25006"), ("DML not supported", "25006"),
    ("Statement not supported", "25006"),
    ("not found", "42P01"), ("No field named", "42703"), ("ParserError", "42601"),
    ("sql parser error", "42601"), ("Invalid function", "42883"),
    ("Resources exhausted", "53200"), ("No value found for placeholder", "08P01"),
    ("Error during planning", "42000"), ("Schema error", "42000"),
)

_PREFIXES = re.compile(
    r"^(?:DataFusion error: |Error during planning: |Schema error: |Execution error: |"
    r"Arrow error: |SQL error: |Internal error: |External error: |"
    r"Optimizer rule '[^']*' failed\s*caused by\s*|Cast error: )+", re.I)
_TABLE = re.compile(r"table '(?:[^'.]+\.)*([^'.]+)' not found")
_FIELD = re.compile(r"No field named ([^\s.]+(?:\.[^\s.]+)?)\.(?: Did you mean '([^']+)'\?)?"
                    r"(?:\s*Valid fields are (.*?)\.?$)?", re.S)
_PARSER = re.compile(r'ParserError\("(.*)"\)', re.S)
_FUNCTION = re.compile(r"Invalid function '([^']+)'\.?(?:\s*Did you mean '([^']+)'\?)?", re.S)


def query_error(e: BaseException, tables: Iterable[str] = ()) -> QueryError:
    """The QueryError for an engine exception; `tables` are the names a query may read."""
    msg = str(e).strip()
    for needle, state in _STATES:
        if needle in msg:
            if state == "25006":
                return QueryError(f"read-only: only queries are allowed ({msg})", state)
            return QueryError(readable(msg, tables), state)
    return QueryError(readable(msg, tables) or type(e).__name__, "XX000")


def readable(msg: str, tables: Iterable[str] = ()) -> str:
    """DataFusion's message, short: the common cases said as Postgres says them, with hints."""
    m = _TABLE.search(msg)
    if m:
        return _unknown_table(m.group(1), sorted(set(tables)))
    m = _FIELD.search(msg)
    if m:
        return _unknown_column(m.group(1), m.group(2), m.group(3))
    m = _PARSER.search(msg)
    if m:
        text = m.group(1).replace('\\"', '"')
        text = re.sub(r"^Expected: ", "expected ", text)
        text = re.sub(r", found: ", ", found ", text)
        text = re.sub(r" at Line: (\d+), Column: (\d+)$", r" (line \1, column \2)", text)
        return f"syntax error: {text}"
    m = _FUNCTION.search(msg)
    if m:
        hint = f"; did you mean {m.group(2)}()?" if m.group(2) else ""
        return f"function {m.group(1)}() does not exist{hint}"
    text = _PREFIXES.sub("", msg.rsplit("caused by\n", 1)[-1]).strip()
    if text.startswith("This feature is not implemented: "):
        text = "not supported: " + text.removeprefix("This feature is not implemented: ")
    if text == "Divide by zero error":
        return "division by zero"
    return text


def _unknown_table(name: str, tables: list[str]) -> str:
    out = f'table "{name}" does not exist'
    close = difflib.get_close_matches(name, tables, n=1, cutoff=0.75)
    if close:
        out += f'; did you mean "{close[0]}"?'
    if tables:
        out += f" (tables: {', '.join(tables)})"
    return out


def _unknown_column(name: str, suggestion: str | None, valid: str | None) -> str:
    shown = name if "." in name else f'"{name}"'
    out = f"column {shown} does not exist"
    if suggestion:
        return out + f'; did you mean "{suggestion.rsplit(".", 1)[-1]}"?'
    by_table: dict[str, list[str]] = {}
    for f in (valid or "").split(", "):
        f = f.strip()
        if not f:
            continue
        qual, _, col = f.rpartition(".")
        by_table.setdefault(qual, []).append(col)
    if not by_table:
        return out
    parts = [f"{q} has: {', '.join(cols)}" if q else ", ".join(cols)
             for q, cols in by_table.items()]
    return out + f" ({'; '.join(parts)})"
