"""What the runtime lets others plug in, declared here so that core imports none of them.

The composition root (`rstq.app`) builds a `Server` with plugins for the parts that sit around
the runtime: the SQL engine and its `/query` route, the Postgres wire endpoint, tracing. Core
only knows these Protocols; it never imports `rstq.query`, `rstq.pgwire` or `rstq.tracing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from rstq.protocol.trace_ids import InvokeTrace

if TYPE_CHECKING:
    from aiohttp import web
    from rstq.core.server import Server


class Plugin(Protocol):
    """A part the server starts and stops with itself. Hooks are called in this order:

    `bind` (first, before the data dir is opened: take listening sockets here, so that a port
    in use fails the start before any data is touched; raise `rstq.core.listen.BindError`),
    `attach` (partitions recovered, not yet running: set observers here), `admin_routes` (while
    the admin app is built), `start` (every partition and HTTP listener is up), then at shutdown
    `stop` (first: before the listeners close) and `close` (last: after the logs are closed).
    When the start fails after `bind`, `stop` is called to release what `bind` took.
    """

    def bind(self) -> None: ...

    def attach(self, server: Server) -> None: ...

    def admin_routes(self, app: web.Application) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...


class BasePlugin:
    """No-op hooks, so a plugin defines only the ones it needs."""

    def bind(self) -> None:
        pass

    def attach(self, server: Server) -> None:
        pass

    def admin_routes(self, app: web.Application) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def close(self) -> None:
        pass


class TraceSource(Protocol):
    """Decides the trace of an ingress invocation (sampling, an incoming `traceparent`)."""

    def invoke_trace(self, invocation_id: str, traceparent: str | None) -> InvokeTrace: ...
