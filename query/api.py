"""The query layer's surface, shared by `POST /query`, `rstq sql`, the Postgres wire endpoint
and notebooks.

`rstq.query` implements it over DataFusion; `rstq.pgwire` only depends on this interface, so
the wire server can be tested with any engine that answers SQL with Arrow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True


@dataclass(frozen=True)
class TableDef:
    """One table, declared once: serves DataFusion, psql's `\\d`, information_schema, docs."""

    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, c.nullable) for c in self.columns])


# Told of every statement an endpoint ran: (seconds it took, whether it succeeded). The
# metrics of the composition root (rstq.app) count and time queries with it.
QueryObserver = Callable[[float, bool], None]


class QueryError(Exception):
    """A query that cannot run; `sqlstate` is the Postgres error code to report."""

    def __init__(self, message: str, sqlstate: str = "XX000") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class QueryEngine(Protocol):
    def tables(self) -> Sequence[TableDef]:
        """Every queryable table (and view), in a stable order."""

    def sql(self, query: str, params: Sequence[object] | None = None,
            timeout_s: float | None = None) -> pa.Table:
        """Run one read-only statement; `$1`-style parameters. Raises QueryError."""
