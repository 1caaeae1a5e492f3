"""Every SQL table, declared once: name, Arrow type and doc per column.

These declarations are the single source for DataFusion (the Arrow schemas), `\\d` and
information_schema (through DataFusion), and `docs/tables.md` (`python -m rstq.query.docs`).
Where Restate 1.7 has the table, the columns are Restate's, with the same names, order, types
and meaning, so the same queries work on both servers (tests/query/test_tables.py checks it).
"""

from __future__ import annotations

import pyarrow as pa
from rstq.query.api import Column, TableDef

U32 = pa.uint32()
U64 = pa.uint64()
STR = pa.large_utf8()
BIN = pa.large_binary()
BOOL = pa.bool_()
TS = pa.timestamp("ms", tz="+00:00")
DUR = pa.duration("ms")
U32_LIST = pa.list_(pa.uint32())
STR_LIST = pa.list_(pa.large_utf8())


def _c(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> Column:
    return Column(name, type_, doc, nullable)


PARTITION_KEY = _c("partition_key", U64,
                   "Internal: the partition key (u64) of the row; the partition owning the "
                   "key range holds it.")

# --- invocation columns (sys_invocation_status, sys_invocation_state, sys_invocation) ----------

_INV = {c.name: c for c in (
    PARTITION_KEY,
    _c("id", STR, "Invocation id (`inv_1…`)."),
    _c("vqueue_id", STR, "Restate's experimental vqueue id; always NULL in rstq."),
    _c("target", STR, "Invocation target: `Service/handler` or `Object/key/handler`."),
    _c("target_service_name", STR, "Name of the invoked service."),
    _c("target_service_key", STR, "Key of the virtual object or workflow; NULL for services."),
    _c("target_handler_name", STR, "Name of the invoked handler."),
    _c("target_service_ty", STR,
       "Service type: `service`, `virtual_object` or `workflow`."),
    _c("scope", STR, "Restate's experimental scope; always NULL in rstq."),
    _c("limit_key", STR, "Restate's experimental concurrency limit key; always NULL in rstq."),
    _c("idempotency_key", STR, "Idempotency key given by the caller, if any."),
    _c("invoked_by", STR, "Who created the invocation: `ingress` or `service`."),
    _c("invoked_by_service_name", STR, "Calling service, when invoked_by = `service`."),
    _c("invoked_by_id", STR, "Calling invocation's id, when invoked_by = `service`."),
    _c("invoked_by_subscription_id", STR, "Kafka subscription; always NULL in rstq."),
    _c("invoked_by_target", STR, "Calling invocation's target, when invoked_by = `service`."),
    _c("restarted_from", STR, "Invocation this one was restarted from; NULL in rstq."),
    _c("pinned_deployment_id", STR, "Deployment the invocation is pinned to."),
    _c("pinned_service_protocol_version", U32, "Service protocol version negotiated for it."),
    _c("trace_id", STR, "W3C trace id of the invocation's trace."),
    _c("journal_size", U32, "Number of journal entries (commands and notifications)."),
    _c("journal_commands_size", U32, "Number of commands in the journal (Input included)."),
    _c("created_at", TS, "When the invocation was created."),
    _c("created_using_restate_version", STR, "Server version that created it."),
    _c("modified_at", TS, "Last change of the invocation's status or journal."),
    _c("inboxed_at", TS, "When it entered the key's inbox (waiting for the lock)."),
    _c("scheduled_at", TS, "When a delayed invocation was scheduled."),
    _c("scheduled_start_at", TS, "When a delayed invocation is due to start."),
    _c("running_at", TS, "When the first attempt started."),
    _c("completed_at", TS, "When the invocation completed."),
    _c("completion_retention", DUR, "How long the completed invocation is kept."),
    _c("journal_retention", DUR, "How long the journal is kept after completion."),
    _c("suspended_waiting_for_completions", U32_LIST,
       "When suspended: the completion ids it waits for."),
    _c("suspended_waiting_for_signals", U32_LIST,
       "When suspended: the signal indexes it waits for."),
    _c("suspended_waiting_future_json", STR,
       "When suspended (protocol v7): the awaited future, as JSON."),
    _c("in_flight", BOOL, "An attempt is running now."),
    _c("retry_count", U64, "Failed attempts since the last stored journal entry."),
    _c("last_start_at", TS, "Start of the last attempt."),
    _c("next_retry_at", TS, "When backing off: start of the next attempt."),
    _c("last_attempt_deployment_id", STR, "Deployment of the last attempt."),
    _c("last_attempt_server", STR, "SDK of the last attempt (`x-restate-server`); NULL in rstq."),
    _c("last_failure", STR, "Error message of the last failed attempt."),
    _c("last_failure_error_code", STR, "Error code of the last failed attempt."),
    _c("last_failure_related_entry_index", U64, "Journal index of the failing entry."),
    _c("last_failure_related_entry_name", STR, "Name of the failing entry."),
    _c("last_failure_related_entry_type", STR, "Type of the failing entry."),
    _c("last_failure_related_command_index", U64, "Command index of the failing command."),
    _c("last_failure_related_command_name", STR, "Name of the failing command."),
    _c("last_failure_related_command_type", STR, "Type of the failing command."),
    _c("last_awaiting_on_future_json", STR, "What the last attempt awaited (v7); NULL in rstq."),
    _c("status", STR,
       "Computed status: `pending` (in the inbox), `scheduled`, `ready`, `running`, "
       "`backing-off`, `suspended`, `paused` or `completed`.", nullable=False),
    _c("completion_result", STR, "When completed: `success` or `failure`."),
    _c("completion_failure", STR, "When completed with a failure: `[code] message`."),
)}

RAW_STATUS = _c("status", STR,
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
        _c("service", STR, "Invoked service."),
        _c("method", STR, "Invoked handler."),
        _c("id", STR, "Invocation id."),
        _INV["status"],
        _c("invoked_by_service", STR, "Calling service, if called by one."),
        _c("invoked_by_id", STR, "Calling invocation, if called by one."),
    ),
)

