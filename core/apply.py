"""The partition state machine: `apply(state, envelope) -> actions`.

Deterministic and free of I/O: no clock reads (time comes from the envelope), no randomness
(ids come in the commands). Replaying the same log from the same snapshot rebuilds the same
state and the same actions. The processor runs the actions after the command is durable.
"""

from __future__ import annotations

import logging
from collections import deque

from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core import ids
from rstq.core import journal as j
from rstq.core.changes import Keyed
from rstq.core.invocations import expired
from rstq.core.model import (
    BACKING_OFF,
    COMPLETED,
    INBOXED,
    INVOKED,
    PAUSED,
    SCHEDULED,
    SUSPENDED,
    Invocation,
    JournalEntry,
    OutboxMessage,
    PartitionState,
    Promise,
    Timer,
    TimerId,
    TimerKind,
)
from rstq.core.partitioning import partition_of
from rstq.protocol import trace_ids as tids

Actions = list[a.Action]
log = logging.getLogger(__name__)

CANCELLED = (409, "cancelled")
KILLED = (409, "killed")


def apply(state: PartitionState, env: c.Envelope, lsn: int | None = None) -> Actions:
    """Apply one durable command. `lsn` (when given) becomes the state's applied position."""
    out: Actions = []
    # Expiry of completed invocations is judged at the command's time: replay decides alike.
    state.invocations.now = max(state.invocations.now, env.ts_ms)
    try:
        _apply(state, env.ts_ms, env.command, out)
    except Exception as e:  # noqa: BLE001 - a bad command must not stop the partition
        # Deterministic all the same: replaying this command fails the same way. Bad input is
        # checked before proposing; this net keeps one overlooked case from taking the whole
        # partition (and its restart, which replays the command) down.
        log.exception("command %s failed to apply", type(env.command).__name__)
        out.append(a.Rejected(getattr(env.command, "invocation_id", ""), f"apply failed: {e!r}"))
    if lsn is not None:
        state.applied_lsn = lsn
    return out


def _apply(state: PartitionState, ts: int, cmd: c.Command, out: Actions) -> None:
    match cmd:
        case c.Invoke():
            _invoke(state, ts, cmd, out)
        case c.AppendEntry():
            _append_entry(state, ts, cmd, out)
        case c.Notify():
            inv = _inv(state, cmd.invocation_id)
            if inv is None or inv.status == COMPLETED:
                out.append(a.Rejected(cmd.invocation_id, "notification for no live invocation"))
                return
            _notify(state, inv, ts, cmd.entry_type, cmd.raw, out)
        case c.Suspend():
            _suspend(state, ts, cmd, out)
        case c.End():
            inv = _running(state, cmd.invocation_id, cmd.epoch, out)
            if inv is not None:
                _complete(state, inv, ts, inv.output_value, inv.output_failure, out)
        case c.AttemptFailed():
            _attempt_failed(state, ts, cmd, out)
        case c.TimerFired():
            _timer_fired(state, ts, cmd.timer_id, out)
        case c.StateMutation():
            state.changes.mark(Keyed.KV, (cmd.service, cmd.key))
            kv = state.kv.setdefault((cmd.service, cmd.key), {})
            if cmd.clear_all:
                kv.clear()
            for k in cmd.clears:
                kv.pop(k, None)
            for k, v in cmd.sets:
                kv[k] = v
            if not kv:
                del state.kv[(cmd.service, cmd.key)]
        case c.Deliver():
            if cmd.seq <= state.inbound_seq.get(cmd.source_partition, 0):
                return  # already applied: a redelivery after the sender's crash
            state.inbound_seq[cmd.source_partition] = cmd.seq
            inner = c.decode(cmd.inner)
            _apply(state, inner.ts_ms, inner.command, out)
        case c.OutboxAck():
            state.outbox.pop(cmd.seq, None)
        case c.Cancel():
            _cancel(state, ts, cmd.invocation_id, out)
        case c.Kill():
            _kill(state, ts, cmd.invocation_id, out)
        case c.Purge():
            inv = _inv(state, cmd.invocation_id)
            if inv is None or inv.status != COMPLETED:
                out.append(a.Rejected(cmd.invocation_id, "only completed invocations are purged"))
                return
            _delete(state, inv)
        case c.Pause():
            inv = _inv(state, cmd.invocation_id)
            if inv is None or inv.status not in (INVOKED, BACKING_OFF, SUSPENDED):
                out.append(a.Rejected(cmd.invocation_id, "not running, backing off or suspended"))
                return
            if inv.status == INVOKED:
                out.append(a.AbortAttempt(inv.invocation_id, inv.epoch))
            _drop_timers(state, inv.invocation_id, kinds=(TimerKind.RETRY,))
            inv.status = PAUSED
            inv.modified_at = ts
        case c.Resume():
            inv = _inv(state, cmd.invocation_id)
            if inv is None or inv.status not in (PAUSED, BACKING_OFF, SUSPENDED):
                out.append(a.Rejected(cmd.invocation_id, "not paused, backing off or suspended"))
                return
            _drop_timers(state, inv.invocation_id, kinds=(TimerKind.RETRY,))
            _start_attempt(inv, ts, out)
        case c.AttachRequest():
            _attach_request(state, ts, cmd, out)
        case c.RegisterDeployment() | c.RemoveDeployment():
            pass  # metadata log commands (rstq.core.schema), not partition state


