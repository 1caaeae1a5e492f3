"""Generate docs/tables.md from the table declarations: `python -m rstq.query.docs [PATH]`."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
from rstq.query.tables import TABLES


def type_name(t: pa.DataType) -> str:
    """The Arrow type as DataFusion prints it (information_schema.columns.data_type)."""
    if pa.types.is_large_string(t):
        return "LargeUtf8"
    if pa.types.is_large_binary(t):
        return "LargeBinary"
    if pa.types.is_boolean(t):
        return "Boolean"
    if pa.types.is_integer(t):
        return ("UInt" if pa.types.is_unsigned_integer(t) else "Int") + str(t.bit_width)
    if pa.types.is_timestamp(t):
        assert isinstance(t, pa.TimestampType)
        return f'Timestamp({t.unit}, "{t.tz}")' if t.tz else f"Timestamp({t.unit})"
    if pa.types.is_duration(t):
        assert isinstance(t, pa.DurationType)
        return f"Duration({t.unit})"
    if pa.types.is_list(t):
        assert isinstance(t, pa.ListType)
        return f"List({type_name(t.value_type)})"
    return str(t)


def render() -> str:
    out = [
        "# SQL tables",
        "",
        "Generated from the table modules (`query/tables/`) by `python -m rstq.query.docs`; do not",
        "edit (a test checks it is up to date). Query them with `rstq sql`, `POST /query` on the",
        "admin port, the Postgres wire endpoint, or `rstq.query` in Python. Tables that Restate",
        "1.7 also has keep its column names, order, types and meaning.",
        "",
    ]
    for t in TABLES:
        out.append(f"- [`{t.name}`](#{t.name})")
    for t in TABLES:
        out += ["", f"## {t.name}", "", t.doc, "", "| column | type | description |",
                "|---|---|---|"]
        for c in t.columns:
            null = "" if c.nullable else " (not null)"
            out.append(f"| `{c.name}` | {type_name(c.type)}{null} | {c.doc} |")
    return "\n".join(out) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/tables.md")
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
