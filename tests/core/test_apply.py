"""`apply` tested directly, command by command, without sockets or logs."""

from __future__ import annotations

import pytest
from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core import journal as j
from rstq.core.apply import apply
from rstq.core.ids import idempotent_invocation_id, workflow_invocation_id
from rstq.core.model import (
    BACKING_OFF,
    COMPLETED,
    INBOXED,
    INVOKED,
    PAUSED,
    SCHEDULED,
    SUSPENDED,
    PartitionState,
    Timer,
    TimerId,
    TimerKind,
)
from rstq.protocol import ids as pids
from rstq.protocol import messages as pm

from .builders import T0, entry, inv_id_on, invoke, output, run_cmd, run_done, set_state, sleep

COUNTER = {"service": "Counter", "key": "k", "service_ty": "virtual_object",
           "handler_ty": "exclusive"}
P = 1  # one partition: every message is local unless a test says otherwise


class Sim:
    """A partition state plus a log of what was applied, with a hand-moved clock."""

    def __init__(self, partition: int = 0, partitions: int = P) -> None:
        self.state = PartitionState(partition, partitions)
        self.now = T0
        self.lsn = 0

    def __call__(self, cmd: c.Command) -> list[a.Action]:
        self.lsn += 1
        self.now += 1
        return apply(self.state, c.Envelope(self.now, c.roundtrip(self.now, cmd)), self.lsn)

    def inv(self, inv_id: str):
        return self.state.invocations[inv_id]


def kinds(actions: list[a.Action]) -> list[str]:
    return [type(x).__name__ for x in actions]


def new_id(n: int = 0, service: str = "Svc", key: str | None = None) -> str:
    return inv_id_on(0, P, service, key, n)


def test_invoke_starts_first_attempt_with_input_entry() -> None:
    s = Sim()
    i = new_id()
    acts = s(invoke(i, headers=[("x-a", "1")]))
    assert acts == [a.InvokeOutcome(i, duplicate=False), a.StartAttempt(i, 1)]
    inv = s.inv(i)
    assert inv.status == INVOKED and inv.epoch == 1 and inv.running_at == s.now
    assert len(inv.journal) == 1 and inv.journal[0].entry_type == j.INPUT
    msg = pm.InputCommandMessage.decode(inv.journal[0].raw)
    assert msg.value is not None and msg.value.content == b'"hi"'
    assert [(h.key, h.value) for h in msg.headers] == [("x-a", "1")]
    assert s.state.applied_lsn == 1


def test_duplicate_invoke_is_reported_and_changes_nothing() -> None:
    s = Sim()
    i = idempotent_invocation_id("Svc", None, "run", "k1")
    s(invoke(i, idempotency_key="k1"))
    before = s.inv(i).modified_at
    assert s(invoke(i, idempotency_key="k1")) == [a.InvokeOutcome(i, duplicate=True)]
    assert s.inv(i).modified_at == before
    assert s.state.idempotency[("Svc", "", "run", "k1")] == i


def test_exclusive_handlers_queue_per_key_and_shared_run_alongside() -> None:
    s = Sim()
    obj = COUNTER
    i1, i2, i3 = (new_id(n, "Counter", "k") for n in range(3))
    s(invoke(i1, **obj))
    assert kinds(s(invoke(i2, **obj))) == ["InvokeOutcome"]
    assert s.inv(i2).status == INBOXED and s.inv(i2).inboxed_at is not None
    shared = dict(obj, handler="get", handler_ty="shared")
    assert a.StartAttempt(i3, 1) in s(invoke(i3, **shared))
    s(output(i1, 1))
    acts = s(c.End(i1, 1))
    assert a.StartAttempt(i2, 1) in acts
    assert s.state.locks[("Counter", "k")] == i2
    assert ("Counter", "k") not in s.state.inboxes


def test_delayed_invoke_is_scheduled_until_its_timer() -> None:
    s = Sim()
    i = new_id()
    acts = s(invoke(i, execute_at_ms=T0 + 60_000))
    assert s.inv(i).status == SCHEDULED
    assert a.TimerSet(f"invoke:{i}", T0 + 60_000) in acts
    s.now = T0 + 60_000
    assert s(c.TimerFired(f"invoke:{i}")) == [a.StartAttempt(i, 1)]
    assert s(c.TimerFired(f"invoke:{i}")) == []  # a timer fires once


