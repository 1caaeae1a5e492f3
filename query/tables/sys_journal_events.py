"""sys_journal_events: journal events between entries, as Restate 1.7 records them: a
`TransientError` row per failed attempt (the error's code, message, stack trace as the SDK
sent it, Restate's doc code, the related command), except one that repeats the previous error,
and a `Paused` row when the retries run out into a pause (with that last failure).

rstq keeps the newest `rstq.core.apply.MAX_EVENTS` (20) events per invocation, for as long as
it keeps the invocation; `event_json` has Restate's shape
(`{"ty":"TransientError","error_code":500,"error_message":...,"error_stacktrace":...,
"restate_doc_error_code":"RT0007"}`).
"""

from __future__ import annotations

import json
from typing import Any

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.query.api import TableDef
from rstq.query.entries import describe_type
from rstq.query.tables.base import (
    PARTITION_KEY,
    STR,
    TS,
    U32,
    Kind,
    Row,
    RowContext,
    Store,
    Table,
    col,
    hot_invocation,
    row_type,
)

SYS_JOURNAL_EVENTS = TableDef(
    "sys_journal_events",
    "Journal events between entries: a TransientError per failed attempt (unless it repeats "
    "the previous one: code, message, stack trace, related command), Paused when the retries "
    "ran out into a pause. The newest 20 per invocation.",
    (
        PARTITION_KEY,
        col("id", STR, "Invocation id."),
        col("after_journal_entry_index", U32, "Index of the entry the event follows."),
        col("appended_at", TS, "When the event was recorded."),
        col("event_type", STR, "Event type: TransientError or Paused."),
        col("event_json", STR, "The event as JSON (`ty`, `error_code`, `error_message`, "
                               "`error_stacktrace`, `restate_doc_error_code`, "
                               "`related_command_index`, `_name`, `_type`; Paused: "
                               "`last_failure`)."),
    ),
)

EventRow = row_type("EventRow", SYS_JOURNAL_EVENTS.columns)


def _named(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields with a command type code shown by name, as Restate serializes it."""
    out = dict(fields)
    code = out.get("related_command_type")
    if isinstance(code, int):
        out["related_command_type"] = describe_type(code)[0].split(": ", 1)[-1]
    if isinstance(out.get("last_failure"), dict):
        out["last_failure"] = _named(out["last_failure"])
    return out


def event_json(event_type: str, fields: dict[str, Any]) -> str:
    return json.dumps({"ty": event_type, **_named(fields)}, separators=(",", ":"),
                      ensure_ascii=False)


def rows(state: m.PartitionState, inv_id: str, _ctx: RowContext) -> list[Row]:
    inv = hot_invocation(state, inv_id)
    if inv is None or not inv.events:
        return []
    return [EventRow(partition_key=inv.partition_key, id=inv_id, after_journal_entry_index=after,
                     appended_at=at, event_type=ty, event_json=event_json(ty, fields))
            for at, after, ty, fields in inv.events]


STORE = Store("journal_events", SYS_JOURNAL_EVENTS.schema, Keyed.INVOCATIONS, rows)
TABLES = (Table(SYS_JOURNAL_EVENTS, Kind.STORE, STORE),)