# --- invocations -------------------------------------------------------------------------------


def _inv(state: PartitionState, inv_id: str) -> Invocation | None:
    """The invocation, marked changed: apply looks an invocation up only to act on it, so
    every change to one goes through here (or through `_invoke`, which creates it)."""
    state.changes.mark(Keyed.INVOCATIONS, inv_id)
    inv = state.invocations.peek(inv_id)
    if inv is not None and expired(inv, state.invocations.now):
        _delete(state, inv)  # its retention ended: gone, as if a cleanup had run then
        return None
    return inv


def _invoke(state: PartitionState, ts: int, cmd: c.Invoke, out: Actions) -> None:
    existing = _inv(state, cmd.invocation_id)
    if existing is not None:
        out.append(a.InvokeOutcome(cmd.invocation_id, duplicate=True))
        if cmd.caller_id is not None and cmd.caller_completion_id is not None:
            # An idempotent or workflow call that hit an existing invocation: the caller
            # gets its result like an attach.
            _attach_request(state, ts, c.AttachRequest(
                cmd.invocation_id, cmd.caller_id, cmd.caller_completion_id, c.AttachMode.CALL),
                out)
        return
    inv = Invocation(
        invocation_id=cmd.invocation_id,
        partition_key=ids.partition_key_of(cmd.invocation_id),
        service=cmd.service,
        handler=cmd.handler,
        key=cmd.key,
        service_ty=cmd.service_ty,
        handler_ty=cmd.handler_ty,
        status=SCHEDULED,
        created_at=ts,
        modified_at=ts,
        input=cmd.input,
        headers=list(cmd.headers),
        idempotency_key=cmd.idempotency_key,
        invoked_by=cmd.invoked_by,
        caller_id=cmd.caller_id,
        caller_target=cmd.caller_target,
        caller_completion_id=cmd.caller_completion_id,
        deployment_id=cmd.deployment_id,
        protocol_version=cmd.protocol_version,
        completion_retention_ms=cmd.completion_retention_ms,
        journal_retention_ms=cmd.journal_retention_ms,
        trace_id=cmd.trace_id,
        span_id=cmd.span_id,
        parent_span_id=cmd.parent_span_id,
        link=cmd.link,
    )
    state.invocations[inv.invocation_id] = inv  # marked by the lookup above
    if cmd.idempotency_key is not None:
        idem = (cmd.service, cmd.key, cmd.handler, cmd.idempotency_key)
        state.idempotency[idem] = inv.invocation_id
        state.changes.mark(Keyed.IDEMPOTENCY, idem)
    entry_type, raw = j.input_command(cmd.headers, cmd.input)
    inv.journal.append(JournalEntry(entry_type, raw, ts))
    inv.journal_commands = 1
    out.append(a.InvokeOutcome(inv.invocation_id, duplicate=False))
    if cmd.execute_at_ms > ts:
        inv.execute_at = cmd.execute_at_ms
        _set_timer(state, Timer.at(TimerId(TimerKind.INVOKE, inv.invocation_id),
                                   cmd.execute_at_ms), out)
        return
    _enqueue_or_start(state, inv, ts, out)