# --- journal -------------------------------------------------------------------------------------

SYS_JOURNAL = TableDef(
    "sys_journal",
    "One row per journal entry (commands and notifications) of every retained invocation.",
    (
        PARTITION_KEY,
        _c("id", STR, "Invocation id."),
        _c("index", U32, "Position of the entry in the journal (0 = Input)."),
        _c("entry_type", STR, "`Command: <Name>` or `Notification: <Name>`."),
        _c("name", STR, "Name given to the command by the handler (e.g. `ctx.run` name)."),
        _c("completed", BOOL,
           "For commands with a result: whether its completion is in the journal."),
        _c("invoked_id", STR, "For Call / OneWayCall: the callee's invocation id."),
        _c("invoked_target", STR, "For Call / OneWayCall: the callee's target."),
        _c("sleep_wakeup_at", TS, "For Sleep: when it wakes up."),
        _c("promise_name", STR, "For promise commands: the promise name."),
        _c("raw", BIN, "The entry's protobuf payload as the SDK sent it."),
        _c("raw_length", U64, "Length of raw in bytes."),
        _c("version", U32, "Journal format version (2: protocol v4+ commands/notifications)."),
        _c("entry_json", STR, "The decoded entry as JSON."),
        _c("entry_lite_json", STR, "The entry's kind as JSON, without its fields."),
        _c("appended_at", TS, "When the entry was stored."),
    ),
)

SYS_JOURNAL_EVENTS = TableDef(
    "sys_journal_events",
    "Journal events (transient errors, pauses) between entries. rstq records none yet: the "
    "last failure is in sys_invocation.",
    (
        PARTITION_KEY,
        _c("id", STR, "Invocation id."),
        _c("after_journal_entry_index", U32, "Index of the entry the event follows."),
        _c("appended_at", TS, "When the event was recorded."),
        _c("event_type", STR, "Event type."),
        _c("event_json", STR, "The event as JSON."),
    ),
)

