"""Log commands: every state change of a partition, in a compact versioned binary encoding.

A record's payload is msgpack `[FORMAT_VERSION, code, ts_ms, [field values...]]`. Fields are
positional, in declaration order; a later format may only append fields with defaults, so old
records still decode. `ts_ms` is the proposer's clock reading, carried in the record so that
`apply` never reads a clock itself.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgpack

FORMAT_VERSION = 1


class CommandDecodeError(ValueError):
    """A log payload that is not a command of a known format."""


class AttemptOutcome(enum.StrEnum):
    """What follows a failed attempt, decided by the proposer from the retry policy."""

    RETRY = "retry"  # back off, then a new attempt
    PAUSE = "pause"  # wait for a resume
    KILL = "kill"  # the retry policy gave up: end with this failure
    FAIL = "fail"  # the SDK said the failure is terminal for this attempt's error


class ServiceTy(enum.StrEnum):
    """An invocation's service type (as sys_invocation.target_service_ty shows it)."""

    SERVICE = "service"
    VIRTUAL_OBJECT = "virtual_object"
    WORKFLOW = "workflow"


class HandlerTy(enum.StrEnum):
    EXCLUSIVE = "exclusive"
    SHARED = "shared"
    WORKFLOW = "workflow"
    NONE = ""  # a plain service's handler


class AttachMode(enum.StrEnum):
    """How a waiter wants another invocation's result."""

    ATTACH = "attach"  # when it completes (AttachInvocation)
    OUTPUT = "output"  # now, or void if it has not completed (GetInvocationOutput)
    CALL = "call"  # when it completes, as a call's result (an idempotent or workflow call)


@dataclass(frozen=True, slots=True)
class Invoke:
    """Create an invocation (from ingress, a call, a one-way or delayed send)."""

    CODE: ClassVar[int] = 1
    invocation_id: str
    service: str
    handler: str
    key: str
    service_ty: ServiceTy
    handler_ty: HandlerTy
    input: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    idempotency_key: str | None = None
    invoked_by: str = "ingress"  # ingress | service
    caller_id: str | None = None
    caller_target: str | None = None
    caller_completion_id: int | None = None  # CallCompletion goes there when this one ends
    execute_at_ms: int = 0  # 0 = now; later = scheduled (delayed send)
    deployment_id: str = ""
    protocol_version: int = 0
    completion_retention_ms: int = 86_400_000
    journal_retention_ms: int = 86_400_000
    trace_id: str = ""  # "" = untraced (rstq.protocol.trace_ids decides the ids)
    span_id: str = ""  # the invocation's own span
    parent_span_id: str = ""  # its parent: the ingress span or the caller's attempt span
    link: str = ""  # "<trace>:<span>" of the sender's attempt, for sends (a new trace)


@dataclass(frozen=True, slots=True)
class AppendEntry:
    """A journal entry produced by a running attempt (a command, or a run completion)."""

    CODE: ClassVar[int] = 2
    invocation_id: str
    epoch: int
    entry_type: int  # protocol message type code
    raw: bytes  # protobuf payload exactly as the SDK sent it (replayed byte for byte)
    # For Call/OneWay: the callee's new invocation id and its resolved target, decided by the
    # proposer (ids are random; apply must not invent them).
    callee_id: str | None = None
    callee_service_ty: str = ""
    callee_handler_ty: str = ""
    callee_deployment_id: str = ""
    callee_protocol_version: int = 0
    # The callee's own retention (ms; -1: a record from before these fields: the caller's).
    callee_completion_retention_ms: int = -1
    callee_journal_retention_ms: int = -1


@dataclass(frozen=True, slots=True)
class Notify:
    """A notification for an invocation from outside its attempt (timer, callee, signal)."""

    CODE: ClassVar[int] = 3
    invocation_id: str
    entry_type: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Suspend:
    CODE: ClassVar[int] = 4
    invocation_id: str
    epoch: int
    waiting_completions: list[int] = field(default_factory=list)
    waiting_signals: list[int] = field(default_factory=list)
    waiting_named_signals: list[str] = field(default_factory=list)
    future_json: str = ""


@dataclass(frozen=True, slots=True)
class End:
    """The attempt sent End after its Output: the invocation is complete."""

    CODE: ClassVar[int] = 5
    invocation_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    CODE: ClassVar[int] = 6
    invocation_id: str
    epoch: int
    code: int
    message: str
    stacktrace: str = ""
    related_command_index: int | None = None
    related_command_name: str | None = None
    related_command_type: int | None = None
    # What follows the failure, decided by the proposer from the retry policy:
    then: AttemptOutcome = AttemptOutcome.RETRY
    retry_at_ms: int = 0
    doc_code: str = ""  # Restate's error doc code ("RT0007": the service sent the error)


@dataclass(frozen=True, slots=True)
class TimerFired:
    CODE: ClassVar[int] = 7
    timer_id: str