def _enqueue_or_start(state: PartitionState, inv: Invocation, ts: int, out: Actions) -> None:
    if inv.exclusive:
        lock = (inv.service, inv.key)
        if lock in state.locks:
            inv.status = INBOXED
            inv.inboxed_at = ts
            inv.modified_at = ts
            state.inbox_seq += 1
            state.inbox_seqs[inv.invocation_id] = state.inbox_seq
            state.inboxes.setdefault(lock, deque()).append(inv.invocation_id)
            state.changes.mark(Keyed.INBOXES, lock)
            return
        state.locks[lock] = inv.invocation_id
        state.changes.mark(Keyed.LOCKS, lock)
    _start_attempt(inv, ts, out)


def _start_attempt(inv: Invocation, ts: int, out: Actions) -> None:
    inv.epoch += 1
    inv.status = INVOKED
    inv.modified_at = ts
    inv.last_start_at = ts
    if inv.running_at is None:
        inv.running_at = ts
    inv.next_retry_at = None
    inv.waiting_completions = []
    inv.waiting_signals = []
    inv.waiting_named_signals = []
    inv.waiting_future_json = ""
    out.append(a.StartAttempt(inv.invocation_id, inv.epoch))


def _running(state: PartitionState, inv_id: str, epoch: int, out: Actions) -> Invocation | None:
    """The invocation if `epoch` is its current, running attempt; else fence the command."""
    inv = _inv(state, inv_id)
    if inv is None or inv.status != INVOKED or inv.epoch != epoch:
        out.append(a.Rejected(inv_id, f"stale or unknown attempt (epoch {epoch})"))
        return None
    return inv


def _complete(
    state: PartitionState,
    inv: Invocation,
    ts: int,
    value: bytes | None,
    failure: tuple[int, str] | None,
    out: Actions,
) -> None:
    if value is None and failure is None:
        value = b""
    was_running = inv.status == INVOKED
    inv.status = COMPLETED
    inv.completed_at = ts
    inv.modified_at = ts
    inv.output_value = value
    inv.output_failure = failure
    inv.waiting_completions = []
    inv.waiting_signals = []
    inv.waiting_named_signals = []
    _drop_timers(state, inv.invocation_id,
                 kinds=(TimerKind.INVOKE, TimerKind.RETRY, TimerKind.SLEEP))
    _remove_from_inbox(state, inv)
    out.append(a.InvocationCompleted(inv.invocation_id, value, failure, inv.output_stacktrace))
    if inv.caller_id is not None and inv.caller_completion_id is not None:
        t, raw = j.call_completion(inv.caller_completion_id, value, failure)
        _send(state, ts, inv.caller_id, c.Notify(inv.caller_id, t, raw), out)
    for waiter_id, completion_id, mode in inv.attached:
        if mode == c.AttachMode.CALL:
            t, raw = j.call_completion(completion_id, value, failure)
        else:
            t, raw = j.attach_completion(completion_id, value, failure)
        _send(state, ts, waiter_id, c.Notify(waiter_id, t, raw), out)
    inv.attached = []
    if was_running or inv.exclusive:
        _release_lock(state, inv, ts, out)
    if inv.journal_retention_ms <= 0:
        inv.journal = []
    if max(inv.completion_retention_ms, inv.journal_retention_ms) <= 0:
        _delete(state, inv)
    # Otherwise it stays until its retention ends (`invocations.expires_at`): no timer, no
    # cleanup command per invocation; expired ones are absent to lookups (`_inv`), and the
    # store drops history segments whole (rstq.core.store.history).


def _release_lock(state: PartitionState, inv: Invocation, ts: int, out: Actions) -> None:
    lock = (inv.service, inv.key)
    if state.locks.get(lock) != inv.invocation_id:
        return
    del state.locks[lock]
    state.changes.mark(Keyed.LOCKS, lock)
    state.changes.mark(Keyed.INBOXES, lock)
    queue = state.inboxes.get(lock)
    while queue:
        nxt = _inv(state, queue.popleft())
        if nxt is None or nxt.status != INBOXED:
            continue
        state.inbox_seqs.pop(nxt.invocation_id, None)
        state.locks[lock] = nxt.invocation_id
        _start_attempt(nxt, ts, out)
        break
    if queue is not None and not queue:
        del state.inboxes[lock]