# --- keyed state, inbox, locks, promises -------------------------------------------------------

STATE = TableDef(
    "state",
    "K/V state of virtual objects and workflows: one row per (service, key, state key).",
    (
        PARTITION_KEY,
        _c("scope", STR, "Restate's experimental scope; always NULL in rstq."),
        _c("service_name", STR, "Virtual object or workflow name."),
        _c("service_key", STR, "Object / workflow key."),
        _c("key", STR, "State key."),
        _c("key_length", U64, "Length of the state key in bytes."),
        _c("value_utf8", STR, "The value as text, when it is valid UTF-8 (e.g. JSON)."),
        _c("value", BIN, "The value's bytes, as the SDK's serde wrote them."),
        _c("value_length", U64, "Length of the value in bytes."),
    ),
)

SYS_INBOX = TableDef(
    "sys_inbox",
    "Invocations waiting for their key's lock, in arrival order per key.",
    (
        PARTITION_KEY,
        _c("service_name", STR, "Virtual object or workflow name."),
        _c("service_key", STR, "Object / workflow key."),
        _c("id", STR, "Waiting invocation's id."),
        _c("sequence_number", U64, "Arrival order within the partition."),
        _c("created_at", TS, "When it entered the inbox."),
    ),
)

SYS_KEYED_SERVICE_STATUS = TableDef(
    "sys_keyed_service_status",
    "Locked keys: the invocation holding each virtual object / workflow key's exclusive lock.",
    (
        PARTITION_KEY,
        _c("service_name", STR, "Virtual object or workflow name."),
        _c("service_key", STR, "Object / workflow key."),
        _c("invocation_id", STR, "Invocation holding the lock."),
    ),
)

SYS_PROMISE = TableDef(
    "sys_promise",
    "Durable promises of workflows.",
    (
        PARTITION_KEY,
        _c("scope", STR, "Restate's experimental scope; always NULL in rstq."),
        _c("service_name", STR, "Workflow name."),
        _c("service_key", STR, "Workflow key."),
        _c("key", STR, "Promise name."),
        _c("completed", BOOL, "Whether the promise is resolved or rejected."),
        _c("completion_success_value", BIN, "Value it was resolved with."),
        _c("completion_success_value_utf8", STR, "That value as text, when valid UTF-8."),
        _c("completion_failure", STR, "Failure it was rejected with: `[code] message`."),
    ),
)

# --- metadata --------------------------------------------------------------------------------

SYS_SERVICE = TableDef(
    "sys_service",
    "Registered services (latest revision of each).",
    (
        _c("name", STR, "Service name."),
        _c("revision", U64, "Revision: bumped each time a deployment re-registers it."),
        _c("public", BOOL, "Reachable through ingress."),
        _c("ty", STR, "`service`, `virtual_object` or `workflow`."),
        _c("deployment_id", STR, "Deployment serving the latest revision."),
    ),
)

SYS_DEPLOYMENT = TableDef(
    "sys_deployment",
    "Registered deployments (service endpoints).",
    (
        _c("id", STR, "Deployment id (`dp_…`)."),
        _c("ty", STR, "Endpoint kind: `http`."),
        _c("endpoint", STR, "Endpoint URI."),
        _c("created_at", TS, "When it was registered."),
        _c("min_service_protocol_version", U32, "Lowest protocol version it speaks."),
        _c("max_service_protocol_version", U32, "Highest protocol version it speaks."),
        _c("services", STR_LIST, "Services it serves."),
    ),
)

# --- rstq's own tables -----------------------------------------------------------------------

