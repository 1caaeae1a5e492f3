"""rstq.query: SQL over the partitions' state (DataFusion on incrementally kept Arrow views).

- `connect(admin_url)`: a running server's `POST /query`, answers as pyarrow tables (`.df()`:
  pandas);
- `engine_for(server)`: the in-process engine of a `Server` (`.sql(...)` from any thread);
- `local_engine(states)`: an engine over bare `PartitionState`s (tests, notebooks, replays);
- `TABLES`: the table declarations (`docs/tables.md` is generated from them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rstq.query.api import Column, QueryEngine, QueryError, TableDef
from rstq.query.client import RemoteEngine, ServerUnreachable, connect
from rstq.query.tables import TABLES

if TYPE_CHECKING:
    from rstq.core.model import PartitionState
    from rstq.query.engine import Engine
    from rstq.query.source import ServerSource

__all__ = [
    "TABLES",
    "Column",
    "QueryEngine",
    "QueryError",
    "RemoteEngine",
    "ServerUnreachable",
    "TableDef",
    "connect",
    "engine_for",
    "local_engine",
]


def engine_for(server: ServerSource) -> Engine:
    from rstq.query.http import engine_for as _engine_for

    return _engine_for(server)


def local_engine(states: Sequence[PartitionState]) -> Engine:
    """Query bare partition states (snapshots are taken on the calling thread)."""
    from rstq.query.engine import Engine
    from rstq.query.source import Materializer, PartitionSource

    mat = Materializer()
    eng = Engine(lambda stores: mat.snapshot([PartitionSource(s) for s in states],
                                           stores=stores))
    eng.materializer = mat
    return eng
