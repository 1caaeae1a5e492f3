"""A partition's materialized state: what `apply` reads and writes.

Plain Python structures, owned by one partition processor (its single writer). The Arrow views
for SQL and the snapshot files are made from these by `rstq.core.tables`; replaying the log from
a snapshot rebuilds exactly the same structures.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field


class Status(enum.StrEnum):
    """Internal invocation states (a StrEnum: snapshots and SQL keep the same text).
    `sys_invocation.status` is computed from these (query/tables.py)."""

    SCHEDULED = "scheduled"  # delayed: waits for its timer
    INBOXED = "inboxed"  # keyed: waits for the key's lock ("pending" in Restate's view)
    INVOKED = "invoked"  # an attempt runs or is about to ("running" / "ready")
    SUSPENDED = "suspended"
    BACKING_OFF = "backing-off"
    PAUSED = "paused"
    COMPLETED = "completed"


SCHEDULED = Status.SCHEDULED
INBOXED = Status.INBOXED
INVOKED = Status.INVOKED
SUSPENDED = Status.SUSPENDED
BACKING_OFF = Status.BACKING_OFF
PAUSED = Status.PAUSED
COMPLETED = Status.COMPLETED


@dataclass(slots=True)
class JournalEntry:
    entry_type: int  # protocol message type code (command 0x04xx, notification 0x8xxx)
    raw: bytes  # protobuf payload, replayed byte for byte
    appended_at: int  # ms since epoch
    callee_id: str | None = None  # for Call / OneWayCall: the invocation it created


@dataclass(slots=True)
class Invocation:
    invocation_id: str
    partition_key: int
    service: str
    handler: str
    key: str
    service_ty: str
    handler_ty: str
    status: Status
    created_at: int
    modified_at: int
    input: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    idempotency_key: str | None = None
    invoked_by: str = "ingress"
    caller_id: str | None = None
    caller_target: str | None = None
    caller_completion_id: int | None = None
    deployment_id: str = ""
    protocol_version: int = 0
    completion_retention_ms: int = 0
    journal_retention_ms: int = 0
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    link: str = ""
    execute_at: int | None = None  # scheduled start (delayed send)
    inboxed_at: int | None = None
    running_at: int | None = None  # first attempt start
    completed_at: int | None = None
    epoch: int = 0  # attempt number; frames of other epochs are fenced
    retry_count: int = 0  # failed attempts since the last stored entry
    total_retries: int = 0
    last_start_at: int | None = None
    next_retry_at: int | None = None
    last_failure: str | None = None
    last_failure_code: int | None = None
    last_failure_command_index: int | None = None
    last_failure_command_name: str | None = None
    last_failure_command_type: int | None = None
    waiting_completions: list[int] = field(default_factory=list)
    waiting_signals: list[int] = field(default_factory=list)
    waiting_named_signals: list[str] = field(default_factory=list)
    waiting_future_json: str = ""
    journal: list[JournalEntry] = field(default_factory=list)
    journal_commands: int = 0  # commands among the journal entries (Input included)
    # Completion ids and signals that already have a notification in the journal.
    completed_ids: set[int] = field(default_factory=set)
    signals_seen: set[int] = field(default_factory=set)
    named_signals_seen: set[str] = field(default_factory=set)
    # Result: set by the OutputCommand, final at End.
    output_value: bytes | None = None
    output_failure: tuple[int, str] | None = None
    output_stacktrace: str = ""  # when the retry policy ended it with the last error
    sleep_timers: list[int] = field(default_factory=list)  # completion ids with a sleep timer
    # Invocations waiting on this one's result: (invocation id, completion id, attach|call).
    attached: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def target(self) -> str:
        if self.key or self.service_ty != "service":
            return f"{self.service}/{self.key}/{self.handler}"
        return f"{self.service}/{self.handler}"

    @property
    def keyed(self) -> bool:
        return self.service_ty in ("virtual_object", "workflow")

    @property
    def exclusive(self) -> bool:
        return self.keyed and self.handler_ty in ("exclusive", "workflow", "")


@dataclass(slots=True)
class Timer:
    timer_id: str
    fire_at: int
    kind: str  # sleep | invoke | retry | cleanup
    invocation_id: str
    completion_id: int = 0  # for sleep
    epoch: int = 0  # for retry: only fires the attempt it was set for


@dataclass(slots=True)
class OutboxMessage:
    seq: int
    destination: int  # partition
    payload: bytes  # an encoded command
    created_at: int


@dataclass(slots=True)
class Promise:
    value: bytes | None = None
    failure: tuple[int, str] | None = None
    completed: bool = False
    # GetPromise waiters: (invocation id, completion id).
    waiters: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class PartitionState:
    partition_id: int
    partitions: int
    applied_lsn: int = 0
    invocations: dict[str, Invocation] = field(default_factory=dict)
    # (service, key) -> {state key -> value}
    kv: dict[tuple[str, str], dict[bytes, bytes]] = field(default_factory=dict)
    # (service, key) -> invocation holding the exclusive lock
    locks: dict[tuple[str, str], str] = field(default_factory=dict)
    # (service, key) -> waiting invocation ids in arrival order
    inboxes: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    inbox_seq: int = 0  # sequence numbers for inbox rows
    inbox_seqs: dict[str, int] = field(default_factory=dict)  # invocation -> inbox seq
    timers: dict[str, Timer] = field(default_factory=dict)
    outbox: dict[int, OutboxMessage] = field(default_factory=dict)
    outbox_next_seq: int = 1
    # source partition -> highest seq applied from it (exactly-once delivery)
    inbound_seq: dict[int, int] = field(default_factory=dict)
    # (workflow, key, promise name) -> promise
    promises: dict[tuple[str, str, str], Promise] = field(default_factory=dict)
    # (service, key, handler, idempotency key) -> invocation id
    idempotency: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
