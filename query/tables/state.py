"""state: K/V state of virtual objects and workflows, one row per state key.
"""

from __future__ import annotations

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.core.partitioning import partition_key_for
from rstq.query.api import TableDef
from rstq.query.tables.base import (
    BIN,
    PARTITION_KEY,
    STR,
    U64,
    Kind,
    Row,
    RowContext,
    Store,
    Table,
    col,
    row_type,
    utf8,
)

STATE = TableDef(
    "state",
    "K/V state of virtual objects and workflows: one row per (service, key, state key).",
    (
        PARTITION_KEY,
        col("scope", STR, "Restate's experimental scope; always NULL in rstq."),
        col("service_name", STR, "Virtual object or workflow name."),
        col("service_key", STR, "Object / workflow key."),
        col("key", STR, "State key."),
        col("key_length", U64, "Length of the state key in bytes."),
        col("value_utf8", STR, "The value as text, when it is valid UTF-8 (e.g. JSON)."),
        col("value", BIN, "The value's bytes, as the SDK's serde wrote them."),
        col("value_length", U64, "Length of the value in bytes."),
    ),
)

StateRow = row_type("StateRow", STATE.columns)


def rows(state: m.PartitionState, key: tuple[str, str], _ctx: RowContext) -> list[Row]:
    kv = state.kv.peek(key) if hasattr(state.kv, "peek") else state.kv.get(key)
    if not kv:
        return []
    service, skey = key
    pk = partition_key_for(service, skey)
    return [StateRow(partition_key=pk, service_name=service, service_key=skey,
                     key=utf8(k) or k.hex(), key_length=len(k), value_utf8=utf8(v), value=v,
                     value_length=len(v))
            for k, v in kv.items()]


STORE = Store("state", STATE.schema, Keyed.KV, rows)
TABLES = (Table(STATE, Kind.STORE, STORE),)