def _remove_from_inbox(state: PartitionState, inv: Invocation) -> None:
    if state.inbox_seqs.pop(inv.invocation_id, None) is None:
        return
    lock = (inv.service, inv.key)
    state.changes.mark(Keyed.INBOXES, lock)
    queue = state.inboxes.get(lock)
    if queue is not None:
        try:
            queue.remove(inv.invocation_id)
        except ValueError:
            pass
        if not queue:
            del state.inboxes[lock]


def _delete(state: PartitionState, inv: Invocation) -> None:
    state.invocations.pop(inv.invocation_id, None)
    state.changes.mark(Keyed.INVOCATIONS, inv.invocation_id)
    if inv.idempotency_key is not None:
        idem = (inv.service, inv.key, inv.handler, inv.idempotency_key)
        if state.idempotency.get(idem) == inv.invocation_id:
            del state.idempotency[idem]
            state.changes.mark(Keyed.IDEMPOTENCY, idem)
    _drop_timers(state, inv.invocation_id, kinds=tuple(TimerKind))


# --- attempts ----------------------------------------------------------------------------------


def _suspend(state: PartitionState, ts: int, cmd: c.Suspend, out: Actions) -> None:
    inv = _running(state, cmd.invocation_id, cmd.epoch, out)
    if inv is None:
        return
    already = (
        any(x in inv.completed_ids for x in cmd.waiting_completions)
        or any(x in inv.signals_seen for x in cmd.waiting_signals)
        or any(x in inv.named_signals_seen for x in cmd.waiting_named_signals)
    )
    if already or not (cmd.waiting_completions or cmd.waiting_signals
                       or cmd.waiting_named_signals):
        # The awaited notification raced the suspension: resume at once.
        _start_attempt(inv, ts, out)
        return
    inv.status = SUSPENDED
    inv.modified_at = ts
    inv.waiting_completions = list(cmd.waiting_completions)
    inv.waiting_signals = list(cmd.waiting_signals)
    inv.waiting_named_signals = list(cmd.waiting_named_signals)
    inv.waiting_future_json = cmd.future_json


def _attempt_failed(state: PartitionState, ts: int, cmd: c.AttemptFailed, out: Actions) -> None:
    inv = _running(state, cmd.invocation_id, cmd.epoch, out)
    if inv is None:
        return
    inv.retry_count += 1
    inv.total_retries += 1
    inv.modified_at = ts
    inv.last_failure = cmd.message
    inv.last_failure_code = cmd.code
    inv.last_failure_command_index = cmd.related_command_index
    inv.last_failure_command_name = cmd.related_command_name
    inv.last_failure_command_type = cmd.related_command_type
    failure = _failure_fields(cmd)
    _record_transient_error(inv, ts, failure)
    if cancel_unobserved(inv):
        # Cancelled, and this attempt failed before the handler reacted to it (no command
        # after the cancel signal): another attempt would most likely fail the same way
        # (restate issue #3656), so the cancel takes effect now.
        _complete(state, inv, ts, None, CANCELLED, out)
    elif cmd.then == c.AttemptOutcome.RETRY:
        inv.status = BACKING_OFF
        inv.next_retry_at = cmd.retry_at_ms
        _set_timer(state, Timer.at(TimerId(TimerKind.RETRY, inv.invocation_id),
                                   cmd.retry_at_ms, epoch=inv.epoch), out)
    elif cmd.then == c.AttemptOutcome.PAUSE:
        inv.status = PAUSED
        _add_event(inv, ts, "Paused", {"last_failure": failure})
    else:  # kill | fail: the invocation ends with this failure
        inv.output_stacktrace = cmd.stacktrace
        _complete(state, inv, ts, None, (cmd.code, cmd.message), out)


MAX_EVENTS = 20  # journal events kept per invocation (the oldest go first)
_SAME_FAILURE = ("error_code", "error_message", "related_command_index",
                 "related_command_name", "related_command_type")


