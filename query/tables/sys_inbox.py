"""sys_inbox: invocations waiting for their key's lock, in arrival order per key.
"""

from __future__ import annotations

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.core.partitioning import partition_key_for
from rstq.query.api import TableDef
from rstq.query.tables.base import (
    PARTITION_KEY,
    STR,
    TS,
    U64,
    Kind,
    Row,
    RowContext,
    Store,
    Table,
    col,
    row_type,
)

SYS_INBOX = TableDef(
    "sys_inbox",
    "Invocations waiting for their key's lock, in arrival order per key.",
    (
        PARTITION_KEY,
        col("service_name", STR, "Virtual object or workflow name."),
        col("service_key", STR, "Object / workflow key."),
        col("id", STR, "Waiting invocation's id."),
        col("sequence_number", U64, "Arrival order within the partition."),
        col("created_at", TS, "When it entered the inbox."),
    ),
)

InboxRow = row_type("InboxRow", SYS_INBOX.columns)


def rows(state: m.PartitionState, key: tuple[str, str], _ctx: RowContext) -> list[Row]:
    queue = state.inboxes.get(key)
    if not queue:
        return []
    pk = partition_key_for(*key)
    out: list[Row] = []
    for inv_id in queue:
        seq = state.inbox_seqs.get(inv_id)
        inv = state.invocations.get(inv_id)
        if seq is None or inv is None or inv.status != m.INBOXED:
            continue
        out.append(InboxRow(partition_key=pk, service_name=key[0], service_key=key[1],
                            id=inv_id, sequence_number=seq, created_at=inv.inboxed_at))
    return out


STORE = Store("inbox", SYS_INBOX.schema, Keyed.INBOXES, rows)
TABLES = (Table(SYS_INBOX, Kind.STORE, STORE),)
