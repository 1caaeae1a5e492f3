"""sys_keyed_service_status: the invocation holding each locked virtual object / workflow key.
"""

from __future__ import annotations

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.core.partitioning import partition_key_for
from rstq.query.api import TableDef
from rstq.query.tables.base import (
    PARTITION_KEY,
    STR,
    Kind,
    Row,
    RowContext,
    Store,
    Table,
    col,
    row_type,
)

SYS_KEYED_SERVICE_STATUS = TableDef(
    "sys_keyed_service_status",
    "Locked keys: the invocation holding each virtual object / workflow key's exclusive lock.",
    (
        PARTITION_KEY,
        col("service_name", STR, "Virtual object or workflow name."),
        col("service_key", STR, "Object / workflow key."),
        col("invocation_id", STR, "Invocation holding the lock."),
    ),
)

LockRow = row_type("LockRow", SYS_KEYED_SERVICE_STATUS.columns)


def rows(state: m.PartitionState, key: tuple[str, str], _ctx: RowContext) -> list[Row]:
    holder = state.locks.get(key)
    if holder is None:
        return []
    return [LockRow(partition_key=partition_key_for(*key), service_name=key[0],
                    service_key=key[1], invocation_id=holder)]


STORE = Store("locks", SYS_KEYED_SERVICE_STATUS.schema, Keyed.LOCKS, rows)
TABLES = (Table(SYS_KEYED_SERVICE_STATUS, Kind.STORE, STORE),)
