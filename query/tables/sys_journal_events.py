"""sys_journal_events: journal events (transient errors, pauses) between entries. rstq
records none yet (the last failure is in sys_invocation): the table is there, empty, so
queries written for Restate run.
"""

from __future__ import annotations

import pyarrow as pa
from rstq.query.api import TableDef
from rstq.query.tables.base import PARTITION_KEY, STR, TS, U32, Kind, Table, col, to_batch

SYS_JOURNAL_EVENTS = TableDef(
    "sys_journal_events",
    "Journal events (transient errors, pauses) between entries. rstq records none yet: the "
    "last failure is in sys_invocation.",
    (
        PARTITION_KEY,
        col("id", STR, "Invocation id."),
        col("after_journal_entry_index", U32, "Index of the entry the event follows."),
        col("appended_at", TS, "When the event was recorded."),
        col("event_type", STR, "Event type."),
        col("event_json", STR, "The event as JSON."),
    ),
)


def batch() -> pa.RecordBatch:
    return to_batch(SYS_JOURNAL_EVENTS.schema, [])


TABLES = (Table(SYS_JOURNAL_EVENTS, Kind.SMALL),)