@dataclass(frozen=True, slots=True)
class StateMutation:
    """K/V state change from outside an invocation (admin API)."""

    CODE: ClassVar[int] = 8
    service: str
    key: str
    sets: list[tuple[bytes, bytes]] = field(default_factory=list)
    clears: list[bytes] = field(default_factory=list)
    clear_all: bool = False


@dataclass(frozen=True, slots=True)
class Deliver:
    """A message from another partition's outbox; deduplicated by (source, seq)."""

    CODE: ClassVar[int] = 9
    source_partition: int
    seq: int
    inner: bytes  # an encoded command


@dataclass(frozen=True, slots=True)
class OutboxAck:
    CODE: ClassVar[int] = 10
    seq: int


@dataclass(frozen=True, slots=True)
class Cancel:
    CODE: ClassVar[int] = 11
    invocation_id: str


@dataclass(frozen=True, slots=True)
class Kill:
    CODE: ClassVar[int] = 12
    invocation_id: str


@dataclass(frozen=True, slots=True)
class Purge:
    CODE: ClassVar[int] = 13
    invocation_id: str


@dataclass(frozen=True, slots=True)
class Pause:
    CODE: ClassVar[int] = 14
    invocation_id: str


@dataclass(frozen=True, slots=True)
class Resume:
    CODE: ClassVar[int] = 15
    invocation_id: str


@dataclass(frozen=True, slots=True)
class RegisterDeployment:
    """A deployment and its discovered services (metadata log)."""

    CODE: ClassVar[int] = 16
    deployment_id: str
    uri: str
    manifest_json: str
    use_http_11: bool = False
    additional_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RemoveDeployment:
    CODE: ClassVar[int] = 17
    deployment_id: str


@dataclass(frozen=True, slots=True)
class AttachRequest:
    """Another invocation waits on this one's result (attach) or asks for it now (output)."""

    CODE: ClassVar[int] = 18
    target_id: str
    waiter_id: str
    completion_id: int
    mode: AttachMode = AttachMode.ATTACH


Command = (
    Invoke | AppendEntry | Notify | Suspend | End | AttemptFailed | TimerFired | StateMutation
    | Deliver | OutboxAck | Cancel | Kill | Purge | Pause | Resume | RegisterDeployment
    | RemoveDeployment | AttachRequest
)

_CLASSES: tuple[type[Any], ...] = (
    Invoke, AppendEntry, Notify, Suspend, End, AttemptFailed, TimerFired, StateMutation,
    Deliver, OutboxAck, Cancel, Kill, Purge, Pause, Resume, RegisterDeployment, RemoveDeployment,
    AttachRequest,
)
BY_CODE: dict[int, type[Any]] = {cls.CODE: cls for cls in _CLASSES}
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _CLASSES
}
# Fields whose msgpack form (lists) must become tuples again on decode.
_PAIR_FIELDS = {"headers", "sets", "additional_headers"}


def _enum_fields(cls: type[Any]) -> dict[str, type[enum.StrEnum]]:
    """Fields that hold a StrEnum: stored as their text, decoded back to the enum."""
    hints = typing.get_type_hints(cls)
    return {n: h for n, h in hints.items()
            if isinstance(h, type) and issubclass(h, enum.StrEnum)}


_ENUM_FIELDS: dict[type[Any], dict[str, type[enum.StrEnum]]] = {
    cls: e for cls in _CLASSES if (e := _enum_fields(cls))
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A command with the proposer's timestamp, as stored in one log record."""

    ts_ms: int
    command: Command


def encode(ts_ms: int, command: Command) -> bytes:
    names = _FIELDS[type(command)]
    values = [getattr(command, n) for n in names]
    return msgpack.packb([FORMAT_VERSION, command.CODE, ts_ms, values], use_bin_type=True)


def decode(payload: bytes) -> Envelope:
    try:
        version, code, ts_ms, values = msgpack.unpackb(payload, raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError) as e:
        raise CommandDecodeError(f"undecodable command record: {e}") from e
    if version != FORMAT_VERSION:
        raise CommandDecodeError(f"unknown command format version {version}")
    cls = BY_CODE.get(code)
    if cls is None:
        raise CommandDecodeError(f"unknown command code {code}")
    names = _FIELDS[cls]
    if len(values) > len(names):
        raise CommandDecodeError(f"{cls.__name__}: {len(values)} fields, expected {len(names)}")
    kwargs = dict(zip(names, values, strict=False))  # older records may lack new fields
    for name in _PAIR_FIELDS.intersection(kwargs):
        kwargs[name] = [tuple(p) for p in kwargs[name]]
    try:
        for name, enum_type in _ENUM_FIELDS.get(cls, {}).items():
            if name in kwargs:
                kwargs[name] = enum_type(kwargs[name])
        return Envelope(ts_ms, cls(**kwargs))
    except (TypeError, ValueError) as e:
        raise CommandDecodeError(f"{cls.__name__}: {e}") from e


T = TypeVar("T")


def roundtrip(ts_ms: int, command: T) -> T:
    """encode then decode (for tests and for applying local outbox messages uniformly)."""
    return decode(encode(ts_ms, command)).command  # type: ignore[arg-type,return-value]
