"""The observer on the pure state machine: commands applied with `apply`, spans checked.

No network: what the processor would hand the observer after each batch is replayed here
command by command, so the span tree, ids and events are checked exactly and fast.
"""

from __future__ import annotations

from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.model import PartitionState
from rstq.protocol import messages as pm
from rstq.protocol import trace_ids as ids
from rstq.tracing.observer import TraceObserver
from rstq.tracing.spans import SpanRecord

from tests.core.builders import T0, entry, inv_id_on, invoke, output, run_cmd, run_done

INCOMING = ids.TraceParent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)


class Harness:
    def __init__(self) -> None:
        self.state = PartitionState(0, 1)
        self.stored: list[SpanRecord] = []
        self.exported: list[SpanRecord] = []
        self.obs = TraceObserver(self.stored.append, self.exported.append,
                                 lambda d: ("http://svc:9080/", 6))
        self.ts = T0

    def run(self, cmd: c.Command) -> list[a.Action]:
        self.ts += 1
        env = c.Envelope(self.ts, cmd)
        actions = apply(self.state, env)
        self.obs.on_applied(0, env, actions, self.state)
        return actions

    def named(self, prefix: str, inv_id: str) -> list[SpanRecord]:
        return [s for s in self.exported
                if s.name.startswith(prefix + " ") and s.invocation_id == inv_id]


def traced_invoke(inv_id: str, **kw: object) -> c.Invoke:
    t = ids.for_ingress(inv_id, INCOMING)
    headers = [("traceparent", f"00-{INCOMING.trace_id}-{INCOMING.span_id}-01")]
    return invoke(inv_id, trace_id=t.trace_id, span_id=t.span_id,
                  parent_span_id=t.parent_span_id, headers=headers, **kw)


def call(callee: str, one_way: bool = False) -> tuple[pm.Message, str]:
    if one_way:
        return pm.OneWayCallCommandMessage(service_name="Svc", handler_name="run",
                                           parameter=b"{}", invoke_time=0,
                                           invocation_id_notification_idx=5), callee
    return pm.CallCommandMessage(service_name="Svc", handler_name="run", parameter=b"{}",
                                 invocation_id_notification_idx=5, result_completion_id=6,
                                 ), callee


def test_span_tree_for_a_call_and_a_send() -> None:
    h = Harness()
    parent, callee, sent = (inv_id_on(0, 1, n=i) for i in (1, 2, 3))
    h.run(traced_invoke(parent))
    h.run(run_cmd(parent, 1, 1))
    h.run(run_done(parent, 1, 1, b"1"))
    msg, _ = call(callee)
    h.run(entry(parent, 1, msg, callee_id=callee, callee_service_ty="service"))
    msg, _ = call(sent, one_way=True)
    h.run(entry(parent, 1, msg, callee_id=sent, callee_service_ty="service"))
    h.run(c.Suspend(parent, 1, [6]))
    for inv in (callee, sent):
        h.run(output(inv, 1))
        h.run(c.End(inv, 1))
    h.run(output(parent, 2))
    h.run(c.End(parent, 2))

    ingress, = h.named("ingress", parent)
    start, = h.named("invocation-start", parent)
    attempts = h.named("invocation-attempt", parent)
    end, = h.named("invocation-end", parent)
    assert (ingress.trace_id, ingress.parent_span_id) == (INCOMING.trace_id, INCOMING.span_id)
    assert start.parent_span_id == ingress.span_id == ids.ingress_span_id(parent)
    assert start.span_id == ids.invocation_span_id(parent)
    assert [s.span_id for s in attempts] == [ids.attempt_span_id(parent, e) for e in (1, 2)]
    assert {s.parent_span_id for s in [*attempts, end]} == {start.span_id}
    first, second = attempts
    events = [(e.name.rsplit(".", 1)[1], e.attributes) for e in first.events]
    assert events[0] == ("new_command", {"restate.journal.command.type": "Command/Run",
                                         "restate.journal.command.name": "step"})
    assert events[1] == ("run_ended", {"restate.journal.notification.id": "CompletionId: 1"})
    assert [e[1].get("restate.journal.command.type") for e in events[2:4]] == [
        "Command/Call", "Command/OneWayCall"]
    assert events[-1][0] == "suspended"
    assert first.attributes["restate.invocation.attempt.outcome"] == "suspended"
    assert second.events[0].name == "restate.invocation.lifecycle.resumed"
    assert second.events[0].attributes == {
        "restate.journal.notification.type": "Notification/Call"}
    assert first.attributes["restate.deployment.address"] == "http://svc:9080/"
    assert end.attributes["restate.invocation.result"] == "success"
    # Call: same trace, child of the caller's first attempt.
    c_start, = h.named("invocation-start", callee)
    assert (c_start.trace_id, c_start.parent_span_id) == (INCOMING.trace_id, first.span_id)
    assert not h.named("ingress", callee)
    # Send: a new trace (the callee's uuid), linked to the caller's attempt.
    s_start, = h.named("invocation-start", sent)
    assert s_start.trace_id == ids.uuid_trace_id(sent) and s_start.parent_span_id == ""
    assert [(k.trace_id, k.span_id) for k in s_start.links] == [
        (INCOMING.trace_id, first.span_id)]
    # Attempts that ended quickly were never announced separately.
    assert not h.named("invocation-attempt-started", parent)
    # The store saw spans when they opened: the attempt object is the one exported.
    assert any(s is first for s in h.stored)


