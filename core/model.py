"""A partition's materialized state: what `apply` reads and writes.

Plain Python structures, owned by one partition processor (its single writer). The snapshot
files are made from these by `rstq.core.snapshot`, the SQL views by `rstq.query.tables` (which
follows `changes`); replaying the log from a snapshot rebuilds exactly the same structures.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rstq.core.changes import ChangeSet
from rstq.core.commands import AttachMode, HandlerTy, ServiceTy

if TYPE_CHECKING:
    from rstq.core.invocations import InvocationTable
    from rstq.core.objects import ObjectStates


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
    service_ty: ServiceTy
    handler_ty: HandlerTy
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
    # Journal events (sys_journal_events), oldest first, at most MAX_EVENTS: (appended at,
    # index of the entry they follow, "TransientError" | "Paused", fields as Restate names
    # them). A failure equal to the previous one (code, message, related command) adds none.
    events: list[tuple[int, int, str, dict[str, Any]]] = field(default_factory=list)
    sleep_timers: list[int] = field(default_factory=list)  # completion ids with a sleep timer
    # Invocations waiting on this one's result: (invocation id, completion id, how).
    attached: list[tuple[str, int, AttachMode]] = field(default_factory=list)

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


class TimerKind(enum.StrEnum):
    SLEEP = "sleep"  # a Sleep command: completes `completion_id`
    INVOKE = "invoke"  # a delayed invocation's start
    RETRY = "retry"  # the next attempt after a backoff
    CLEANUP = "cleanup"  # the end of a completed invocation's retention


@dataclass(frozen=True, slots=True)
class TimerId:
    """Who a timer is for. Its `key` (`kind:invocation[:completion]`) is the timer's key in
    `PartitionState.timers` and what `TimerFired` carries in the log: a partition has at most
    one timer of each kind per invocation, and one per sleep."""

    kind: TimerKind
    invocation_id: str
    completion_id: int | None = None  # sleep only

    @property
    def key(self) -> str:
        if self.completion_id is None:
            return f"{self.kind}:{self.invocation_id}"
        return f"{self.kind}:{self.invocation_id}:{self.completion_id}"


@dataclass(slots=True)
class Timer:
    timer_id: str  # TimerId.key
    fire_at: int
    kind: TimerKind
    invocation_id: str
    completion_id: int = 0  # for sleep
    epoch: int = 0  # for retry: only fires the attempt it was set for

    @classmethod
    def at(cls, tid: TimerId, fire_at: int, epoch: int = 0) -> Timer:
        return cls(tid.key, fire_at, tid.kind, tid.invocation_id, tid.completion_id or 0, epoch)


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
    # Live invocations in memory, completed ones on disk when there is a store (see
    # rstq.core.invocations; it behaves like a dict of invocation id -> Invocation).
    invocations: InvocationTable = field(default_factory=lambda: _table())
    # (service, key) -> {state key -> value}: recently used objects in memory, the rest on
    # disk when there is a store (rstq.core.objects; it behaves like a dict)
    kv: ObjectStates = field(default_factory=lambda: _objects())
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
    # Which keys of the tables above apply changed (not state: never snapshotted or compared).
    changes: ChangeSet = field(default_factory=ChangeSet, compare=False, repr=False)


def _table() -> InvocationTable:
    from rstq.core.invocations import InvocationTable  # it builds on the classes above

    return InvocationTable()


def _objects() -> ObjectStates:
    from rstq.core.objects import ObjectStates

    return ObjectStates()