def _failure_fields(cmd: c.AttemptFailed) -> dict[str, object]:
    """The failure as Restate's TransientErrorEvent names its fields (absent when unset)."""
    fields: dict[str, object] = {"error_code": cmd.code, "error_message": cmd.message}
    if cmd.stacktrace:
        fields["error_stacktrace"] = cmd.stacktrace
    if cmd.doc_code:
        fields["restate_doc_error_code"] = cmd.doc_code
    if cmd.related_command_index is not None:
        fields["related_command_index"] = cmd.related_command_index
    if cmd.related_command_name:
        fields["related_command_name"] = cmd.related_command_name
    if cmd.related_command_type is not None:
        fields["related_command_type"] = cmd.related_command_type
    return fields


def _record_transient_error(inv: Invocation, ts: int, fields: dict[str, object]) -> None:
    """A TransientError event, unless it repeats the last one (as Restate's invoker does)."""
    last = next((e for e in reversed(inv.events) if e[2] == "TransientError"), None)
    if last is not None and all(last[3].get(k) == fields.get(k) for k in _SAME_FAILURE):
        return
    _add_event(inv, ts, "TransientError", fields)


def _add_event(inv: Invocation, ts: int, event_type: str, fields: dict[str, object]) -> None:
    inv.events.append((ts, len(inv.journal) - 1, event_type, fields))
    if len(inv.events) > MAX_EVENTS:
        del inv.events[0]


def cancel_unobserved(inv: Invocation) -> bool:
    """Whether `inv` was cancelled and its journal has no command after the cancel signal:
    the handler has not reacted to the cancellation (no compensation has started)."""
    if j.CANCEL_SIGNAL not in inv.signals_seen:
        return False
    for entry in reversed(inv.journal):
        if not j.is_notification(entry.entry_type):
            return False  # a command after the signal: the handler is reacting to it
        if j.notification_ids(entry.entry_type, entry.raw)[1] == j.CANCEL_SIGNAL:
            return True
    return False


def _append_entry(state: PartitionState, ts: int, cmd: c.AppendEntry, out: Actions) -> None:
    inv = _running(state, cmd.invocation_id, cmd.epoch, out)
    if inv is None:
        return
    if j.is_notification(cmd.entry_type):
        # A run completion proposed by the attempt itself.
        _notify(state, inv, ts, cmd.entry_type, cmd.raw, out)
        return
    inv.journal.append(JournalEntry(cmd.entry_type, cmd.raw, ts, cmd.callee_id))
    inv.journal_commands += 1
    inv.retry_count = 0
    inv.modified_at = ts
    _command_effect(state, inv, ts, cmd, out)


