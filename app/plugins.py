"""The plugins the composition root gives the server: SQL, the Postgres wire, tracing."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

import pyarrow as pa
from aiohttp import web
from rstq.app.metrics import OtlpCollector, PgWireCollector, QueryMetrics
from rstq.core.listen import listen, port_of
from rstq.core.plugins import BasePlugin
from rstq.core.server import Server
from rstq.pgwire.server import PgWireServer, parse_bind
from rstq.pgwire.session import WireConfig
from rstq.query import history as query_history
from rstq.query import http as query_http
from rstq.query import tables as t
from rstq.tracing import http as trace_http
from rstq.tracing.config import TracingConfig

if TYPE_CHECKING:
    from rstq.tracing.runtime import Tracing

log = logging.getLogger(__name__)


class TracingPlugin(BasePlugin):
    """Spans from the call graph: observes every partition's applied commands, decides the
    traces of ingress invocations, keeps spans (store, OTLP export), serves `/traces/{id}`.
    With no config tracing is off, and `/traces/{id}` says so."""

    def __init__(self, config: TracingConfig | None) -> None:
        self.config = config
        self.tracing: Tracing | None = None
        self._server: Server | None = None

    def attach(self, server: Server) -> None:
        self._server = server
        if self.config is None:
            return
        from rstq.tracing.runtime import Tracing  # imports OpenTelemetry: only when tracing

        def deployment(dep_id: str) -> tuple[str, int] | None:
            dep = server.schema.deployments.get(dep_id)
            return (dep.uri, dep.protocol_version) if dep is not None else None

        self.tracing = Tracing(self.config, deployment)
        if self.tracing.export is not None:
            server.metrics.register(OtlpCollector(self.tracing.export))
        self.tracing.start()
        server.trace_source = self.tracing
        for proc in server.processors:
            proc.observer = self.tracing.observer

    def admin_routes(self, app: web.Application) -> None:
        assert self._server is not None
        trace_http.add_routes(app, self._server, lambda: self.tracing)

    def spans(self) -> pa.Table:
        """The kept spans as `sys_span` rows."""
        if self.tracing is None:
            return t.SYS_SPAN.schema.empty_table()
        return self.tracing.store.to_arrow()

    async def close(self) -> None:
        if self.tracing is not None:  # exports what is still queued
            await self.tracing.aclose()


class SqlPlugin(BasePlugin):
    """The SQL engine over the partitions' state: `POST /query` on the admin API. Its query
    metrics (`query_metrics`) also count the Postgres wire's statements."""

    def __init__(self, tracing: TracingPlugin | None = None) -> None:
        self._tracing = tracing
        self._server: Server | None = None
        self.query_metrics: QueryMetrics | None = None

    def attach(self, server: Server) -> None:
        self._server = server
        self.query_metrics = QueryMetrics(server.metrics.registry)
        for proc in server.processors:  # history segments get their SQL files as written
            history = getattr(proc.persistence, "history", None)
            if history is not None:
                history.encoders.append(query_history.encode)
        eng = query_http.engine_for(server)  # on the server's loop: snapshots are taken there
        if self._tracing is not None:
            eng.live_tables[t.SYS_SPAN.name] = self._tracing.spans

    def admin_routes(self, app: web.Application) -> None:
        assert self._server is not None and self.query_metrics is not None
        query_http.add_routes(app, self._server, self.query_metrics.observer("http"))


class PgWirePlugin(BasePlugin):
    """The Postgres wire endpoint over the SQL engine (its own threads). Its statements go
    into the SQL plugin's query metrics (its own without one); sessions are counted too."""

    def __init__(self, bind: str, config: WireConfig, sql: SqlPlugin | None = None) -> None:
        self.bind_address = bind
        self.config = config
        self._sql = sql
        self._server: Server | None = None
        self._pg: PgWireServer | None = None
        self._sock: socket.socket | None = None
        self._query_metrics: QueryMetrics | None = None
        self.port: int | None = None

    def attach(self, server: Server) -> None:
        self._server = server
        if self._sql is None:  # alone: the query metrics are ours
            self._query_metrics = QueryMetrics(server.metrics.registry)
        server.metrics.register(PgWireCollector(lambda: self._pg))

    def bind(self) -> None:
        """Take the port before the server opens its data dir: a port in use fails the start
        (one line naming `--pgwire`), as the ingress and admin ports do."""
        host, port = parse_bind(self.bind_address)
        self._sock = listen(host, port, what="Postgres wire", option="--pgwire")
        self.port = port_of(self._sock)

    async def start(self) -> None:
        assert self._server is not None
        metrics = self._sql.query_metrics if self._sql is not None else self._query_metrics
        pg = PgWireServer(query_http.engine_for(self._server), self.bind_address,
                          config=self.config,
                          on_query=metrics.observer("pgwire") if metrics is not None else None)
        sock, self._sock = self._sock, None
        pg.start(listener=sock)
        self._pg, self.port = pg, pg.port

    async def stop(self) -> None:
        if self._sock is not None:  # bound, never served (the start failed)
            self._sock.close()
            self._sock = None
        if self._pg is not None:
            pg, self._pg = self._pg, None
            await asyncio.to_thread(pg.stop)
