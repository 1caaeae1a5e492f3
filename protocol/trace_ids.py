"""Trace and span ids, as pure functions of what the log holds.

Ids are decided where commands are made (the proposer, or `apply` from its command) and derived
again wherever needed, so replaying the log gives the same ids and the invoker's `traceparent`
points at the span the observer exports:

- an invocation's own span (`invocation-start`) is the low 8 bytes of its uuid (as restate does);
- an attempt's span is a hash of (invocation id, attempt number);
- a send starts a trace whose id is the callee's uuid (as restate does), linked to the sender.

No OpenTelemetry import here: `apply` and the ingress use this module with tracing off too.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass

from rstq.protocol.ids import InvocationId

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    sampled: bool


def parse_traceparent(value: str | None) -> TraceParent | None:
    """A W3C `traceparent` header, or None when absent or invalid."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace, span = m.group(2), m.group(3)
    if trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    return TraceParent(trace, span, bool(int(m.group(4), 16) & 1))


def traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


# Random ids need to be unique, not secret (the OTel SDK's generator is random.getrandbits too);
# os.urandom releases the GIL, which costs a thread switch when the export thread is busy.
_rng = random.Random(os.urandom(16))


def new_trace_id() -> str:
    return _nonzero(f"{_rng.getrandbits(128):032x}")


def derived_span_id(invocation_id: str, what: str) -> str:
    """A span id of the invocation's own (e.g. its end span), stable across replays."""
    digest = hashlib.blake2b(f"{invocation_id}/{what}".encode(), digest_size=8).hexdigest()
    return _nonzero(digest)


def _nonzero(h: str) -> str:
    return h if h.strip("0") else h[:-1] + "1"


def invocation_span_id(invocation_id: str) -> str:
    """The `invocation-start` span: the low 8 bytes of the invocation uuid."""
    return _nonzero(f"{InvocationId.parse(invocation_id).uuid & ((1 << 64) - 1):016x}")


def uuid_trace_id(invocation_id: str) -> str:
    """The trace an invocation starts when it has no parent: its uuid."""
    return _nonzero(f"{InvocationId.parse(invocation_id).uuid:032x}")


def attempt_span_id(invocation_id: str, epoch: int) -> str:
    """The `invocation-attempt` span of attempt `epoch` (its `traceparent` to the service)."""
    digest = hashlib.blake2b(f"{invocation_id}/{epoch}".encode(), digest_size=8).hexdigest()
    return _nonzero(digest)


def ingress_span_id(invocation_id: str) -> str:
    digest = hashlib.blake2b(f"{invocation_id}/ingress".encode(), digest_size=8).hexdigest()
    return _nonzero(digest)


@dataclass(frozen=True, slots=True)
class InvokeTrace:
    """The tracing fields of an `Invoke` command (all "" when the invocation is untraced)."""

    trace_id: str = ""
    span_id: str = ""  # the invocation's own span
    parent_span_id: str = ""  # ingress span, or the caller's attempt span
    link: str = ""  # "<trace>:<span>" of the sender's attempt (sends start a new trace)


UNTRACED = InvokeTrace()


def for_ingress(invocation_id: str, incoming: TraceParent | None) -> InvokeTrace:
    """An ingress request: the caller's trace when a traceparent came in, else a new one.
    The invocation span hangs under the ingress span (whose parent is the incoming span)."""
    trace = incoming.trace_id if incoming is not None else new_trace_id()
    return InvokeTrace(trace, invocation_span_id(invocation_id), ingress_span_id(invocation_id))


def for_callee(caller_trace_id: str, caller_id: str, caller_epoch: int, callee_id: str,
               one_way: bool) -> InvokeTrace:
    """A call is a child of the caller's attempt; a one-way or delayed send starts a new trace
    linked to it. Pure: `apply` calls it when it turns a Call command into an Invoke."""
    if not caller_trace_id:
        return UNTRACED
    attempt = attempt_span_id(caller_id, caller_epoch)
    span = invocation_span_id(callee_id)
    if one_way:
        return InvokeTrace(uuid_trace_id(callee_id), span, "", f"{caller_trace_id}:{attempt}")
    return InvokeTrace(caller_trace_id, span, attempt)