def _command_effect(
    state: PartitionState, inv: Invocation, ts: int, cmd: c.AppendEntry, out: Actions
) -> None:
    """The runtime side of each protocol command (restate-protocol.md sections 3.7 to 3.13)."""
    t = cmd.entry_type
    msg = j.decode(t, cmd.raw)
    lock = (inv.service, inv.key)
    if t in (j.SET_STATE, j.CLEAR_STATE, j.CLEAR_ALL_STATE):
        state.changes.mark(Keyed.KV, lock)
    if t == j.OUTPUT:
        inv.output_value, inv.output_failure = j.result_of(msg)
    elif t == j.SET_STATE:
        state.kv.setdefault(lock, {})[msg.key] = j.value_of(msg.value)
    elif t == j.CLEAR_STATE:
        kv = state.kv.get(lock)
        if kv is not None:
            kv.pop(msg.key, None)
            if not kv:
                del state.kv[lock]
    elif t == j.CLEAR_ALL_STATE:
        state.kv.pop(lock, None)
    elif t == j.GET_LAZY_STATE:
        value = state.kv.get(lock, {}).get(msg.key)
        _local_notify(state, inv, ts, j.lazy_state_completion(msg.result_completion_id, value),
                      out)
    elif t == j.GET_LAZY_STATE_KEYS:
        keys = sorted(state.kv.get(lock, {}))
        _local_notify(state, inv, ts, j.lazy_keys_completion(msg.result_completion_id, keys), out)
    elif t in (j.GET_PROMISE, j.PEEK_PROMISE, j.COMPLETE_PROMISE):
        _promise_command(state, inv, ts, t, msg, out)
    elif t == j.SLEEP:
        cid = msg.result_completion_id
        inv.sleep_timers.append(cid)
        _set_timer(state, Timer.at(TimerId(TimerKind.SLEEP, inv.invocation_id, cid),
                                   msg.wake_up_time), out)
    elif t in (j.CALL, j.ONE_WAY_CALL):
        _call(state, inv, ts, t, msg, cmd, out)
    elif t == j.SEND_SIGNAL:
        target = msg.target_invocation_id
        if msg.idx == j.CANCEL_SIGNAL:
            _send(state, ts, target, c.Cancel(target), out)
        else:
            nt, raw = j.signal_notification(msg)
            _send(state, ts, target, c.Notify(target, nt, raw), out)
    elif t == j.COMPLETE_AWAKEABLE:
        try:
            target, idx = ids.parse_awakeable(msg.awakeable_id)
        except ids.IdError:
            out.append(a.Rejected(inv.invocation_id, f"bad awakeable id {msg.awakeable_id!r}"))
            return
        nt, raw = j.awakeable_completion(idx, msg)
        _send(state, ts, target, c.Notify(target, nt, raw), out)
    elif t in (j.ATTACH_INVOCATION, j.GET_INVOCATION_OUTPUT):
        target = j.attach_target_id(msg)
        mode = c.AttachMode.ATTACH if t == j.ATTACH_INVOCATION else c.AttachMode.OUTPUT
        if not ids.is_invocation_id(target):  # answer, rather than leave the handler waiting
            failure = (400, f"bad invocation id {target!r}")
            note = (j.attach_completion if mode == c.AttachMode.ATTACH else j.output_completion)(
                msg.result_completion_id, None, failure)
            _local_notify(state, inv, ts, note, out)
            return
        _send(state, ts, target,
              c.AttachRequest(target, inv.invocation_id, msg.result_completion_id, mode), out)
    # Input, GetEager*, Run, custom commands: stored only.


def _call(
    state: PartitionState,
    inv: Invocation,
    ts: int,
    t: int,
    msg: j.Message,
    cmd: c.AppendEntry,
    out: Actions,
) -> None:
    callee_id = cmd.callee_id
    if callee_id is None:
        out.append(a.Rejected(inv.invocation_id, "call without a callee id"))
        return
    one_way = t == j.ONE_WAY_CALL
    trace = tids.for_callee(inv.trace_id, inv.invocation_id, cmd.epoch, callee_id, one_way)
    invoke = c.Invoke(
        invocation_id=callee_id,
        service=msg.service_name,
        handler=msg.handler_name,
        key=msg.key,
        service_ty=c.ServiceTy(cmd.callee_service_ty),
        handler_ty=c.HandlerTy(cmd.callee_handler_ty),
        input=msg.parameter,
        headers=[(h.key, h.value) for h in msg.headers],
        idempotency_key=msg.idempotency_key,
        invoked_by="service",
        caller_id=inv.invocation_id,
        caller_target=inv.target,
        caller_completion_id=None if one_way else msg.result_completion_id,
        execute_at_ms=msg.invoke_time if one_way else 0,
        deployment_id=cmd.callee_deployment_id,
        protocol_version=cmd.callee_protocol_version,
        completion_retention_ms=(cmd.callee_completion_retention_ms
                                 if cmd.callee_completion_retention_ms >= 0
                                 else inv.completion_retention_ms),
        journal_retention_ms=(cmd.callee_journal_retention_ms
                              if cmd.callee_journal_retention_ms >= 0
                              else inv.journal_retention_ms),
        trace_id=trace.trace_id,
        span_id=trace.span_id,
        parent_span_id=trace.parent_span_id,
        link=trace.link,
    )
    _local_notify(state, inv, ts, j.call_invocation_id(msg.invocation_id_notification_idx,
                                                       callee_id), out)
    _send(state, ts, callee_id, invoke, out)