def test_long_attempts_are_announced_once_while_running() -> None:
    h = Harness()
    inv = inv_id_on(0, 1, n=5)
    h.run(traced_invoke(inv))
    attempt = next(s for s in h.stored if s.name.startswith("invocation-attempt "))
    h.obs.sweep(attempt.start_ns + 100, min_age_ns=1_000)  # too young yet
    assert not h.named("invocation-attempt-started", inv)
    h.obs.sweep(attempt.start_ns + 2_000, min_age_ns=1_000)
    h.obs.sweep(attempt.start_ns + 4_000, min_age_ns=1_000)
    marker, = h.named("invocation-attempt-started", inv)
    assert (marker.start_ns, marker.end_ns) == (attempt.start_ns, attempt.start_ns)
    assert marker.parent_span_id == attempt.parent_span_id and marker.trace_id == attempt.trace_id
    assert marker.attributes["restate.invocation.attempt"] == 1
    assert not h.named("invocation-attempt", inv)  # the attempt itself: at its end


def test_attempts_redriven_after_recovery_get_spans() -> None:
    h = Harness()
    inv = inv_id_on(0, 1, n=11)
    h.run(traced_invoke(inv))
    fresh = Harness()  # a restarted server: same state, an observer that saw nothing
    fresh.state = h.state
    fresh.obs.on_redrive(0, [a.StartAttempt(inv, 1)], fresh.state)
    fresh.run(output(inv, 1))
    fresh.run(c.End(inv, 1))
    attempt, = fresh.named("invocation-attempt", inv)
    assert attempt.parent_span_id == ids.invocation_span_id(inv)
    assert attempt.trace_id == INCOMING.trace_id and attempt.status == "OK"
    assert fresh.named("invocation-end", inv)


def test_failed_attempt_and_kill() -> None:
    h = Harness()
    inv = inv_id_on(0, 1, n=7)
    h.run(traced_invoke(inv))
    h.run(c.AttemptFailed(inv, 1, 500, "boom", then="retry", retry_at_ms=T0 + 10))
    h.run(c.TimerFired(f"retry:{inv}"))
    h.run(c.Kill(inv))
    first, second = h.named("invocation-attempt", inv)
    assert (first.status, first.status_message) == ("ERROR", "[500] boom")
    assert first.attributes["restate.error.code"] == 500
    assert second.status == "ERROR" and second.attributes[
        "restate.invocation.attempt.outcome"] == "aborted"
    assert second.attributes["restate.invocation.retry_count"] == 1
    end, = h.named("invocation-end", inv)
    assert end.status == "ERROR" and end.attributes["restate.invocation.result"] == "failure"


def test_untraced_invocations_make_no_spans() -> None:
    h = Harness()
    inv = inv_id_on(0, 1, n=9)
    h.run(invoke(inv))
    h.run(output(inv, 1))
    h.run(c.End(inv, 1))
    assert h.exported == [] and h.stored == []


def test_trace_fields_are_replayed_identically() -> None:
    """apply decides callee trace fields from the command alone: a replay gives the same."""
    parent, callee = inv_id_on(0, 1, n=1), inv_id_on(0, 1, n=2)
    msg, _ = call(callee)
    cmds: list[c.Command] = [traced_invoke(parent),
                             entry(parent, 1, msg, callee_id=callee, callee_service_ty="service")]
    states = []
    for _ in range(2):
        state = PartitionState(0, 1)
        for i, cmd in enumerate(cmds):
            apply(state, c.decode(c.encode(T0 + i, cmd)))
        states.append(state.invocations[callee])
    first, again = states
    assert (first.trace_id, first.span_id, first.parent_span_id) == (
        again.trace_id, again.span_id, again.parent_span_id) == (
        INCOMING.trace_id, ids.invocation_span_id(callee), ids.attempt_span_id(parent, 1))
