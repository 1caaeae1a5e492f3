"""`build`: a `Server` with the plugins an `AppConfig` asks for; `App` holds both."""

from __future__ import annotations

from dataclasses import dataclass

from rstq.app.plugins import PgWirePlugin, SqlPlugin, TracingPlugin
from rstq.core.clock import Clock
from rstq.core.plugins import Plugin
from rstq.core.server import Server, ServerConfig
from rstq.pgwire.session import WireConfig
from rstq.tracing.config import TracingConfig


@dataclass
class AppConfig:
    """What sits around the runtime (the runtime's own settings are `ServerConfig`)."""

    sql: bool = True  # POST /query on the admin API
    pgwire_bind: str | None = "127.0.0.1:9071"  # None: no Postgres wire endpoint
    pgwire_user: str | None = None  # with pgwire_password: SCRAM-SHA-256 for this user
    pgwire_password: str | None = None  # None: trust, loopback clients only
    tracing: TracingConfig | None = None  # None: off (rstq.tracing.config.TracingConfig.from_env)


class App:
    """A server and its plugins; `start`/`stop` are the server's."""

    def __init__(self, server: Server, sql: SqlPlugin | None, pgwire: PgWirePlugin | None,
                 tracing: TracingPlugin) -> None:
        self.server = server
        self.sql = sql
        self.pgwire = pgwire
        self.tracing = tracing

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    @property
    def pgwire_port(self) -> int | None:
        return self.pgwire.port if self.pgwire is not None else None


def build(config: ServerConfig, app: AppConfig | None = None,
          clock: Clock | None = None) -> App:
    app = app or AppConfig()
    tracing = TracingPlugin(app.tracing)  # off without a config; /traces/{id} says so
    # Postgres wire serves the SQL engine, so it comes with it.
    sql = SqlPlugin(tracing) if app.sql or app.pgwire_bind is not None else None
    pgwire = (PgWirePlugin(app.pgwire_bind,
                           WireConfig(password=app.pgwire_password, user=app.pgwire_user), sql)
              if app.pgwire_bind is not None else None)
    plugins: list[Plugin] = [p for p in (tracing, sql, pgwire) if p is not None]
    server = Server(config, clock, plugins)
    return App(server, sql, pgwire, tracing)
