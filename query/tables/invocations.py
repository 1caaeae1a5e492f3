"""The invocation tables: sys_invocation, sys_invocation_status, sys_invocation_state and
sys_status, four views over one store of invocation rows (one row per invocation, every column
any of them shows). Restate 1.7's columns, names, order and meaning (tests/query/test_tables.py).

To add an invocation column: declare it in `_INV`, set it in `rows`, and name it in the tables
that show it (`_STATUS_COLUMNS`, `_STATE_COLUMNS`, or a table's list below).
"""

from __future__ import annotations

from rstq.core import model as m
from rstq.core.changes import Keyed
from rstq.query.api import Column, TableDef
from rstq.query.entries import describe_type
from rstq.query.tables.base import (
    BOOL,
    DUR,
    PARTITION_KEY,
    STR,
    TS,
    U32,
    U32_LIST,
    U64,
    Kind,
    Row,
    RowContext,
    Select,
    Store,
    Table,
    col,
    failure_text,
    hot_invocation,
    row_type,
)

SERVER_VERSION = "rstq 0.1.0"

_INV = {c.name: c for c in (
    PARTITION_KEY,
    col("id", STR, "Invocation id (`inv_1…`)."),
    col("vqueue_id", STR, "Restate's experimental vqueue id; always NULL in rstq."),
    col("target", STR, "Invocation target: `Service/handler` or `Object/key/handler`."),
    col("target_service_name", STR, "Name of the invoked service."),
    col("target_service_key", STR, "Key of the virtual object or workflow; NULL for services."),
    col("target_handler_name", STR, "Name of the invoked handler."),
    col("target_service_ty", STR,
       "Service type: `service`, `virtual_object` or `workflow`."),
    col("scope", STR, "Restate's experimental scope; always NULL in rstq."),
    col("limit_key", STR, "Restate's experimental concurrency limit key; always NULL in rstq."),
    col("idempotency_key", STR, "Idempotency key given by the caller, if any."),
    col("invoked_by", STR, "Who created the invocation: `ingress` or `service`."),
    col("invoked_by_service_name", STR, "Calling service, when invoked_by = `service`."),
    col("invoked_by_id", STR, "Calling invocation's id, when invoked_by = `service`."),
    col("invoked_by_subscription_id", STR, "Kafka subscription; always NULL in rstq."),
    col("invoked_by_target", STR, "Calling invocation's target, when invoked_by = `service`."),
    col("restarted_from", STR, "Invocation this one was restarted from; NULL in rstq."),
    col("pinned_deployment_id", STR, "Deployment the invocation is pinned to."),
    col("pinned_service_protocol_version", U32, "Service protocol version negotiated for it."),
    col("trace_id", STR, "W3C trace id of the invocation's trace."),
    col("journal_size", U32, "Number of journal entries (commands and notifications)."),
    col("journal_commands_size", U32, "Number of commands in the journal (Input included)."),
    col("created_at", TS, "When the invocation was created."),
    col("created_using_restate_version", STR, "Server version that created it."),
    col("modified_at", TS, "Last change of the invocation's status or journal."),
    col("inboxed_at", TS, "When it entered the key's inbox (waiting for the lock)."),
    col("scheduled_at", TS, "When a delayed invocation was scheduled."),
    col("scheduled_start_at", TS, "When a delayed invocation is due to start."),
    col("running_at", TS, "When the first attempt started."),
    col("completed_at", TS, "When the invocation completed."),
    col("completion_retention", DUR, "How long the completed invocation is kept."),
    col("journal_retention", DUR, "How long the journal is kept after completion."),
    col("suspended_waiting_for_completions", U32_LIST,
       "When suspended: the completion ids it waits for."),
    col("suspended_waiting_for_signals", U32_LIST,
       "When suspended: the signal indexes it waits for."),
    col("suspended_waiting_future_json", STR,
       "When suspended (protocol v7): the awaited future, as JSON."),
    col("in_flight", BOOL, "An attempt is running now."),
    col("retry_count", U64, "Failed attempts since the last stored journal entry."),
    col("last_start_at", TS, "Start of the last attempt."),
    col("next_retry_at", TS, "When backing off: start of the next attempt."),
    col("last_attempt_deployment_id", STR, "Deployment of the last attempt."),
    col("last_attempt_server", STR, "SDK of the last attempt (`x-restate-server`); NULL in rstq."),
    col("last_failure", STR, "Error message of the last failed attempt."),
    col("last_failure_error_code", STR, "Error code of the last failed attempt."),
    col("last_failure_related_entry_index", U64, "Journal index of the failing entry."),
    col("last_failure_related_entry_name", STR, "Name of the failing entry."),
    col("last_failure_related_entry_type", STR, "Type of the failing entry."),
    col("last_failure_related_command_index", U64, "Command index of the failing command."),
    col("last_failure_related_command_name", STR, "Name of the failing command."),
    col("last_failure_related_command_type", STR, "Type of the failing command."),
    col("last_awaiting_on_future_json", STR, "What the last attempt awaited (v7); NULL in rstq."),
    col("status", STR,
       "Computed status: `pending` (in the inbox), `scheduled`, `ready`, `running`, "
       "`backing-off`, `suspended`, `paused` or `completed`.", nullable=False),
    col("completion_result", STR, "When completed: `success` or `failure`."),
    col("completion_failure", STR, "When completed with a failure: `[code] message`."),
)}

