"""The tracing observer: spans derived from what the partition processor applied.

`apply` stays pure; after each batch the processor hands every applied command, with the
actions it produced and the partition state, to `on_applied`. From those this derives, per
invocation (restate-server 1.7's span model, shared/reference/restate-traces.md):

    ingress <target>                 0 ms, child of the request's traceparent (if any)
    └─ invocation-start <target>     created → first attempt (a delayed send: the delay)
       ├─ invocation-attempt-started 0 ms, for an attempt still running after ~250 ms
       ├─ invocation-attempt <target>  one per attempt; journal commands and notifications
       │    are events; ERROR on failure; ends "suspended" on suspension (resume: next attempt)
       │  └─ invocation-start <callee>  a call's callee is a child of the caller's attempt
       └─ invocation-end <target>    0 ms, restate.invocation.result

A send (one-way or delayed) starts a new trace whose `invocation-start` links to the sender's
attempt. Ids come from the invocation (`rstq.protocol.trace_ids`), so they match the `traceparent`
the invoker sends and `sys_invocation.trace_id`. Untraced invocations (trace_id "") cost a dict
lookup per action.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core import journal as j
from rstq.core.model import Invocation, PartitionState
from rstq.protocol import messages as pm
from rstq.protocol import trace_ids as ids
from rstq.tracing import attributes as A
from rstq.tracing.spans import Attrs, SpanEvent, SpanLink, SpanRecord

Sink = Callable[[SpanRecord], None]
Deployments = Callable[[str], tuple[str, int] | None]  # deployment id -> (address, version)

_NAMED = {j.RUN, j.CALL, j.ONE_WAY_CALL, j.SLEEP}  # commands whose name is worth decoding


def _type_name(entry_type: int, prefix: str) -> str:
    try:
        name = pm.MessageType(entry_type).name
    except ValueError:
        return f"{prefix}/Custom(0x{entry_type:04x})"
    for suffix in ("_COMPLETION_NOTIFICATION", "_NOTIFICATION", "_COMMAND"):
        name = name.removesuffix(suffix)
    return f"{prefix}/" + "".join(w.capitalize() for w in name.split("_"))


_COMMAND_TYPE = {int(t): _type_name(t, "Command") for t in pm.MessageType if 0x400 <= t < 0x8000}
_NOTIFICATION_TYPE = {int(t): _type_name(t, "Notification") for t in pm.MessageType
                      if t >= 0x8000}


@dataclass(slots=True)
class _Live:
    """What the observer keeps of a traced, unfinished invocation."""

    invocation_id: str
    trace_id: str
    span_id: str
    pattern: str  # "Greeter/{key}/greet"
    attrs: Attrs
    start: SpanRecord | None = None  # the invocation-start span until the first attempt
    attempt: SpanRecord | None = None
    suspended: bool = False


def _pattern(inv: Invocation) -> str:
    if inv.key or inv.service_ty != "service":
        return f"{inv.service}/{{key}}/{inv.handler}"
    return f"{inv.service}/{inv.handler}"


class TraceObserver:
    def __init__(self, store: Sink, export: Sink | None, deployments: Deployments,
                 marker: bool = True) -> None:
        self._store = store  # spans go in at their start (open spans show live work)
        self._export = export  # finished spans, to OTLP
        self._deployments = deployments
        self._marker = marker  # export invocation-attempt-started at each attempt start
        self._live: dict[str, _Live] = {}
        self._unmarked: dict[str, SpanRecord] = {}  # running attempts not announced yet

    def _new(self, span: SpanRecord) -> None:
        """A span made finished (ingress, end, marker): stored and exported at once."""
        self._store(span)
        if self._export is not None:
            self._export(span)

    def _ended(self, span: SpanRecord) -> None:
        """A stored span that just finished."""
        if self._export is not None:
            self._export(span)

    # --- the hook ------------------------------------------------------------------------------

    def on_applied(self, partition: int, env: c.Envelope, actions: list[a.Action],
                   state: PartitionState) -> None:
        now = time.time_ns()
        cmd = env.command
        if isinstance(cmd, c.AppendEntry):
            self._command(cmd, state, now)
        elif isinstance(cmd, c.Suspend):
            self._suspended(cmd, now)
        elif isinstance(cmd, c.End):
            self._end_attempt(cmd.invocation_id, cmd.epoch, now, A.OK, "", "end")
        elif isinstance(cmd, c.AttemptFailed):
            self._end_attempt(cmd.invocation_id, cmd.epoch, now, A.ERROR,
                              f"[{cmd.code}] {cmd.message}"[:1000], "failed", cmd.code)
        for act in actions:
            if isinstance(act, a.InvokeOutcome):
                if not act.duplicate:
                    self._created(state, act.invocation_id, now)
            elif isinstance(act, a.StartAttempt):
                self._attempt_started(state, act.invocation_id, act.epoch, now)
            elif isinstance(act, a.ForwardNotification):
                self._notification(state, act, now)
            elif isinstance(act, a.AbortAttempt):
                self._end_attempt(act.invocation_id, act.epoch, now, A.ERROR,
                                  "attempt aborted", "aborted")
            elif isinstance(act, a.InvocationCompleted):
                self._completed(act, now)

    def on_redrive(self, partition: int, actions: list[a.Action], state: PartitionState,
                   ) -> None:
        """Attempts restarted after recovery (their invocation spans were exported before)."""
        now = time.time_ns()
        for act in actions:
            if isinstance(act, a.StartAttempt):
                self._attempt_started(state, act.invocation_id, act.epoch, now)

    # --- invocations ---------------------------------------------------------------------------

    def _live_of(self, state: PartitionState, inv_id: str) -> _Live | None:
        live = self._live.get(inv_id)
        if live is not None:
            return live
        inv = state.invocations.get(inv_id)
        if inv is None or not inv.trace_id:
            return None
        live = _Live(inv_id, inv.trace_id, inv.span_id or ids.invocation_span_id(inv_id),
                     _pattern(inv), {
                         A.RPC_SERVICE: inv.service, A.RPC_METHOD: inv.handler,
                         A.INVOCATION_ID: inv_id, A.INVOCATION_TARGET: inv.target})
        self._live[inv_id] = live
        return live

    def _created(self, state: PartitionState, inv_id: str, now: int) -> None:
        live = self._live_of(state, inv_id)
        inv = state.invocations.get(inv_id)
        if live is None or inv is None:
            return
        if inv.invoked_by == "ingress" and inv.parent_span_id:
            incoming = ids.parse_traceparent(next(
                (v for k, v in inv.headers if k == "traceparent"), None))
            ingress = SpanRecord(
                live.trace_id, inv.parent_span_id,
                incoming.span_id if incoming and incoming.trace_id == live.trace_id else "",
                f"{A.INGRESS} {live.pattern}", now, inv_id, dict(live.attrs),
                parent_remote=True)
            ingress.finish(now, A.UNSET)
            self._new(ingress)
        start = SpanRecord(live.trace_id, live.span_id, inv.parent_span_id,
                           f"{A.INVOCATION} {live.pattern}", inv.created_at * 1_000_000,
                           inv_id, dict(live.attrs))
        if inv.link:
            trace, _, span = inv.link.partition(":")
            start.links.append(SpanLink(trace, span, {A.LINK_RUNTIME: True}))
        live.start = start
        self._store(start)

    def _close_start(self, live: _Live, now: int) -> None:
        if live.start is not None:
            live.start.finish(now, A.UNSET)
            self._ended(live.start)
            live.start = None

    def _completed(self, act: a.InvocationCompleted, now: int) -> None:
        live = self._live.pop(act.invocation_id, None)
        if live is None:
            return
        self._close_start(live, now)
        if live.attempt is not None:  # killed or cancelled while an attempt ran
            self._finish_attempt(live, now, A.ERROR, "invocation ended", "aborted")
        attrs = dict(live.attrs)
        if act.failure is None:
            attrs[A.INVOCATION_RESULT] = A.RESULT_SUCCESS
            status, message = A.OK, ""
        else:
            attrs[A.INVOCATION_RESULT] = A.RESULT_FAILURE
            attrs[A.ERROR_CODE] = act.failure[0]
            status, message = A.ERROR, f"[{act.failure[0]}] {act.failure[1]}"[:1000]
        end = SpanRecord(live.trace_id, ids.derived_span_id(act.invocation_id, "end"), live.span_id,
                         f"{A.END} {live.pattern}", now, act.invocation_id, attrs)
        end.finish(now, status, message)
        self._new(end)

    # --- attempts ------------------------------------------------------------------------------

    def _attempt_started(self, state: PartitionState, inv_id: str, epoch: int, now: int) -> None:
        live = self._live_of(state, inv_id)
        inv = state.invocations.get(inv_id)
        if live is None or inv is None:
            return
        self._close_start(live, now)
        if live.attempt is not None:  # a restart without an end we saw
            self._finish_attempt(live, now, A.ERROR, "superseded by a new attempt", "aborted")
        attrs = dict(live.attrs)
        attrs[A.RPC_SYSTEM] = A.RPC_SYSTEM_RESTATE
        dep = self._deployments(inv.deployment_id)
        attrs[A.DEPLOYMENT_ID] = inv.deployment_id
        if dep is not None:
            attrs[A.DEPLOYMENT_ADDRESS] = dep[0]
            attrs[A.PROTOCOL_VERSION] = inv.protocol_version or dep[1]
        attrs[A.RETRY_COUNT] = inv.total_retries
        attrs[A.ATTEMPT_NUMBER] = epoch
        span = SpanRecord(live.trace_id, ids.attempt_span_id(inv_id, epoch), live.span_id,
                          f"{A.ATTEMPT} {live.pattern}", now, inv_id, attrs, epoch=epoch)
        if live.suspended:  # woken by the notification stored last
            woke: Attrs = {}
            if inv.journal:
                t = inv.journal[-1].entry_type
                woke[A.NOTIFICATION_TYPE] = _NOTIFICATION_TYPE.get(t, f"0x{t:04x}")
            span.events.append(SpanEvent(A.EV_RESUMED, now, woke))
            live.suspended = False
        live.attempt = span
        self._store(span)
        if self._marker and self._export is not None:
            self._unmarked[inv_id] = span

    def sweep(self, now_ns: int, min_age_ns: int) -> None:
        """Announce attempts running for longer than `min_age_ns`: OTel spans are immutable
        once ended, so the attempt span itself is exported when it ends; a 0 ms
        `invocation-attempt-started` sibling (same attributes, the attempt's start time) shows a
        long or stuck attempt meanwhile. Short attempts never need one."""
        if not self._unmarked or self._export is None:
            return
        cutoff = now_ns - min_age_ns
        while self._unmarked:
            inv_id, span = next(iter(self._unmarked.items()))
            if span.start_ns > cutoff:
                break  # started in order: the rest are younger
            del self._unmarked[inv_id]
            live = self._live.get(inv_id)
            if live is None or live.attempt is not span:
                continue
            pattern = live.pattern
            marker = SpanRecord(span.trace_id, ids.derived_span_id(inv_id, f"started/{span.epoch}"),
                                span.parent_span_id,
                                f"{A.ATTEMPT_STARTED} {pattern}", span.start_ns, inv_id,
                                dict(span.attributes))
            marker.finish(span.start_ns, A.UNSET)
            self._export(marker)

    def _open_attempt(self, inv_id: str, epoch: int | None = None) -> SpanRecord | None:
        live = self._live.get(inv_id)
        if live is None or live.attempt is None:
            return None
        if epoch is not None and live.attempt.epoch != epoch:
            return None
        return live.attempt

    def _finish_attempt(self, live: _Live, now: int, status: str, message: str, outcome: str,
                        code: int | None = None) -> None:
        span = live.attempt
        if span is None:
            return
        live.attempt = None
        self._unmarked.pop(live.invocation_id, None)
        span.attributes[A.ATTEMPT_OUTCOME] = outcome
        if code is not None:
            span.attributes[A.ERROR_CODE] = code
        span.finish(now, status, message)
        self._ended(span)

    def _end_attempt(self, inv_id: str, epoch: int, now: int, status: str, message: str,
                     outcome: str, code: int | None = None) -> None:
        if self._open_attempt(inv_id, epoch) is not None:
            self._finish_attempt(self._live[inv_id], now, status, message, outcome, code)

    def _suspended(self, cmd: c.Suspend, now: int) -> None:
        span = self._open_attempt(cmd.invocation_id, cmd.epoch)
        if span is None:
            return
        ev: Attrs = {}
        if cmd.waiting_completions:
            ev[A.WAITING_COMPLETIONS] = list(cmd.waiting_completions)
        if cmd.waiting_signals:
            ev[A.WAITING_SIGNALS] = list(cmd.waiting_signals)
        span.events.append(SpanEvent(A.EV_SUSPENDED, now, ev))
        live = self._live[cmd.invocation_id]
        live.suspended = True
        self._finish_attempt(live, now, A.OK, "", "suspended")

    # --- journal -------------------------------------------------------------------------------

    def _command(self, cmd: c.AppendEntry, state: PartitionState, now: int) -> None:
        t = cmd.entry_type
        if j.is_notification(t):
            return  # a run completion: seen as ForwardNotification once stored
        span = self._open_attempt(cmd.invocation_id, cmd.epoch)
        if span is None:
            return
        attrs: Attrs = {A.COMMAND_TYPE: _COMMAND_TYPE.get(t, f"Command/Custom(0x{t:04x})")}
        if t in _NAMED:
            try:
                name = getattr(j.decode(t, cmd.raw), "name", "")
            except Exception:  # noqa: BLE001 - a span event is not worth failing for
                name = ""
            if name:
                attrs[A.COMMAND_NAME] = name
        span.events.append(SpanEvent(A.EV_NEW_COMMAND, now, attrs))

    def _notification(self, state: PartitionState, act: a.ForwardNotification, now: int) -> None:
        span = self._open_attempt(act.invocation_id, act.epoch)
        if span is None:
            return
        inv = state.invocations.get(act.invocation_id)
        if inv is None or act.journal_index >= len(inv.journal):
            return
        entry = inv.journal[act.journal_index]
        t = entry.entry_type
        if t == j.T.CALL_INVOCATION_ID_COMPLETION_NOTIFICATION:
            return  # bookkeeping of every call, not news
        cid, sig, sig_name = j.notification_ids(t, entry.raw)
        attrs: Attrs = {}
        if cid is not None:
            attrs[A.NOTIFICATION_ID] = f"CompletionId: {cid}"
        elif sig is not None:
            attrs[A.NOTIFICATION_ID] = f"SignalId: {sig}"
        elif sig_name is not None:
            attrs[A.NOTIFICATION_ID] = f"SignalName: {sig_name}"
        if t == j.T.RUN_COMPLETION_NOTIFICATION:
            span.events.append(SpanEvent(A.EV_RUN_ENDED, now, attrs))
            return
        attrs[A.NOTIFICATION_TYPE] = _NOTIFICATION_TYPE.get(t, f"Notification/0x{t:04x}")
        span.events.append(SpanEvent(A.EV_NOTIFICATION, now, attrs))