def test_state_commands_write_the_keys_state() -> None:
    s = Sim()
    obj = COUNTER
    i = new_id(0, "Counter", "k")
    s(invoke(i, **obj))
    s(set_state(i, 1, b"a", b"1"))
    s(set_state(i, 1, b"b", b"2"))
    s(entry(i, 1, pm.ClearStateCommandMessage(key=b"a")))
    assert s.state.kv[("Counter", "k")] == {b"b": b"2"}
    s(entry(i, 1, pm.ClearAllStateCommandMessage()))
    assert ("Counter", "k") not in s.state.kv
    assert s.inv(i).journal_commands == 5


def test_lazy_state_reads_answer_at_once_including_own_writes() -> None:
    s = Sim()
    i = new_id(0, "Counter", "k")
    s(invoke(i, service="Counter", key="k", service_ty="virtual_object", handler_ty="exclusive"))
    s(set_state(i, 1, b"n", b"7"))
    acts = s(entry(i, 1, pm.GetLazyStateCommandMessage(key=b"n", result_completion_id=1)))
    assert acts == [a.ForwardNotification(i, 1, 3)]
    note = pm.GetLazyStateCompletionNotificationMessage.decode(s.inv(i).journal[-1].raw)
    assert note.completion_id == 1 and note.value == pm.Value(content=b"7")
    s(entry(i, 1, pm.GetLazyStateCommandMessage(key=b"missing", result_completion_id=2)))
    note = pm.GetLazyStateCompletionNotificationMessage.decode(s.inv(i).journal[-1].raw)
    assert note.void is not None
    s(set_state(i, 1, b"a", b"1"))
    s(entry(i, 1, pm.GetLazyStateKeysCommandMessage(result_completion_id=3)))
    keys = pm.GetLazyStateKeysCompletionNotificationMessage.decode(s.inv(i).journal[-1].raw)
    assert keys.state_keys == pm.StateKeys(keys=(b"a", b"n"))


def test_sleep_suspend_and_timer_resume_with_new_epoch() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    assert a.TimerSet(f"sleep:{i}:1", T0 + 5_000) in s(sleep(i, 1, 1, T0 + 5_000))
    assert s(c.Suspend(i, 1, [1], [1])) == []
    assert s.inv(i).status == SUSPENDED and s.inv(i).waiting_completions == [1]
    s.now = T0 + 5_000
    assert s(c.TimerFired(f"sleep:{i}:1")) == [a.StartAttempt(i, 2)]
    inv = s.inv(i)
    assert inv.status == INVOKED and inv.epoch == 2
    assert inv.journal[-1].entry_type == pm.MessageType.SLEEP_COMPLETION_NOTIFICATION


def test_suspension_racing_a_stored_notification_resumes_at_once() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(run_cmd(i, 1, 1))
    s(run_done(i, 1, 1, b"42"))  # request-response: the proposal arrives, then suspension
    assert s(c.Suspend(i, 1, [1], [1])) == [a.StartAttempt(i, 2)]


def test_frames_of_an_older_attempt_are_fenced() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(sleep(i, 1, 1, T0 + 10))
    s(c.Suspend(i, 1, [1]))
    s.now = T0 + 10
    s(c.TimerFired(f"sleep:{i}:1"))
    journal_len = len(s.inv(i).journal)
    for stale in (set_state(i, 1, b"a", b"1"), c.End(i, 1), c.Suspend(i, 1, [9]),
                  c.AttemptFailed(i, 1, 500, "zombie")):
        acts = s(stale)
        assert kinds(acts) == ["Rejected"]
    assert len(s.inv(i).journal) == journal_len and s.inv(i).status == INVOKED


def test_end_completes_answers_waiters_and_retention_ends_it_without_a_timer() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i, completion_retention_ms=1000, journal_retention_ms=1000))
    s(output(i, 1, b'"done"'))
    acts = s(c.End(i, 1))
    assert a.InvocationCompleted(i, b'"done"', None) in acts
    assert s.inv(i).status == COMPLETED and s.inv(i).completed_at == s.now
    assert not any(isinstance(x, a.TimerSet) for x in acts) and not s.state.timers
    s.now += 998  # still retained at completed_at + 999
    s(c.Cancel(i))  # a no-op on a completed invocation
    assert i in s.state.invocations
    s.now += 1  # completed_at + 1000 (the next command's time): gone for every lookup
    s(c.Cancel(i))
    assert i not in s.state.invocations and i not in s.state.invocations.mem