RAW_STATUS = col("status", STR,
                "Stored status: `scheduled`, `inboxed`, `invoked`, `suspended`, `paused` or "
                "`completed` (backing-off invocations are `invoked`).")


def _inv(*names: str) -> tuple[Column, ...]:
    return tuple(_INV[n] for n in names)


_STATUS_COLUMNS = (
    "id", "vqueue_id", "target", "target_service_name", "target_service_key",
    "target_handler_name", "target_service_ty", "scope", "limit_key", "idempotency_key",
    "invoked_by", "invoked_by_service_name", "invoked_by_id", "invoked_by_subscription_id",
    "invoked_by_target", "restarted_from", "pinned_deployment_id",
    "pinned_service_protocol_version", "trace_id", "journal_size", "journal_commands_size",
    "created_at", "created_using_restate_version", "modified_at", "inboxed_at", "scheduled_at",
    "scheduled_start_at", "running_at", "completed_at", "completion_retention",
    "journal_retention", "suspended_waiting_for_completions", "suspended_waiting_for_signals",
    "suspended_waiting_future_json",
)
_STATE_COLUMNS = (
    "retry_count", "last_start_at", "next_retry_at", "last_attempt_deployment_id",
    "last_attempt_server", "last_failure", "last_failure_error_code",
    "last_failure_related_entry_index", "last_failure_related_entry_name",
    "last_failure_related_entry_type", "last_failure_related_command_index",
    "last_failure_related_command_name", "last_failure_related_command_type",
    "last_awaiting_on_future_json",
)

SYS_INVOCATION = TableDef(
    "sys_invocation",
    "One row per invocation: sys_invocation_status joined with sys_invocation_state, with the "
    "computed status. A view in Restate; a materialized table in rstq.",
    _inv(*_STATUS_COLUMNS, *_STATE_COLUMNS, "status", "completion_result",
         "completion_failure"),
)

SYS_INVOCATION_STATUS = TableDef(
    "sys_invocation_status",
    "The stored status of every invocation (live and retained completed ones).",
    (*_inv("partition_key", "id", "vqueue_id"), RAW_STATUS,
     *_inv("completion_result", "completion_failure", *_STATUS_COLUMNS[2:10], "invoked_by",
           "invoked_by_id", "invoked_by_subscription_id", "invoked_by_service_name",
           *_STATUS_COLUMNS[14:])),
)

SYS_INVOCATION_STATE = TableDef(
    "sys_invocation_state",
    "The invoker's view: one row per invocation that is running, backing off or paused.",
    _inv("partition_key", "id", "in_flight", "retry_count", "last_start_at",
         "last_attempt_deployment_id", "last_attempt_server", "next_retry_at", "last_failure",
         "last_failure_error_code", "last_failure_related_command_index",
         "last_failure_related_command_name", "last_failure_related_command_type",
         "last_failure_related_entry_index", "last_failure_related_entry_name",
         "last_failure_related_entry_type", "last_awaiting_on_future_json"),
)

SYS_STATUS = TableDef(
    "sys_status",
    "Compact status view: one row per invocation.",
    (
        col("service", STR, "Invoked service."),
        col("method", STR, "Invoked handler."),
        col("id", STR, "Invocation id."),
        _INV["status"],
        col("invoked_by_service", STR, "Calling service, if called by one."),
        col("invoked_by_id", STR, "Calling invocation, if called by one."),
    ),
)

# --- the store -------------------------------------------------------------------------------

STORED_STATUS = col("stored_status", STR, "The stored status (sys_invocation_status.status).")
STORE_TABLE = TableDef("_invocations", "internal: every invocation column",
                       (*_INV.values(), STORED_STATUS))
InvocationRow = row_type("InvocationRow", STORE_TABLE.columns)

_STORED = {m.BACKING_OFF: "invoked"}  # Restate stores a backing-off invocation as invoked
_INVOKER_VIEW = (m.INVOKED, m.BACKING_OFF, m.PAUSED)  # the rows of sys_invocation_state


