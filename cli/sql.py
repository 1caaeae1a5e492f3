"""`rstq sql "SELECT …"`: run SQL against a running server's admin API.

Data goes to stdout (a table, or --json / --csv), chatter to stderr. Exit codes:
0 success, 1 the query failed (bad SQL, read-only refusal, time limit: the message says which),
2 usage error, 3 no server answers at the admin URL.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import time
from typing import Any

import click

EXIT_QUERY = 1
EXIT_UNREACHABLE = 3


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(v, bytes):
        return v.hex() if len(v) <= 32 else v[:32].hex() + "…"
    if isinstance(v, list | dict):
        return json.dumps(v, default=str)
    return str(v)


@click.command()
@click.argument("query")
@click.option("--admin", "admin", envvar="RSTQ_ADMIN_URL", default="http://127.0.0.1:9070",
              show_default=True, help="Admin API URL (env RSTQ_ADMIN_URL).")
@click.option("--json", "as_json", is_flag=True, help="Rows as a JSON array of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Rows as CSV with a header line.")
def sql(query: str, admin: str, as_json: bool, as_csv: bool) -> None:
    """Run one read-only SQL QUERY (DataFusion, PostgreSQL dialect), e.g.

    rstq sql "SELECT status, count(*) FROM sys_invocation GROUP BY status"
    """
    from rstq.query.api import QueryError
    from rstq.query.client import RemoteEngine, ServerUnreachable
    from rstq.query.http import rows_json

    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other")
    started = time.perf_counter()
    try:
        table = RemoteEngine(admin).sql(query)
    except ServerUnreachable as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except QueryError as e:
        click.echo(f"error [{e.sqlstate}]: {e}", err=True)
        sys.exit(EXIT_QUERY)
    took = (time.perf_counter() - started) * 1000
    if as_json:
        click.echo(json.dumps(rows_json(table), ensure_ascii=False, indent=1))
        return
    if as_csv:
        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(table, buf)
        sys.stdout.write(buf.getvalue().decode())
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(show_edge=False, box=None, header_style="bold", pad_edge=False)
    for name in table.column_names:
        out.add_column(name.upper(), overflow="fold")
    for row in table.to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    Console(soft_wrap=True).print(out)
    click.echo(f"{table.num_rows} rows. Query took {took:.1f}ms", err=True)