def test_a_cleanup_timer_of_an_older_log_still_removes_it() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i, completion_retention_ms=10_000, journal_retention_ms=10_000))
    s(output(i, 1, b'"done"'))
    s(c.End(i, 1))
    s.state.timers[f"cleanup:{i}"] = Timer.at(TimerId(TimerKind.CLEANUP, i), s.now + 1)
    s(c.TimerFired(f"cleanup:{i}"))
    assert i not in s.state.invocations.mem


def test_zero_retention_forgets_the_invocation_at_once() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i, completion_retention_ms=0, journal_retention_ms=0))
    s(output(i, 1, failure=(409, "nope")))
    acts = s(c.End(i, 1))
    assert a.InvocationCompleted(i, None, (409, "nope")) in acts
    assert i not in s.state.invocations and not s.state.timers


def test_call_creates_callee_and_routes_its_result_back() -> None:
    s = Sim()
    caller, callee = new_id(0), new_id(1, "Greeter", "bob")
    s(invoke(caller))
    call = pm.CallCommandMessage(service_name="Greeter", handler_name="greet",
                                 parameter=b'"x"', key="bob", invocation_id_notification_idx=1,
                                 result_completion_id=2)
    acts = s(entry(caller, 1, call, callee_id=callee, callee_service_ty="virtual_object",
                   callee_handler_ty="exclusive"))
    assert a.StartAttempt(callee, 1) in acts
    cinv = s.inv(callee)
    assert (cinv.invoked_by, cinv.caller_id, cinv.caller_completion_id) == ("service", caller, 2)
    idnote = pm.CallInvocationIdCompletionNotificationMessage.decode(s.inv(caller).journal[-1].raw)
    assert idnote.invocation_id == callee and idnote.completion_id == 1
    s(c.Suspend(caller, 1, [2], [1]))
    s(output(callee, 1, b'"hello"'))
    acts = s(c.End(callee, 1))
    assert a.StartAttempt(caller, 2) in acts
    res = pm.CallCompletionNotificationMessage.decode(s.inv(caller).journal[-1].raw)
    assert res.completion_id == 2 and res.value == pm.Value(content=b'"hello"')


def test_cross_partition_messages_go_through_the_outbox_exactly_once() -> None:
    a_side, b_side = Sim(0, 2), Sim(1, 2)
    caller = inv_id_on(0, 2, "Svc", None, 0)
    callee = inv_id_on(1, 2, "Svc", None, 1)
    a_side(invoke(caller))
    send = pm.OneWayCallCommandMessage(service_name="Svc", handler_name="run", parameter=b"1",
                                       invocation_id_notification_idx=1)
    acts = a_side(entry(caller, 1, send, callee_id=callee, callee_service_ty="service"))
    out = [x for x in acts if isinstance(x, a.OutboxSend)]
    assert len(out) == 1 and out[0].destination == 1 and a_side.state.outbox
    deliver = c.Deliver(0, out[0].seq, out[0].payload)
    assert a.StartAttempt(callee, 1) in b_side(deliver)
    assert b_side(deliver) == []  # redelivered after a crash: dropped
    a_side(c.OutboxAck(out[0].seq))
    assert not a_side.state.outbox


def test_one_way_call_with_delay_is_scheduled_at_the_callee() -> None:
    s = Sim()
    caller, callee = new_id(0), new_id(1)
    s(invoke(caller))
    send = pm.OneWayCallCommandMessage(service_name="Svc", handler_name="run",
                                       invoke_time=T0 + 900_000, invocation_id_notification_idx=1)
    s(entry(caller, 1, send, callee_id=callee, callee_service_ty="service"))
    assert s.inv(callee).status == SCHEDULED and s.inv(callee).caller_completion_id is None


def test_awakeable_completion_signals_the_waiting_invocation() -> None:
    s = Sim()
    waiter, resolver = new_id(0), new_id(1)
    s(invoke(waiter))
    s(invoke(resolver))
    s(c.Suspend(waiter, 1, [], [17, 1]))
    awk = pids.awakeable_id(pids.InvocationId.parse(waiter), 17)
    msg = pm.CompleteAwakeableCommandMessage(awakeable_id=awk, value=pm.Value(content=b"1"))
    acts = s(entry(resolver, 1, msg))
    assert a.StartAttempt(waiter, 2) in acts
    note = pm.SignalNotificationMessage.decode(s.inv(waiter).journal[-1].raw)
    assert note.idx == 17 and note.value == pm.Value(content=b"1")