def _promise_command(
    state: PartitionState, inv: Invocation, ts: int, t: int, msg: j.Message, out: Actions
) -> None:
    pkey = (inv.service, inv.key, msg.key)
    state.changes.mark(Keyed.PROMISES, pkey)
    promise = state.promises.get(pkey)
    cid = msg.result_completion_id
    if t == j.GET_PROMISE:
        if promise is not None and promise.completed:
            _local_notify(state, inv, ts, j.promise_result(t, cid, promise.value,
                                                           promise.failure), out)
        else:
            state.promises.setdefault(pkey, Promise()).waiters.append((inv.invocation_id, cid))
    elif t == j.PEEK_PROMISE:
        if promise is not None and promise.completed:
            note = j.promise_result(t, cid, promise.value, promise.failure)
        else:
            note = j.promise_void(t, cid)
        _local_notify(state, inv, ts, note, out)
    else:  # CompletePromise
        if promise is not None and promise.completed:
            note = j.promise_result(t, cid, None, (409, "promise was already completed"))
            _local_notify(state, inv, ts, note, out)
            return
        value, failure = j.promise_completion_of(msg)
        if promise is None:
            promise = state.promises[pkey] = Promise()
        promise.completed = True
        promise.value = value
        promise.failure = failure
        _local_notify(state, inv, ts, j.promise_void(t, cid), out)
        waiters, promise.waiters = promise.waiters, []
        for waiter_id, waiter_cid in waiters:
            nt, raw = j.promise_result(j.GET_PROMISE, waiter_cid, value, failure)
            _send(state, ts, waiter_id, c.Notify(waiter_id, nt, raw), out)


def _attach_request(state: PartitionState, ts: int, cmd: c.AttachRequest, out: Actions) -> None:
    target = _inv(state, cmd.target_id)
    attach = cmd.mode in (c.AttachMode.ATTACH, c.AttachMode.CALL)
    if target is not None and target.status == COMPLETED:
        value, failure = target.output_value, target.output_failure
    elif target is None:
        value, failure = None, (404, f"invocation {cmd.target_id} not found")
    elif attach:
        target.attached.append((cmd.waiter_id, cmd.completion_id, cmd.mode))
        return
    else:
        value, failure = None, None  # not finished yet: void
    if cmd.mode == c.AttachMode.CALL:
        nt, raw = j.call_completion(cmd.completion_id, value, failure)
    elif attach:
        nt, raw = j.attach_completion(cmd.completion_id, value, failure)
    else:
        nt, raw = j.output_completion(cmd.completion_id, value, failure)
    _send(state, ts, cmd.waiter_id, c.Notify(cmd.waiter_id, nt, raw), out)


# --- notifications -----------------------------------------------------------------------------


def _local_notify(
    state: PartitionState, inv: Invocation, ts: int, note: tuple[int, bytes], out: Actions
) -> None:
    _notify(state, inv, ts, note[0], note[1], out)


def _notify(
    state: PartitionState, inv: Invocation, ts: int, entry_type: int, raw: bytes, out: Actions
) -> None:
    """Store a notification in the journal; wake the invocation if it waits for it."""
    inv.journal.append(JournalEntry(entry_type, raw, ts))
    inv.retry_count = 0
    inv.modified_at = ts
    completion_id, signal_idx, signal_name = j.notification_ids(entry_type, raw)
    if completion_id is not None:
        inv.completed_ids.add(completion_id)
    if signal_idx is not None:
        inv.signals_seen.add(signal_idx)
    if signal_name is not None:
        inv.named_signals_seen.add(signal_name)
    if inv.status == INVOKED:
        out.append(a.ForwardNotification(inv.invocation_id, inv.epoch, len(inv.journal) - 1))
    elif inv.status == SUSPENDED and (
        completion_id in inv.waiting_completions
        or signal_idx in inv.waiting_signals
        or signal_name in inv.waiting_named_signals
    ):
        _start_attempt(inv, ts, out)


def _cancel(state: PartitionState, ts: int, inv_id: str, out: Actions) -> None:
    """Cancel takes effect at once, whatever the invocation is doing (restate issue #3656):

    - scheduled or inboxed (never started): it ends now, cancelled;
    - backing off or paused with nothing but its input in the journal (nothing it did could
      need compensating): it ends now, cancelled, without another attempt;
    - otherwise the cancel signal is appended and an attempt runs now (a suspended, backing-off
      or paused one is started at once, a running one gets the signal), so the handler sees the
      cancellation and can compensate; if that attempt fails before the handler reacts (no
      command after the signal), the invocation ends cancelled instead of retrying
      (`_attempt_failed`)."""
    inv = _inv(state, inv_id)
    if inv is None or inv.status == COMPLETED:
        out.append(a.Rejected(inv_id, "no live invocation to cancel"))
        return
    if inv.status in (SCHEDULED, INBOXED) or (
            inv.status in (BACKING_OFF, PAUSED) and inv.journal_commands <= 1):
        _complete(state, inv, ts, None, CANCELLED, out)
        return
    t, raw = j.cancel_signal()
    _notify(state, inv, ts, t, raw, out)
    if inv.status in (BACKING_OFF, PAUSED, SUSPENDED):  # _notify may have resumed it already
        _drop_timers(state, inv.invocation_id, kinds=(TimerKind.RETRY,))
        _start_attempt(inv, ts, out)


