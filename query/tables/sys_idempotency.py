"""sys_idempotency (rstq's own): idempotency keys and the invocation each maps to.
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

SYS_IDEMPOTENCY = TableDef(
    "sys_idempotency",
    "rstq: idempotency keys and the invocation each one maps to (Restate has no such table; "
    "the key is also sys_invocation.idempotency_key).",
    (
        PARTITION_KEY,
        col("service_name", STR, "Invoked service."),
        col("service_key", STR, "Object / workflow key; NULL for services."),
        col("service_handler", STR, "Invoked handler."),
        col("idempotency_key", STR, "The idempotency key."),
        col("invocation_id", STR, "Invocation it maps to."),
    ),
)

IdempotencyRow = row_type("IdempotencyRow", SYS_IDEMPOTENCY.columns)


def rows(state: m.PartitionState, key: tuple[str, str, str, str], _ctx: RowContext
         ) -> list[Row]:
    inv_id = state.idempotency.get(key)
    if inv_id is None:
        return []
    service, skey, handler, ikey = key
    inv = state.invocations.get(inv_id)
    pk = inv.partition_key if inv is not None else partition_key_for(service, skey or ikey)
    return [IdempotencyRow(partition_key=pk, service_name=service, service_key=skey or None,
                           service_handler=handler, idempotency_key=ikey,
                           invocation_id=inv_id)]


STORE = Store("idempotency", SYS_IDEMPOTENCY.schema, Keyed.IDEMPOTENCY, rows)
TABLES = (Table(SYS_IDEMPOTENCY, Kind.STORE, STORE),)