def test_workflow_promises_wait_peek_and_complete_once() -> None:
    s = Sim()
    wf = {"service": "Wf", "key": "w1", "service_ty": "workflow"}
    run = workflow_invocation_id("Wf", "w1")
    sig = inv_id_on(0, P, "Wf", "w1", 5)
    s(invoke(run, handler="run", handler_ty="workflow", **wf))
    s(entry(run, 1, pm.GetPromiseCommandMessage(key="p", result_completion_id=1)))
    s(entry(run, 1, pm.PeekPromiseCommandMessage(key="p", result_completion_id=2)))
    peek = pm.PeekPromiseCompletionNotificationMessage.decode(s.inv(run).journal[-1].raw)
    assert peek.void is not None
    s(c.Suspend(run, 1, [1], [1]))
    s(invoke(sig, handler="signal", handler_ty="shared", **wf))
    done = pm.CompletePromiseCommandMessage(key="p", completion_value=pm.Value(content=b"v"),
                                            result_completion_id=1)
    acts = s(entry(sig, 1, done))
    assert a.StartAttempt(run, 2) in acts
    got = pm.GetPromiseCompletionNotificationMessage.decode(s.inv(run).journal[-1].raw)
    assert got.value == pm.Value(content=b"v")
    s(entry(sig, 1, done.replace(result_completion_id=2)))
    again = pm.CompletePromiseCompletionNotificationMessage.decode(s.inv(sig).journal[-1].raw)
    assert again.failure == pm.Failure(code=409, message="promise was already completed")


def test_attach_and_get_output() -> None:
    s = Sim()
    target, waiter = new_id(0), new_id(1)
    s(invoke(target))
    s(invoke(waiter))
    s(entry(waiter, 1, pm.GetInvocationOutputCommandMessage(invocation_id=target,
                                                            result_completion_id=1)))
    out = pm.GetInvocationOutputCompletionNotificationMessage.decode(s.inv(waiter).journal[-1].raw)
    assert out.void is not None
    s(entry(waiter, 1, pm.AttachInvocationCommandMessage(invocation_id=target,
                                                         result_completion_id=2)))
    assert s.inv(target).attached == [(waiter, 2, "attach")]
    s(output(target, 1, b"9"))
    s(c.End(target, 1))
    att = pm.AttachInvocationCompletionNotificationMessage.decode(s.inv(waiter).journal[-1].raw)
    assert att.completion_id == 2 and att.value == pm.Value(content=b"9")


@pytest.mark.parametrize("then,status", [("retry", BACKING_OFF), ("pause", PAUSED)])
def test_failed_attempt_backs_off_or_pauses(then: str, status: str) -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    acts = s(c.AttemptFailed(i, 1, 500, "boom", then=then, retry_at_ms=T0 + 500,
                             related_command_index=1, related_command_name="step"))
    inv = s.inv(i)
    assert inv.status == status and inv.retry_count == 1 and inv.last_failure == "boom"
    assert inv.last_failure_command_name == "step"
    if then == "retry":
        assert acts == [a.TimerSet(f"retry:{i}", T0 + 500)]
        assert s(c.TimerFired(f"retry:{i}")) == [a.StartAttempt(i, 2)]
    else:
        assert s(c.Resume(i)) == [a.StartAttempt(i, 2)]
    s(set_state(i, 2, b"k", b"v"))
    assert s.inv(i).retry_count == 0  # reset by a newly stored entry


def test_failed_attempt_at_max_attempts_can_fail_the_invocation() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    acts = s(c.AttemptFailed(i, 1, 500, "gave up", then="kill"))
    assert a.InvocationCompleted(i, None, (500, "gave up")) in acts


def test_cancel_inboxed_scheduled_and_running_invocations() -> None:
    s = Sim()
    obj = {"service": "O", "key": "k", "service_ty": "virtual_object", "handler_ty": "exclusive"}
    i1, i2, i3 = new_id(0, "O", "k"), new_id(1, "O", "k"), new_id(2)
    s(invoke(i1, **obj))
    s(invoke(i2, **obj))
    assert a.InvocationCompleted(i2, None, (409, "cancelled")) in s(c.Cancel(i2))
    assert ("O", "k") not in s.state.inboxes
    s(invoke(i3, execute_at_ms=T0 + 10**6))
    assert a.InvocationCompleted(i3, None, (409, "cancelled")) in s(c.Cancel(i3))
    assert f"invoke:{i3}" not in s.state.timers
    s(c.Suspend(i1, 1, [5], [1]))
    assert s(c.Cancel(i1)) == [a.StartAttempt(i1, 2)]
    note = pm.SignalNotificationMessage.decode(s.inv(i1).journal[-1].raw)
    assert note.idx == 1 and note.void is not None


