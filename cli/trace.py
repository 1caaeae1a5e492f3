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


def tracing_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --otlp, --otlp-protocol and --trace-store to `rstq server`; the callback reads the
    resulting configuration with `requested_tracing()`."""

    @functools.wraps(f)
    def wrapper(*args: Any, otlp: str | None, otlp_protocol: str | None, trace_store: bool,
                **kwargs: Any) -> Any:
        from rstq.tracing.config import TracingConfig

        _requested[0] = TracingConfig.from_env(otlp, otlp_protocol, store_only=trace_store)
        return f(*args, **kwargs)

    for opt in (
        click.option("--trace-store", is_flag=True,
                     help="Keep spans in memory (rstq trace, sys_span) even without --otlp."),
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
    if not spans:
        console.print(f"no spans kept for {invocation_id} (is tracing on? --otlp / --trace-store)")
        return
    traces = sorted({s.trace_id for s in spans})
    console.print(f"[bold]{invocation_id}[/]  trace {', '.join(traces)}  ({len(spans)} spans)")
    console.print(waterfall(spans, time.time_ns(), width=max(20, console.width // 3)))