SYS_TIMER = TableDef(
    "sys_timer",
    "rstq: durable timers (sleeps, delayed invocations, retry backoff, retention cleanup).",
    (
        PARTITION_KEY,
        _c("timer_id", STR, "Timer id: `<kind>:<invocation id>[:<completion id>]`."),
        _c("kind", STR, "`sleep`, `invoke` (delayed start), `retry` or `cleanup`."),
        _c("invocation_id", STR, "Invocation the timer belongs to."),
        _c("fire_at", TS, "When it fires."),
        _c("completion_id", U32, "For sleep: the completion id it completes."),
        _c("epoch", U64, "For retry: the attempt it retries."),
    ),
)

SYS_IDEMPOTENCY = TableDef(
    "sys_idempotency",
    "rstq: idempotency keys and the invocation each one maps to (Restate has no such table; "
    "the key is also sys_invocation.idempotency_key).",
    (
        PARTITION_KEY,
        _c("service_name", STR, "Invoked service."),
        _c("service_key", STR, "Object / workflow key; NULL for services."),
        _c("service_handler", STR, "Invoked handler."),
        _c("idempotency_key", STR, "The idempotency key."),
        _c("invocation_id", STR, "Invocation it maps to."),
    ),
)

SYS_PARTITION = TableDef(
    "sys_partition",
    "rstq: one row per partition, with its log positions.",
    (
        _c("partition_id", U32, "Partition number."),
        _c("start_partition_key", U64, "First partition key it owns."),
        _c("end_partition_key", U64, "Last partition key it owns."),
        _c("applied_lsn", U64, "Last log position applied to the state."),
        _c("durable_lsn", U64, "Last log position durable (fsynced)."),
        _c("first_lsn", U64, "First log position still in the log (below: trimmed)."),
        _c("snapshot_lsn", U64, "Log position of the latest snapshot."),
        _c("leader_epoch", U64, "Leader epoch (single node: always 1)."),
        _c("leader", STR, "Node leading the partition."),
        _c("invocations", U64, "Invocations held (live and retained)."),
        _c("state_version", U64, "Applied batches since start (the views' change counter)."),
    ),
)

SYS_SPAN = TableDef(
    "sys_span",
    "rstq: recent trace spans made from the call graph (a bounded in-memory store; empty when "
    "tracing is off: start the server with --otlp URL or --trace-store). Join to invocations "
    "on invocation_id or trace_id.",
    (
        _c("trace_id", STR, "W3C trace id (32 hex digits); sys_invocation.trace_id."),
        _c("span_id", STR, "Span id (16 hex digits)."),
        _c("parent_span_id", STR, "Parent span id; NULL for a root span."),
        _c("name", STR, "`ingress`, `invocation-start`, `invocation-attempt`, `invocation-end`, "
                        "... followed by the target pattern."),
        _c("start", TS, "Span start."),
        _c("end", TS, "Span end; NULL while the span (e.g. a running attempt) is open."),
        _c("status", STR, "`OK`, `ERROR: <message>` or `UNSET`."),
        _c("attributes", STR, "Span attributes as a JSON object."),
        _c("invocation_id", STR, "Invocation the span belongs to."),
    ),
)

TABLES: tuple[TableDef, ...] = (
    SYS_INVOCATION, SYS_INVOCATION_STATUS, SYS_INVOCATION_STATE, SYS_STATUS, SYS_JOURNAL,
    SYS_JOURNAL_EVENTS, STATE, SYS_INBOX, SYS_KEYED_SERVICE_STATUS, SYS_PROMISE, SYS_SERVICE,
    SYS_DEPLOYMENT, SYS_TIMER, SYS_IDEMPOTENCY, SYS_PARTITION, SYS_SPAN,
)
BY_NAME = {t.name: t for t in TABLES}

# The invocation store's columns: everything the three invocation tables and sys_status need.
INVOCATION_STORE = TableDef(
    "_invocations", "internal",
    (*_INV.values(), _c("_raw_status", STR, "stored status")),
)