def test_cancel_of_a_backing_off_invocation_with_only_its_input_ends_it_at_once() -> None:
    """restate issue #3656: no further attempt (it would fail before seeing the cancel)."""
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(c.AttemptFailed(i, 1, 500, "boom", then="retry", retry_at_ms=T0 + 10**6))
    assert s.inv(i).status == BACKING_OFF and f"retry:{i}" in s.state.timers
    acts = s(c.Cancel(i))
    assert a.InvocationCompleted(i, None, (409, "cancelled")) in acts
    assert not any(isinstance(x, a.StartAttempt) for x in acts)
    assert s.inv(i).status == COMPLETED and f"retry:{i}" not in s.state.timers


def test_cancel_of_a_paused_invocation_with_only_its_input_ends_it_at_once() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(c.AttemptFailed(i, 1, 500, "boom", then="pause"))
    assert s.inv(i).status == PAUSED
    assert a.InvocationCompleted(i, None, (409, "cancelled")) in s(c.Cancel(i))


def test_cancel_with_progress_gives_one_attempt_to_compensate() -> None:
    """Commands in the journal: an attempt starts at once with the cancel signal; failing
    before reacting (no command after the signal) ends it cancelled, no more retries."""
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(run_cmd(i, 1, 1))
    s(c.AttemptFailed(i, 1, 500, "boom", then="retry", retry_at_ms=T0 + 10**6))
    assert s(c.Cancel(i)) == [a.StartAttempt(i, 2)]  # now, not at the retry time
    assert f"retry:{i}" not in s.state.timers
    acts = s(c.AttemptFailed(i, 2, 500, "boom", then="retry", retry_at_ms=T0 + 10**6))
    assert a.InvocationCompleted(i, None, (409, "cancelled")) in acts
    assert f"retry:{i}" not in s.state.timers


def test_a_handler_reacting_to_cancel_keeps_its_retries() -> None:
    """A command after the signal (compensation started): a failure retries as usual."""
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(run_cmd(i, 1, 1))
    s(c.Cancel(i))  # running: the signal goes to the attempt
    s(run_cmd(i, 1, 2))  # compensation step
    s(c.AttemptFailed(i, 1, 500, "compensation failed", then="retry", retry_at_ms=T0 + 5))
    assert s.inv(i).status == BACKING_OFF


def test_cancel_of_a_suspended_invocation_resumes_it_at_once() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(sleep(i, 1, 1, T0 + 10**9))
    s(c.Suspend(i, 1, [1]))  # waits for the sleep only, not for the cancel signal
    assert s(c.Cancel(i)) == [a.StartAttempt(i, 2)]


def test_transient_errors_are_journal_events_without_repeats() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    s(c.AttemptFailed(i, 1, 500, "boom", "Traceback...\nValueError: boom", then="retry",
                      retry_at_ms=T0 + 1, doc_code="RT0007"))
    s(c.TimerFired(f"retry:{i}"))
    s(c.AttemptFailed(i, 2, 500, "boom", "Traceback (again)", then="retry", retry_at_ms=T0 + 2))
    s(c.TimerFired(f"retry:{i}"))
    s(c.AttemptFailed(i, 3, 500, "other", then="pause", related_command_index=0,
                      related_command_type=j.INPUT))
    evs = s.inv(i).events
    assert [(e[1], e[2]) for e in evs] == [(0, "TransientError"), (0, "TransientError"),
                                           (0, "Paused")]
    assert evs[0][3] == {"error_code": 500, "error_message": "boom",
                         "error_stacktrace": "Traceback...\nValueError: boom",
                         "restate_doc_error_code": "RT0007"}
    assert evs[1][3]["error_message"] == "other" and evs[1][3]["related_command_index"] == 0
    assert evs[2][3] == {"last_failure": evs[1][3]}