def computed_status(inv: m.Invocation, in_flight: bool) -> str:
    """sys_invocation.status, as Restate's view computes it."""
    s = inv.status
    if s == m.INBOXED:
        return "pending"
    if s in (m.SCHEDULED, m.COMPLETED, m.SUSPENDED, m.PAUSED):
        return s
    if s == m.INVOKED and in_flight:
        return "running"
    if s == m.BACKING_OFF or inv.retry_count > 0:
        return "backing-off"
    return "ready"


def _type_name(code: int | None) -> str | None:
    if code is None:
        return None
    return describe_type(code)[0].split(": ", 1)[-1]


def rows(state: m.PartitionState, inv_id: str, ctx: RowContext) -> list[Row]:
    inv = hot_invocation(state, inv_id)
    if inv is None:
        return []
    return [invocation_row(inv, ctx.in_flight(inv_id))]


def invocation_row(inv: m.Invocation, in_flight: bool) -> Row:
    """Every column of one invocation (the columns left out are NULL in rstq)."""
    completed = inv.status == m.COMPLETED
    running = in_flight and inv.status == m.INVOKED
    waiting = inv.status == m.SUSPENDED
    # The invoker's columns are NULL outside its view (as Restate's RIGHT JOIN gives).
    invoker = inv.status in _INVOKER_VIEW
    return InvocationRow(
        partition_key=inv.partition_key,
        id=inv.invocation_id,
        target=inv.target,
        target_service_name=inv.service,
        target_service_key=inv.key if inv.service_ty != "service" else None,
        target_handler_name=inv.handler,
        target_service_ty=inv.service_ty,
        idempotency_key=inv.idempotency_key,
        invoked_by=inv.invoked_by,
        invoked_by_service_name=(inv.caller_target.split("/", 1)[0]
                                 if inv.caller_target else None),
        invoked_by_id=inv.caller_id,
        invoked_by_target=inv.caller_target,
        pinned_deployment_id=inv.deployment_id or None,
        pinned_service_protocol_version=inv.protocol_version or None,
        trace_id=inv.trace_id or None,
        journal_size=len(inv.journal),
        journal_commands_size=inv.journal_commands,
        created_at=inv.created_at,
        created_using_restate_version=SERVER_VERSION,
        modified_at=inv.modified_at,
        inboxed_at=inv.inboxed_at,
        scheduled_at=inv.created_at if inv.execute_at is not None else None,
        scheduled_start_at=inv.execute_at,
        running_at=inv.running_at,
        completed_at=inv.completed_at,
        completion_retention=inv.completion_retention_ms,
        journal_retention=inv.journal_retention_ms,
        suspended_waiting_for_completions=inv.waiting_completions if waiting else None,
        suspended_waiting_for_signals=inv.waiting_signals if waiting else None,
        suspended_waiting_future_json=(inv.waiting_future_json or None) if waiting else None,
        in_flight=running if invoker else None,
        retry_count=inv.retry_count if invoker else None,
        last_start_at=inv.last_start_at if invoker else None,
        next_retry_at=inv.next_retry_at if invoker else None,
        last_attempt_deployment_id=(inv.deployment_id or None) if invoker else None,
        last_failure=inv.last_failure if invoker else None,
        last_failure_error_code=(str(inv.last_failure_code) if invoker and
                                 inv.last_failure_code is not None else None),
        last_failure_related_command_index=(inv.last_failure_command_index
                                            if invoker else None),
        last_failure_related_command_name=inv.last_failure_command_name if invoker else None,
        last_failure_related_command_type=(_type_name(inv.last_failure_command_type)
                                           if invoker else None),
        status=computed_status(inv, running),
        completion_result=(("failure" if inv.output_failure is not None else "success")
                           if completed else None),
        completion_failure=failure_text(inv.output_failure) if completed else None,
        stored_status=_STORED.get(inv.status, inv.status),
    )


STORE = Store("invocations", STORE_TABLE.schema, Keyed.INVOCATIONS, rows)


def _status_names() -> list[str]:
    return ["stored_status" if c.name == "status" else c.name
            for c in SYS_INVOCATION_STATUS.columns]


TABLES = (
    Table(SYS_INVOCATION, Kind.STORE, STORE,
          Select(SYS_INVOCATION, [c.name for c in SYS_INVOCATION.columns])),
    Table(SYS_INVOCATION_STATUS, Kind.STORE, STORE,
          Select(SYS_INVOCATION_STATUS, _status_names())),
    Table(SYS_INVOCATION_STATE, Kind.STORE, STORE,
          Select(SYS_INVOCATION_STATE, [c.name for c in SYS_INVOCATION_STATE.columns],
                 where="in_flight")),
    Table(SYS_STATUS, Kind.STORE, STORE, Select(SYS_STATUS, [
        "target_service_name", "target_handler_name", "id", "status",
        "invoked_by_service_name", "invoked_by_id"])),
)
