"""sys_timer (rstq's own): durable timers of sleeps, delayed invocations, retries and cleanup.
"""

from __future__ import annotations

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.query.api import TableDef
from rstq.query.tables.base import (
    PARTITION_KEY,
    STR,
    TS,
    U32,
    U64,
    Kind,
    Row,
    RowContext,
    Store,
    Table,
    col,
    row_type,
)

SYS_TIMER = TableDef(
    "sys_timer",
    "rstq: durable timers (sleeps, delayed invocations, retry backoff, retention cleanup).",
    (
        PARTITION_KEY,
        col("timer_id", STR, "Timer id: `<kind>:<invocation id>[:<completion id>]`."),
        col("kind", STR, "`sleep`, `invoke` (delayed start), `retry` or `cleanup`."),
        col("invocation_id", STR, "Invocation the timer belongs to."),
        col("fire_at", TS, "When it fires."),
        col("completion_id", U32, "For sleep: the completion id it completes."),
        col("epoch", U64, "For retry: the attempt it retries."),
    ),
)

TimerRow = row_type("TimerRow", SYS_TIMER.columns)


def rows(state: m.PartitionState, timer_id: str, _ctx: RowContext) -> list[Row]:
    t = state.timers.get(timer_id)
    if t is None:
        return []
    inv = state.invocations.get(t.invocation_id)
    return [TimerRow(partition_key=inv.partition_key if inv is not None else None,
                     timer_id=t.timer_id, kind=t.kind, invocation_id=t.invocation_id,
                     fire_at=t.fire_at,
                     completion_id=t.completion_id if t.kind == m.TimerKind.SLEEP else None,
                     epoch=t.epoch if t.kind == m.TimerKind.RETRY else None)]


STORE = Store("timers", SYS_TIMER.schema, Keyed.TIMERS, rows)
TABLES = (Table(SYS_TIMER, Kind.STORE, STORE),)