def test_send_signal_cancel_cancels_the_target() -> None:
    s = Sim()
    parent, child = new_id(0), new_id(1)
    s(invoke(parent))
    s(invoke(child, execute_at_ms=T0 + 10**6))
    s(entry(parent, 1, pm.SendSignalCommandMessage(target_invocation_id=child, idx=1,
                                                   void=pm.Void())))
    assert s.inv(child).output_failure == (409, "cancelled")


def test_kill_aborts_releases_the_lock_and_kills_callees() -> None:
    s = Sim()
    obj = {"service": "O", "key": "k", "service_ty": "virtual_object", "handler_ty": "exclusive"}
    i1, i2, callee = new_id(0, "O", "k"), new_id(1, "O", "k"), new_id(2)
    s(invoke(i1, **obj))
    s(invoke(i2, **obj))
    call = pm.CallCommandMessage(service_name="Svc", handler_name="run",
                                 invocation_id_notification_idx=1, result_completion_id=2)
    s(entry(i1, 1, call, callee_id=callee, callee_service_ty="service"))
    acts = s(c.Kill(i1))
    assert a.AbortAttempt(i1, 1) in acts and a.StartAttempt(i2, 1) in acts
    assert s.inv(i1).output_failure == (409, "killed")
    assert s.inv(callee).output_failure == (409, "killed")


def test_purge_only_completed_and_pause_resume() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    assert kinds(s(c.Purge(i))) == ["Rejected"]
    assert s(c.Pause(i)) == [a.AbortAttempt(i, 1)]
    assert s.inv(i).status == PAUSED
    assert s(c.Resume(i)) == [a.StartAttempt(i, 2)]
    s(output(i, 2))
    s(c.End(i, 2))
    s(c.Purge(i))
    assert i not in s.state.invocations


def test_state_mutation_from_admin() -> None:
    s = Sim()
    s(c.StateMutation("O", "k", sets=[(b"a", b"1"), (b"b", b"2")]))
    s(c.StateMutation("O", "k", clears=[b"a"]))
    assert s.state.kv[("O", "k")] == {b"b": b"2"}
    s(c.StateMutation("O", "k", clear_all=True))
    assert ("O", "k") not in s.state.kv


def test_notification_for_unknown_invocation_is_rejected() -> None:
    s = Sim()
    t, raw = j.sleep_completion(1)
    assert kinds(s(c.Notify(new_id(), t, raw))) == ["Rejected"]


def test_bad_ids_from_a_handler_are_rejected_not_fatal() -> None:
    s = Sim()
    i = new_id()
    s(invoke(i))
    bad_awk = pm.CompleteAwakeableCommandMessage(awakeable_id="sign_1bogus",
                                                 value=pm.Value(content=b"1"))
    assert "Rejected" in kinds(s(entry(i, 1, bad_awk)))
    bad_signal = pm.SendSignalCommandMessage(target_invocation_id="inv_nope", idx=17,
                                             void=pm.Void())
    assert "Rejected" in kinds(s(entry(i, 1, bad_signal)))
    bad_attach = pm.AttachInvocationCommandMessage(invocation_id="garbage",
                                                   result_completion_id=1)
    assert kinds(s(entry(i, 1, bad_attach))) == ["ForwardNotification"]
    note = pm.AttachInvocationCompletionNotificationMessage.decode(s.inv(i).journal[-1].raw)
    assert note.failure is not None and note.failure.code == 400
    assert s.inv(i).status == INVOKED and len(s.inv(i).journal) == 5


def test_a_callee_gets_its_own_retention_and_an_older_record_the_callers() -> None:
    s = Sim()
    caller = new_id(1)
    s(invoke(caller, completion_retention_ms=1000, journal_retention_ms=1000))
    msg = pm.CallCommandMessage(service_name="Svc", handler_name="run", parameter=b"1",
                                invocation_id_notification_idx=1, result_completion_id=2)
    own, old = new_id(2), new_id(3)
    s(entry(caller, 1, msg, callee_id=own, callee_service_ty="service",
            callee_completion_retention_ms=7_200_000, callee_journal_retention_ms=0))
    msg2 = pm.CallCommandMessage(service_name="Svc", handler_name="run", parameter=b"2",
                                 invocation_id_notification_idx=3, result_completion_id=4)
    s(entry(caller, 1, msg2, callee_id=old, callee_service_ty="service"))
    assert (s.inv(own).completion_retention_ms, s.inv(own).journal_retention_ms) == (7_200_000, 0)
    assert (s.inv(old).completion_retention_ms, s.inv(old).journal_retention_ms) == (1000, 1000)
