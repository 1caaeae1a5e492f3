"""`rstq trace INVOCATION_ID` (the waterfall) and the tracing options of `rstq server`."""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rstq.tracing.config import TracingConfig

_requested: list[TracingConfig | None] = [None]


# ~1 KB of memory a span: the default store stays under ~50 MB.
DEFAULT_TRACE_STORE_SPANS = 50_000


def tracing_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --otlp, --otlp-protocol, --trace-store/--no-trace-store and --trace-store-size to
    `rstq server`; the callback reads the resulting configuration with `requested_tracing()`."""

    @functools.wraps(f)
    def wrapper(*args: Any, otlp: str | None, otlp_protocol: str | None, trace_store: bool,
                trace_store_size: int, **kwargs: Any) -> Any:
        from rstq.tracing.config import TracingConfig

        _requested[0] = TracingConfig.from_env(otlp, otlp_protocol, store=trace_store,
                                               store_max_spans=trace_store_size)
        return f(*args, **kwargs)

    for opt in (
        click.option("--trace-store-size", type=click.IntRange(min=1),
                     default=DEFAULT_TRACE_STORE_SPANS, show_default=True,
                     envvar="RSTQ_TRACE_STORE_SPANS",
                     help="Spans kept in memory at most (the oldest go first; also at most an "
                          "hour old)."),
        click.option("--trace-store/--no-trace-store", default=True, show_default=True,
                     help="Keep recent spans in memory (rstq trace, sys_span, rstq top), with "
                          "or without --otlp."),
        click.option("--otlp-protocol", type=click.Choice(["grpc", "http"]), default=None,
                     help="OTLP transport (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)."),
        click.option("--otlp", metavar="URL", default=None,
                     help="Export spans over OTLP (e.g. http://127.0.0.1:4317 for Jaeger); "
                          "the OTEL_EXPORTER_OTLP_* variables also switch it on."),
    ):
        wrapper = opt(wrapper)
    return wrapper


def requested_tracing() -> TracingConfig | None:
    return _requested[0]


@click.command()
@click.argument("invocation_id")
@click.option("--admin", "admin_url", default="http://127.0.0.1:9070", show_default=True,
              envvar="RSTQ_ADMIN_URL", help="Admin API of the server.")
@click.option("--json", "as_json", is_flag=True, help="Print the spans as JSON instead.")
def trace(invocation_id: str, admin_url: str, as_json: bool) -> None:
    """Show the trace of INVOCATION_ID as a waterfall (the server keeps recent spans)."""
    from rich.console import Console
    from rstq.tracing.render import waterfall
    from rstq.tracing.spans import SpanRecord

    url = f"{admin_url.rstrip('/')}/traces/{invocation_id}"
    from rstq.cli.admin_client import EXIT_NOT_FOUND

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise click.ClickException(
            f"{url}: HTTP {e.code} {e.read().decode(errors='replace')}") from None
    except OSError as e:
        raise click.ClickException(f"{url}: {e}") from None
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    spans = [SpanRecord.from_json(s) for s in doc.get("spans", [])]
    console = Console()
    if not spans and doc.get("trace_id") is None:
        click.echo(f"invocation {invocation_id} not found (no spans, not held by the server)",
                   err=True)
        raise SystemExit(EXIT_NOT_FOUND)
    if not spans:
        why = ("the server keeps no spans: it runs with --no-trace-store"
               if not doc.get("tracing") else "its spans are no longer kept (--trace-store-size)")
        console.print(f"no spans kept for {invocation_id} ({why})")
        return
    traces = sorted({s.trace_id for s in spans})
    console.print(f"[bold]{invocation_id}[/]  trace {', '.join(traces)}  ({len(spans)} spans)")
    console.print(waterfall(spans, time.time_ns(), width=max(20, console.width // 3)))
