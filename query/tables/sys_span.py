"""sys_span (rstq's own): recent trace spans, a live table that the tracing plugin fills.
"""

from __future__ import annotations

from rstq.query.api import TableDef
from rstq.query.tables.base import STR, TS, Kind, Table, col

SYS_SPAN = TableDef(
    "sys_span",
    "rstq: recent trace spans made from the call graph (a bounded in-memory store; empty when "
    "tracing is off: start the server with --otlp URL or --trace-store). Join to invocations "
    "on invocation_id or trace_id.",
    (
        col("trace_id", STR, "W3C trace id (32 hex digits); sys_invocation.trace_id."),
        col("span_id", STR, "Span id (16 hex digits)."),
        col("parent_span_id", STR, "Parent span id; NULL for a root span."),
        col("name", STR, "`ingress`, `invocation-start`, `invocation-attempt`, `invocation-end`, "
                        "... followed by the target pattern."),
        col("start", TS, "Span start."),
        col("end", TS, "Span end; NULL while the span (e.g. a running attempt) is open."),
        col("status", STR, "`OK`, `ERROR: <message>` or `UNSET`."),
        col("attributes", STR, "Span attributes as a JSON object."),
        col("invocation_id", STR, "Invocation the span belongs to."),
    ),
)


TABLES = (Table(SYS_SPAN, Kind.LIVE),)
