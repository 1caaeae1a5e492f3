"""Actions: what applying a durable command asks the partition's shell to do.

`apply` only returns them; the processor runs them after the command is durable and applied, so
an effect exists only if its command is in the log.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StartAttempt:
    invocation_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class AbortAttempt:
    invocation_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ForwardNotification:
    """A notification was stored for a running attempt (BIDI streams push it at once)."""

    invocation_id: str
    epoch: int
    journal_index: int


@dataclass(frozen=True, slots=True)
class TimerSet:
    timer_id: str
    fire_at: int


@dataclass(frozen=True, slots=True)
class OutboxSend:
    seq: int
    destination: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class InvocationCompleted:
    invocation_id: str
    value: bytes | None
    failure: tuple[int, str] | None
    stacktrace: str = ""


@dataclass(frozen=True, slots=True)
class InvokeOutcome:
    """Answer to an Invoke: accepted now, or a duplicate of an existing invocation."""

    invocation_id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command that had no effect (stale epoch, unknown invocation, forbidden write)."""

    invocation_id: str
    reason: str


Action = (
    StartAttempt | AbortAttempt | ForwardNotification | TimerSet | OutboxSend
    | InvocationCompleted | InvokeOutcome | Rejected
)
