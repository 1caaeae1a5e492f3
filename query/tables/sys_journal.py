"""sys_journal: one row per journal entry of every retained invocation.

A journal row is cheap to capture (`rows`: the entries of one invocation, by reference) and
costly to expand (payloads decoded: ~20 µs an entry), so the store captures on the event loop
and expands off it, column by column, decoding only when a query reads a decoded column.
"""

from __future__ import annotations

from typing import Any

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.query.api import TableDef
from rstq.query.entries import describe, describe_type
from rstq.query.tables.base import (
    BIN,
    BOOL,
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
    hot_invocation,
)

SYS_JOURNAL = TableDef(
    "sys_journal",
    "One row per journal entry (commands and notifications) of every retained invocation.",
    (
        PARTITION_KEY,
        col("id", STR, "Invocation id."),
        col("index", U32, "Position of the entry in the journal (0 = Input)."),
        col("entry_type", STR, "`Command: <Name>` or `Notification: <Name>`."),
        col("name", STR, "Name given to the command by the handler (e.g. `ctx.run` name)."),
        col("completed", BOOL,
           "For commands with a result: whether its completion is in the journal."),
        col("invoked_id", STR, "For Call / OneWayCall: the callee's invocation id."),
        col("invoked_target", STR, "For Call / OneWayCall: the callee's target."),
        col("sleep_wakeup_at", TS, "For Sleep: when it wakes up."),
        col("promise_name", STR, "For promise commands: the promise name."),
        col("raw", BIN, "The entry's protobuf payload as the SDK sent it."),
        col("raw_length", U64, "Length of raw in bytes."),
        col("version", U32, "Journal format version (2: protocol v4+ commands/notifications)."),
        col("entry_json", STR, "The decoded entry as JSON."),
        col("entry_lite_json", STR, "The entry's kind as JSON, without its fields."),
        col("appended_at", TS, "When the entry was stored."),
    ),
)


def rows(state: m.PartitionState, inv_id: str, _ctx: RowContext) -> list[Row]:
    return proto(hot_invocation(state, inv_id))


def proto(inv: m.Invocation | None) -> list[Row]:
    """What the journal rows of `inv` need, captured now (cheap); `expand` expands it
    later, off the event loop. Entries are never changed once appended, so referencing them
    is safe; the list itself is copied."""
    if inv is None or not inv.journal:
        return []
    return [(inv.invocation_id, inv.partition_key, tuple(inv.journal),
             frozenset(inv.completed_ids))]


# sys_journal columns that need the payload decoded (~20 µs an entry); the others come from
# the entry's type code and bytes alone.
DECODED_JOURNAL_COLUMNS = ("name", "completed", "invoked_target", "sleep_wakeup_at",
                           "promise_name", "entry_json")


def expand(protos: list[Row], wanted: frozenset[str] | None = None
                 ) -> tuple[dict[str, list[Any]], list[str]]:
    """The `wanted` sys_journal columns (None: all) and each row's key, from
    `proto`s. Built column by column: no per-row tuples for hundreds of thousands of
    entries. The entries are decoded only for DECODED_JOURNAL_COLUMNS."""
    def want(name: str) -> bool:
        return wanted is None or name in wanted

    keys: list[str] = []
    for inv_id, _pk, journal, _done in protos:
        keys.extend([inv_id] * len(journal))
    journals = [p[2] for p in protos]
    cols: dict[str, list[Any]] = {}
    if want("partition_key"):
        cols["partition_key"] = [p[1] for p in protos for _ in p[2]]
    if want("id"):
        cols["id"] = keys
    if want("index"):
        cols["index"] = [i for j in journals for i in range(len(j))]
    if want("version"):
        cols["version"] = [2] * len(keys)
    if want("invoked_id"):
        cols["invoked_id"] = [e.callee_id for j in journals for e in j]
    if want("raw"):
        cols["raw"] = [e.raw for j in journals for e in j]
    if want("raw_length"):
        cols["raw_length"] = [len(e.raw) for j in journals for e in j]
    if want("appended_at"):
        cols["appended_at"] = [e.appended_at for j in journals for e in j]
    if want("entry_type") or want("entry_lite_json"):
        kinds = [describe_type(e.entry_type) for j in journals for e in j]
        cols["entry_type"] = [k[0] for k in kinds]
        cols["entry_lite_json"] = [k[1] for k in kinds]
    if any(want(c) for c in DECODED_JOURNAL_COLUMNS):
        name_, done_, target_, sleep_, promise_, json_ = (
            cols.setdefault(n, []) for n in DECODED_JOURNAL_COLUMNS)
        for _inv_id, _pk, journal, done in protos:
            for e in journal:
                info = describe(e.entry_type, e.raw)
                cid = info.completion_id
                name_.append(info.name)
                done_.append((cid in done) if cid is not None else None)
                target_.append(info.invoked_target)
                sleep_.append(info.sleep_wakeup_at)
                promise_.append(info.promise_name)
                json_.append(info.entry_json)
    return cols, keys


STORE = Store("journal", SYS_JOURNAL.schema, Keyed.INVOCATIONS, rows, expand,
              frozenset(DECODED_JOURNAL_COLUMNS))
TABLES = (Table(SYS_JOURNAL, Kind.STORE, STORE),)
