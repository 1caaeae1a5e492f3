"""The metrics of the parts around the runtime (SQL, the Postgres wire, OTLP export), put in
the server's registry (`Server.metrics`) by their plugins, so that core imports none of them.

SQL queries are counted and timed as they run (by endpoint: `http` for `POST /query`, `pgwire`
for every statement a Postgres session runs); sessions and export outcomes are counters the
parts keep anyway, read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rstq.core.metrics import QUERY_BUCKETS
from rstq.query.api import QueryObserver

if TYPE_CHECKING:
    from rstq.pgwire.server import PgWireServer
    from rstq.tracing.export import OtlpExport

__all__ = ["OtlpCollector", "PgWireCollector", "QueryMetrics"]


class QueryMetrics:
    """`rstq_sql_queries_total{endpoint,outcome}` and
    `rstq_sql_query_duration_seconds{endpoint}`; `observer(endpoint)` feeds them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queries = Counter(
            "rstq_sql_queries", "SQL statements run, by endpoint (http: POST /query, pgwire: "
            "the Postgres wire) and outcome (ok | error).", ["endpoint", "outcome"],
            registry=registry)
        self.seconds = Histogram(
            "rstq_sql_query_duration_seconds", "Time to run one SQL statement and encode its "
            "answer, by endpoint.", ["endpoint"], buckets=QUERY_BUCKETS, registry=registry)

    def observer(self, endpoint: str) -> QueryObserver:
        ok, failed = (self.queries.labels(endpoint=endpoint, outcome=o) for o in ("ok", "error"))
        hist = self.seconds.labels(endpoint=endpoint)
        for counter in (ok, failed):
            counter.inc(0)  # both series from the start, so rate() sees the first query

        def observe(seconds: float, succeeded: bool) -> None:
            (ok if succeeded else failed).inc()
            hist.observe(seconds)

        return observe


class PgWireCollector(Collector):
    """`rstq_pgwire_sessions` (open now) and `rstq_pgwire_sessions_opened_total`."""

    def __init__(self, server: Callable[[], PgWireServer | None]) -> None:
        self._server = server

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        pg = self._server()
        open_now = GaugeMetricFamily(
            "rstq_pgwire_sessions", "Postgres wire client connections open now.")
        opened = CounterMetricFamily(
            "rstq_pgwire_sessions_opened", "Postgres wire client connections accepted.")
        open_now.add_metric([], pg.open_sessions if pg is not None else 0)
        opened.add_metric([], pg.sessions_total if pg is not None else 0)
        return [open_now, opened]


class OtlpCollector(Collector):
    """OTLP export outcomes (only while export is on): `rstq_otlp_export_failures_total`
    (export requests that failed after the exporter's own retries), and spans exported,
    failed and dropped (queue full) in `rstq_otlp_spans_total{outcome}`."""

    def __init__(self, export: OtlpExport) -> None:
        self._export = export

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        e = self._export
        failures = CounterMetricFamily(
            "rstq_otlp_export_failures", "OTLP export requests (span batches) that failed, "
            "after the exporter's retries.")
        failures.add_metric([], e.failed_batches)
        spans = CounterMetricFamily(
            "rstq_otlp_spans", "Spans handed to OTLP export, by outcome (exported | failed: in "
            "a failed request | dropped: the export queue was full).", labels=["outcome"])
        spans.add_metric(["exported"], e.exported)
        spans.add_metric(["failed"], e.failed_spans)
        spans.add_metric(["dropped"], e.dropped)
        return [failures, spans]