def _kill(state: PartitionState, ts: int, inv_id: str, out: Actions) -> None:
    inv = _inv(state, inv_id)
    if inv is None or inv.status == COMPLETED:
        out.append(a.Rejected(inv_id, "no live invocation to kill"))
        return
    if inv.status == INVOKED:
        out.append(a.AbortAttempt(inv.invocation_id, inv.epoch))
    # Kill goes down the call tree: callees of (request-response) calls are killed too.
    for entry in inv.journal:
        if entry.entry_type == j.CALL and entry.callee_id is not None:
            _send(state, ts, entry.callee_id, c.Kill(entry.callee_id), out)
    _complete(state, inv, ts, None, KILLED, out)


# --- timers and routing ------------------------------------------------------------------------


def _set_timer(state: PartitionState, timer: Timer, out: Actions) -> None:
    state.timers[timer.timer_id] = timer
    state.changes.mark(Keyed.TIMERS, timer.timer_id)
    out.append(a.TimerSet(timer.timer_id, timer.fire_at))


def _drop_timers(state: PartitionState, inv_id: str, kinds: tuple[TimerKind, ...]) -> None:
    for kind in kinds:
        if kind == TimerKind.SLEEP:
            inv = _inv(state, inv_id)
            if inv is not None:  # its own list: no scan over every timer of the partition
                for cid in inv.sleep_timers:
                    _drop_timer(state, TimerId(kind, inv_id, cid))
                inv.sleep_timers = []
        else:
            _drop_timer(state, TimerId(kind, inv_id))


def _drop_timer(state: PartitionState, tid: TimerId) -> None:
    if state.timers.pop(tid.key, None) is not None:
        state.changes.mark(Keyed.TIMERS, tid.key)


def _timer_fired(state: PartitionState, ts: int, timer_id: str, out: Actions) -> None:
    timer = state.timers.pop(timer_id, None)
    if timer is None:
        return  # fired before, or cancelled
    state.changes.mark(Keyed.TIMERS, timer_id)
    inv = _inv(state, timer.invocation_id)
    if inv is None:
        return
    if timer.kind == TimerKind.SLEEP:
        if timer.completion_id in inv.sleep_timers:
            inv.sleep_timers.remove(timer.completion_id)
        if inv.status != COMPLETED:
            _local_notify(state, inv, ts, j.sleep_completion(timer.completion_id), out)
    elif timer.kind == TimerKind.INVOKE:
        if inv.status == SCHEDULED:
            _enqueue_or_start(state, inv, ts, out)
    elif timer.kind == TimerKind.RETRY:
        if inv.status == BACKING_OFF and inv.epoch == timer.epoch:
            _start_attempt(inv, ts, out)
    elif timer.kind == TimerKind.CLEANUP and inv.status == COMPLETED:
        _delete(state, inv)


def _send(state: PartitionState, ts: int, target_id: str, cmd: c.Command, out: Actions) -> None:
    """Deliver a command to the partition owning `target_id`: here at once, else via outbox."""
    try:
        dest = partition_of(ids.partition_key_of(target_id), state.partitions)
    except ids.IdError:
        out.append(a.Rejected(target_id, "not an invocation id"))
        return
    if dest == state.partition_id:
        _apply(state, ts, cmd, out)
        return
    seq = state.outbox_next_seq
    state.outbox_next_seq += 1
    payload = c.encode(ts, cmd)
    state.outbox[seq] = OutboxMessage(seq, dest, payload, ts)
    out.append(a.OutboxSend(seq, dest, payload))
