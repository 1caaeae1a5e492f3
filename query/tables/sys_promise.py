"""sys_promise: durable promises of workflows.
"""

from __future__ import annotations

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.core.partitioning import partition_key_for
from rstq.query.api import TableDef
from rstq.query.tables.base import (
    BIN,
    BOOL,
    PARTITION_KEY,
    STR,
    Kind,
    Row,
    RowContext,
    Store,
    Table,
    col,
    failure_text,
    row_type,
    utf8,
)

SYS_PROMISE = TableDef(
    "sys_promise",
    "Durable promises of workflows.",
    (
        PARTITION_KEY,
        col("scope", STR, "Restate's experimental scope; always NULL in rstq."),
        col("service_name", STR, "Workflow name."),
        col("service_key", STR, "Workflow key."),
        col("key", STR, "Promise name."),
        col("completed", BOOL, "Whether the promise is resolved or rejected."),
        col("completion_success_value", BIN, "Value it was resolved with."),
        col("completion_success_value_utf8", STR, "That value as text, when valid UTF-8."),
        col("completion_failure", STR, "Failure it was rejected with: `[code] message`."),
    ),
)

PromiseRow = row_type("PromiseRow", SYS_PROMISE.columns)


def rows(state: m.PartitionState, key: tuple[str, str, str], _ctx: RowContext) -> list[Row]:
    p = state.promises.get(key)
    if p is None:
        return []
    value = p.value if p.completed and p.failure is None else None
    return [PromiseRow(partition_key=partition_key_for(key[0], key[1]), service_name=key[0],
                       service_key=key[1], key=key[2], completed=p.completed,
                       completion_success_value=value,
                       completion_success_value_utf8=utf8(value),
                       completion_failure=failure_text(p.failure) if p.completed else None)]


STORE = Store("promises", SYS_PROMISE.schema, Keyed.PROMISES, rows)
TABLES = (Table(SYS_PROMISE, Kind.STORE, STORE),)
