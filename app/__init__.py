"""The composition root: builds the runtime (`rstq.core`) with what sits around it.

Core knows no SQL engine, wire protocol or exporter; `build` plugs them in as `Plugin`s (the
Protocol core declares): the SQL engine and its `/query` route, the Postgres wire endpoint over
that engine, and tracing as an observer of applied commands with its `/traces` route.
"""

from rstq.app.compose import App, AppConfig, build
from rstq.app.plugins import PgWirePlugin, SqlPlugin, TracingPlugin

__all__ = ["App", "AppConfig", "PgWirePlugin", "SqlPlugin", "TracingPlugin", "build"]
