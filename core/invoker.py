"""The invoker: runs invocation attempts against service endpoints (Restate service protocol).

For each `StartAttempt(invocation, epoch)` it sends Start plus the stored journal to the pinned
deployment, reads the frames the handler answers with and turns each into a log command
(proposed with an epoch precheck, so a zombie attempt never reaches the log). REQUEST_RESPONSE
deployments get one request per attempt; BIDI_STREAM deployments get a stream that stays open,
and notifications stored while the attempt runs are pushed on it at once. How the bytes travel
is the `Transport`'s business (core/transport.py: HTTP/1.1 and h2c, or an ASGI app in memory).

Nothing here changes state directly: every effect is a proposed command, applied by the
partition processor after it is durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core import journal as j
from rstq.core.apply import cancel_unobserved
from rstq.core.clock import Clock
from rstq.core.discovery import EffectiveSettings, OnMaxAttempts, effective_settings
from rstq.core.ids import idempotent_invocation_id, new_invocation_id, workflow_invocation_id
from rstq.core.metrics import Metrics
from rstq.core.model import INVOKED, Invocation, PartitionState
from rstq.core.ports import Limits, Partition, Partitions, SchemaSource
from rstq.core.processor import Refused
from rstq.core.schema import Deployment, retention_ms
from rstq.core.transport import Exchange, Head, Transport, TransportError
from rstq.protocol import messages as pm
from rstq.protocol import trace_ids as tids
from rstq.protocol.framing import (
    REQUESTED_ACK,
    FrameDecoder,
    FrameHeader,
    encode_frame,
    encode_raw_frame,
)
from rstq.protocol.ids import InvocationId
from rstq.protocol.versions import invocation_content_type
from rstq.protocol.wire import ProtocolError

log = logging.getLogger(__name__)
# State key names are part of the store's keys (core/store/keys.py); this keeps every key of
# an object well within the store's key limit, whatever the object key.
MAX_STATE_KEY_BYTES = 16 * 1024

PROTOCOL_VIOLATION = 571
T = pm.MessageType
_STATE_WRITES = {T.SET_STATE_COMMAND, T.CLEAR_STATE_COMMAND, T.CLEAR_ALL_STATE_COMMAND}
_PROMISE_COMMANDS = {T.GET_PROMISE_COMMAND, T.PEEK_PROMISE_COMMAND, T.COMPLETE_PROMISE_COMMAND}


class AttemptError(Exception):
    """The attempt failed; the invocation retries per its policy (or pauses / fails)."""

    def __init__(self, code: int, message: str, *, related: tuple[int, str, int] | None = None,
                 next_retry_delay: int | None = None, behavior: int = 0,
                 stacktrace: str = "", doc_code: str = "") -> None:
        super().__init__(message)
        self.doc_code = doc_code  # Restate's error doc code (RT0007: the service's own error)
        self.code = code
        self.message = message
        self.related = related
        self.next_retry_delay = next_retry_delay
        self.behavior = behavior
        self.stacktrace = stacktrace


@dataclass
class _Attempt:
    invocation_id: str
    epoch: int
    partition: int
    version: int
    task: asyncio.Task[None] | None = None
    service: str = ""  # the invocation's service (metrics labels)
    # BIDI only: journal indexes to push, and the stream they go on.
    push: asyncio.Queue[int] | None = None
    sent_upto: int = 0
    ack_ids: set[int] = field(default_factory=set)  # v7 run proposals that asked for an ack


class Invoker:
    """Runs the attempts the partitions ask for; owns `transport` (closed with the invoker)."""

    def __init__(self, *, partitions: Partitions, meta: SchemaSource, clock: Clock,
                 limits: Limits, transport: Transport, metrics: Metrics | None = None) -> None:
        self.partitions = partitions
        self.metrics = metrics
        self.meta = meta
        self.clock = clock
        self.limits = limits
        self.transport = transport
        self._attempts: dict[str, _Attempt] = {}
        self.started = 0
        self.failed = 0

    async def close(self) -> None:
        tasks = [att.task for att in self._attempts.values() if att.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._attempts.clear()
        await self.transport.close()

    # --- actions from the partitions -----------------------------------------------------------

    def handle(self, partition: int, act: a.Action) -> None:
        att: _Attempt | None
        if isinstance(act, a.StartAttempt):
            old = self._attempts.get(act.invocation_id)
            if old is not None and old.task is not None and old.epoch != act.epoch:
                old.task.cancel()
            att = _Attempt(act.invocation_id, act.epoch, partition, 0)
            self._attempts[act.invocation_id] = att
            att.task = asyncio.get_running_loop().create_task(self._run(att))
        elif isinstance(act, a.AbortAttempt):
            att = self._attempts.get(act.invocation_id)
            if att is not None and att.epoch == act.epoch and att.task is not None:
                att.task.cancel()
        elif isinstance(act, a.ForwardNotification):
            att = self._attempts.get(act.invocation_id)
            if (att is not None and att.epoch == act.epoch and att.push is not None
                    and act.journal_index >= att.sent_upto):
                att.push.put_nowait(act.journal_index)

    # --- one attempt ---------------------------------------------------------------------------

    async def _run(self, att: _Attempt) -> None:
        proc = self.partitions.partition(att.partition)
        try:
            inv = proc.state.invocations.get(att.invocation_id)
            if inv is None or inv.status != INVOKED or inv.epoch != att.epoch:
                return
            self.started += 1
            att.service = inv.service
            if self.metrics is not None:
                self.metrics.attempts.labels(service=inv.service).inc()
            try:
                dep, settings = self._target(inv)
                att.version = inv.protocol_version or dep.protocol_version
                await asyncio.wait_for(self._drive(att, proc, inv, dep, settings),
                                       settings.abort_timeout_ms / 1000)
            except AttemptError as e:
                await self._fail(att, proc, e)
            except TimeoutError:
                if dep.bidi:  # nothing from the peer for the whole attempt: a dead connection
                    await self.transport.evict_silent(
                        dep.uri, 0.9 * settings.abort_timeout_ms / 1000)
                await self._fail(att, proc, AttemptError(
                    500, "attempt exceeded the abort timeout"))
            except (TransportError, OSError) as e:
                await self._fail(att, proc, AttemptError(
                    503, f"cannot reach the service endpoint: {e}"))
            except ProtocolError as e:
                await self._fail(att, proc, AttemptError(PROTOCOL_VIOLATION, f"bad frames: {e}"))
        except Refused:
            # Fenced (a newer attempt, a kill, a shutdown): nothing to do. Not fenced (the log
            # refused the write, e.g. a full disk): run the attempt again a bit later.
            inv = proc.state.invocations.get(att.invocation_id)
            if (inv is not None and inv.status == INVOKED and inv.epoch == att.epoch
                    and proc.running):
                asyncio.get_running_loop().call_later(
                    1.0, self._restart, att.partition, att.invocation_id, att.epoch)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug of ours: record it on the invocation, never lose the loop
            log.exception("attempt of %s failed unexpectedly", att.invocation_id)
            try:
                await self._fail(att, proc, AttemptError(500, "internal error in the invoker",
                                                         stacktrace=traceback.format_exc()))
            except Exception:
                pass
        finally:
            if self._attempts.get(att.invocation_id) is att:
                del self._attempts[att.invocation_id]

    def _restart(self, partition: int, invocation_id: str, epoch: int) -> None:
        inv = self.partitions.partition(partition).state.invocations.get(invocation_id)
        if (invocation_id not in self._attempts and inv is not None and inv.status == INVOKED
                and inv.epoch == epoch):
            self.handle(partition, a.StartAttempt(invocation_id, epoch))

    def _target(self, inv: Invocation) -> tuple[Deployment, EffectiveSettings]:
        schema = self.meta.schema
        dep = schema.deployments.get(inv.deployment_id)
        if dep is None:
            raise AttemptError(500, f"deployment {inv.deployment_id} is not registered")
        sdef = dep.manifest.service(inv.service)
        if sdef is None or sdef.handler(inv.handler) is None:
            raise AttemptError(500, f"{inv.service}/{inv.handler} is not in deployment "
                                    f"{inv.deployment_id}")
        return dep, effective_settings(sdef, sdef.handler(inv.handler), schema.defaults)

    def _start_frames(self, inv: Invocation, state: PartitionState, settings: EffectiveSettings,
                      version: int) -> bytes:
        now = self.clock.now_ms()
        entries: tuple[pm.StateEntry, ...] = ()
        partial = True
        if inv.keyed and not settings.enable_lazy_state:
            kv = state.kv.get((inv.service, inv.key), {})
            entries = tuple(pm.StateEntry(key=k, value=v) for k, v in kv.items())
            partial = False
        last = inv.journal[-1].appended_at if inv.journal else now
        raw_id = InvocationId.parse(inv.invocation_id).to_bytes()
        start = pm.StartMessage(
            id=raw_id,
            debug_id=inv.invocation_id,
            known_entries=len(inv.journal),
            state_map=entries,
            partial_state=partial,
            key=inv.key,
            retry_count_since_last_stored_entry=inv.retry_count,
            duration_since_last_stored_entry=max(0, now - last),
            random_seed=int.from_bytes(hashlib.sha256(raw_id).digest()[:8], "big")
            if version >= 6 else 0,
            idempotency_key=inv.idempotency_key if version >= 7 else None,
        )
        parts = [encode_frame(start)]
        parts.extend(encode_raw_frame(e.entry_type, e.raw) for e in inv.journal)
        return b"".join(parts)

    def _headers(self, inv: Invocation, version: int, dep: Deployment) -> dict[str, str]:
        ctype = invocation_content_type(version)
        headers = {"content-type": ctype, "accept": ctype,
                   "x-restate-invocation-id": inv.invocation_id,
                   "x-restate-cluster-name": "rstq"}
        if inv.keyed:
            headers["x-restate-service-key"] = quote(inv.key, safe="")
        if inv.trace_id:  # the attempt's span: spans the handler makes nest under it
            headers["traceparent"] = tids.traceparent(
                inv.trace_id, tids.attempt_span_id(inv.invocation_id, inv.epoch))
        headers.update({k.lower(): v for k, v in dep.additional_headers})
        return headers

    async def _drive(self, att: _Attempt, proc: Partition, inv: Invocation,
                     dep: Deployment, settings: EffectiveSettings) -> None:
        body = self._start_frames(inv, proc.state, settings, att.version)
        att.sent_upto = len(inv.journal)
        url = f"{dep.uri.rstrip('/')}/invoke/{quote(inv.service, safe='')}/" \
              f"{quote(inv.handler, safe='')}"
        headers = self._headers(inv, att.version, dep)
        if dep.bidi:
            await self._drive_bidi(att, proc, url, headers, body, settings)
        else:
            await self._drive_request_response(att, proc, url, headers, body)

    async def _drive_request_response(self, att: _Attempt, proc: Partition, url: str,
                                      headers: dict[str, str], body: bytes) -> None:
        async with self.transport.open(url, headers, bidi=False) as exchange:
            await exchange.send(body)
            await exchange.end()
            await self._check_response(await exchange.head(), att.version, exchange.read)
            await self._consume(att, proc, exchange.body())

    async def _drive_bidi(self, att: _Attempt, proc: Partition, url: str,
                          headers: dict[str, str], body: bytes,
                          settings: EffectiveSettings) -> None:
        pusher: asyncio.Task[None] | None = None
        try:
            async with self.transport.open(url, headers, bidi=True) as stream:
                att.push = asyncio.Queue()
                pusher = asyncio.get_running_loop().create_task(
                    self._push(att, proc, stream, body, settings.inactivity_timeout_ms / 1000))
                await self._check_response(await stream.head(), att.version, stream.read)

                async def close_request_side() -> None:
                    # The handler ended: close our side at once (before waiting for the log),
                    # so the SDK can finish its response and free the stream.
                    assert pusher is not None
                    pusher.cancel()
                    try:
                        await pusher
                    except (asyncio.CancelledError, Exception):
                        pass
                    try:
                        await stream.end()
                    except TransportError:
                        pass  # already closed (inactivity) or reset

                await self._consume(att, proc, stream.body(), close_request_side)
        finally:
            if pusher is not None:
                pusher.cancel()
                try:
                    await pusher
                except (asyncio.CancelledError, Exception):
                    pass

    async def _push(self, att: _Attempt, proc: Partition, stream: Exchange,
                    initial: bytes, inactivity_s: float) -> None:
        """BIDI writer: the replay, then each stored notification; closes the request side
        after the inactivity timeout so the handler suspends instead of holding a slot."""
        assert att.push is not None
        await stream.send(initial)
        while True:
            try:
                index = await asyncio.wait_for(att.push.get(), inactivity_s)
            except TimeoutError:
                await stream.end()
                return
            inv = proc.state.invocations.get(att.invocation_id)
            if inv is None or inv.epoch != att.epoch or index >= len(inv.journal):
                continue
            entry = inv.journal[index]
            if entry.entry_type == T.RUN_COMPLETION_NOTIFICATION and att.ack_ids:
                cid = pm.RunCompletionNotificationMessage.decode(entry.raw).completion_id
                if cid in att.ack_ids:
                    att.ack_ids.discard(cid)
                    await stream.send(encode_frame(
                        pm.ProposeRunCompletionAckMessage(completion_id=cid)))
                    continue
            await stream.send(encode_raw_frame(entry.entry_type, entry.raw))

    async def _check_response(self, head: Head, version: int,
                              read_rest: Callable[[], Awaitable[bytes]]) -> None:
        status, ctype, retry_after = head.status, head.content_type, head.retry_after
        if status != 200:
            excerpt = ""
            try:
                excerpt = (await read_rest())[:300].decode("utf-8", "replace")
            except Exception:
                pass
            # Retry-After (delay in seconds) on 429/503 sets the next retry's delay, up to 1 h.
            delay = None
            if status in (429, 503) and retry_after and retry_after.strip().isdigit():
                delay = min(int(retry_after.strip()), 3600) * 1000
            raise AttemptError(500 if status < 400 else status,
                               f"service endpoint answered HTTP {status}: {excerpt}".strip(),
                               next_retry_delay=delay)
        expected = invocation_content_type(version)
        if (ctype or "").split(";")[0].strip() != expected:
            raise AttemptError(PROTOCOL_VIOLATION,
                               f"service endpoint answered content-type {ctype!r}, "
                               f"expected {expected!r}")

    async def _consume(self, att: _Attempt, proc: Partition,
                       chunks: AsyncIterator[bytes],
                       on_end: Callable[[], Awaitable[None]] | None = None) -> None:
        # Frames over the journal entry limit fail the attempt before they are buffered.
        decoder = FrameDecoder(self.limits.max_journal_entry_bytes)
        pending: list[asyncio.Future[list[a.Action]]] = []
        async for chunk in chunks:
            for header, msg in decoder.feed(chunk):
                done = self._on_frame(att, proc, header, msg, pending)
                if done:
                    if on_end is not None:
                        await on_end()
                    await self._settle(pending)
                    return
        decoder.close()
        await self._settle(pending)
        raise AttemptError(500, "the service closed the stream without End, Suspension or Error")

    async def _settle(self, pending: list[asyncio.Future[list[a.Action]]]) -> None:
        """Wait until everything this attempt proposed is durable and applied."""
        if pending:
            for res in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(res, BaseException):
                    raise res

    def _propose(self, att: _Attempt, proc: Partition, cmd: c.Command,
                 pending: list[asyncio.Future[list[a.Action]]]) -> None:
        def current(state: PartitionState) -> str | None:
            inv = state.invocations.get(att.invocation_id)
            if inv is None or inv.status != INVOKED or inv.epoch != att.epoch:
                return f"stale attempt (epoch {att.epoch})"
            return None

        pending.append(proc.propose_nowait(cmd, precheck=current))

    def _on_frame(self, att: _Attempt, proc: Partition, header: FrameHeader,
                  msg: pm.Message, pending: list[asyncio.Future[list[a.Action]]]) -> bool:
        """Turn one frame into proposals; True when it ends the attempt."""
        t = header.type
        inv_id, ep = att.invocation_id, att.epoch
        if isinstance(msg, pm.SetStateCommandMessage) and len(msg.key) > MAX_STATE_KEY_BYTES:
            raise AttemptError(PROTOCOL_VIOLATION,
                               f"state key of {len(msg.key)} bytes exceeds the state key limit "
                               f"of {MAX_STATE_KEY_BYTES} bytes")
        if isinstance(msg, pm.SetStateCommandMessage) and msg.value is not None:
            limit = self.limits.max_state_value_bytes
            if len(msg.value.content) > limit:
                raise AttemptError(PROTOCOL_VIOLATION,
                                   f"state value of {len(msg.value.content)} bytes exceeds the "
                                   f"state value limit of {limit} bytes")
        if isinstance(msg, pm.EndMessage):
            self._propose(att, proc, c.End(inv_id, ep), pending)
            return True
        if isinstance(msg, pm.SuspensionMessage):
            comps, sigs, names = msg.leaves()
            if self.metrics is not None:
                self.metrics.suspensions.labels(service=att.service).inc()
            future_json = _future_json(msg.awaiting_on) if msg.awaiting_on is not None else ""
            self._propose(att, proc, c.Suspend(inv_id, ep, sorted(comps), sorted(sigs),
                                               sorted(names), future_json), pending)
            return True
        if isinstance(msg, pm.ErrorMessage):
            raise AttemptError(msg.code, msg.message, stacktrace=msg.stacktrace,
                               doc_code="RT0007",
                               related=(msg.related_command_index or 0,
                                        msg.related_command_name or "",
                                        msg.related_command_type or 0)
                               if msg.related_command_index is not None else None,
                               next_retry_delay=msg.next_retry_delay, behavior=int(msg.behavior))
        if isinstance(msg, pm.ProposeRunCompletionMessage):
            if att.version >= 7 and header.flags & REQUESTED_ACK:
                att.ack_ids.add(msg.result_completion_id)
            failure = (msg.failure.code, msg.failure.message) if msg.failure else None
            nt, raw = j.run_completion(msg.result_completion_id,
                                       None if failure else (msg.value or b""), failure)
            self._propose(att, proc, c.AppendEntry(inv_id, ep, nt, raw), pending)
            return False
        if isinstance(msg, (pm.AwaitingOnMessage, pm.CommandAckMessage)):
            return False  # hints only
        if not pm.is_command(t):
            raise AttemptError(PROTOCOL_VIOLATION,
                               f"unexpected message type 0x{t:04x} from the service")
        self._propose(att, proc, self._command(att, proc.state, t, msg), pending)
        return False

    def _command(self, att: _Attempt, state: PartitionState, t: int,
                 msg: pm.Message) -> c.AppendEntry:
        inv = state.invocations[att.invocation_id]
        raw = msg.encode() if not isinstance(msg, pm.CustomCommandMessage) else msg.payload
        if t in _STATE_WRITES and not inv.exclusive:
            raise AttemptError(PROTOCOL_VIOLATION,
                               f"{inv.target}: only exclusive handlers of virtual objects and "
                               "workflows can write state")
        if t in _PROMISE_COMMANDS and inv.service_ty != "workflow":
            raise AttemptError(PROTOCOL_VIOLATION, "promises exist only in workflows")
        if not isinstance(msg, (pm.CallCommandMessage, pm.OneWayCallCommandMessage)):
            return c.AppendEntry(att.invocation_id, att.epoch, t, raw)
        svc = self.meta.schema.services.get(msg.service_name)
        if svc is None or svc.handler(msg.handler_name) is None:
            raise AttemptError(
                500, f"call to unknown target {msg.service_name}/{msg.handler_name}",
                related=(inv.journal_commands, msg.name, t))
        keyed = svc.ty in ("virtual_object", "workflow")
        handler_ty = svc.handler_ty(msg.handler_name)
        key = msg.key if keyed else None
        if msg.idempotency_key:
            callee = idempotent_invocation_id(svc.name, key, msg.handler_name,
                                              msg.idempotency_key)
        elif svc.ty == "workflow" and handler_ty == "workflow":
            callee = workflow_invocation_id(svc.name, msg.key)
        else:
            callee = new_invocation_id(svc.name, key, self.clock.now_ms())
        dep = self.meta.schema.deployments[svc.deployment_id]
        completion_ms, journal_ms = retention_ms(
            svc, msg.handler_name, bool(msg.idempotency_key),
            svc.ty == "workflow" and handler_ty == "workflow")
        return c.AppendEntry(att.invocation_id, att.epoch, t, raw, callee_id=callee,
                             callee_service_ty=svc.ty, callee_handler_ty=handler_ty,
                             callee_deployment_id=dep.deployment_id,
                             callee_protocol_version=dep.protocol_version,
                             callee_completion_retention_ms=completion_ms,
                             callee_journal_retention_ms=journal_ms)

    # --- failures ------------------------------------------------------------------------------

    async def _fail(self, att: _Attempt, proc: Partition, err: AttemptError) -> None:
        inv = proc.state.invocations.get(att.invocation_id)
        if inv is None or inv.status != INVOKED or inv.epoch != att.epoch:
            return
        self.failed += 1
        try:
            _, settings = self._target(inv)
            policy = settings.retry_policy
        except AttemptError:
            policy = self.meta.schema.defaults.retry_policy
        failures = inv.total_retries + 1
        now = self.clock.now_ms()
        retry_at = 0
        if err.behavior == pm.ErrorBehavior.PAUSE:
            then = c.AttemptOutcome.PAUSE
        elif err.behavior == pm.ErrorBehavior.FAIL:
            then = c.AttemptOutcome.FAIL
        elif policy.max_attempts is not None and failures >= policy.max_attempts:
            then = (c.AttemptOutcome.PAUSE if policy.on_max_attempts == OnMaxAttempts.PAUSE
                    else c.AttemptOutcome.KILL)
        else:
            then = c.AttemptOutcome.RETRY
            if err.next_retry_delay is not None:
                delay = err.next_retry_delay
            else:
                initial = policy.initial_interval_ms or 500
                factor = policy.exponentiation_factor or 2.0
                delay = int(initial * factor ** (failures - 1))
                if policy.max_interval_ms is not None:
                    delay = min(delay, policy.max_interval_ms)
            retry_at = now + delay
        related = err.related
        if self.metrics is not None:
            self.metrics.attempt_failures.labels(service=inv.service).inc()
            if then == c.AttemptOutcome.RETRY:
                self.metrics.retries.labels(service=inv.service).inc()
        _log_failure(att, inv, err, then, retry_at - now)
        cmd = c.AttemptFailed(
            att.invocation_id, att.epoch, err.code, err.message, err.stacktrace[:MAX_STACKTRACE],
            related[0] if related else None, related[1] if related else None,
            related[2] if related else None, then=then, retry_at_ms=retry_at,
            doc_code=err.doc_code)
        pending: list[asyncio.Future[list[a.Action]]] = []
        self._propose(att, proc, cmd, pending)
        await self._settle(pending)


MAX_STACKTRACE = 8000  # characters of a failure's stack trace kept (the head: the SDK's frames)


def _log_failure(att: _Attempt, inv: Invocation, err: AttemptError, then: c.AttemptOutcome,
                 delay_ms: int) -> None:
    """One WARNING line per failed attempt, naming the invocation and its target, what happens
    next and how to stop it; the stack trace as the SDK sent it follows when the failure is not
    the same as the previous one (a handler failing the same way 70 times logs it once)."""
    if cancel_unobserved(inv):
        nxt = "cancelled (it failed before reacting to its cancellation)"
    elif then == c.AttemptOutcome.RETRY:
        nxt = (f"retrying in {delay_ms / 1000:.1f}s; stop it with `rstq inv cancel "
               f"{att.invocation_id}` (or kill, pause)")
    elif then == c.AttemptOutcome.PAUSE:
        nxt = f"paused; `rstq inv resume {att.invocation_id}` retries it"
    else:
        nxt = "no retries left: the invocation fails with this error"
    same = (inv.last_failure == err.message and inv.last_failure_code == err.code
            and inv.total_retries > 0)
    trace = ""
    if err.stacktrace and not same:
        trace = "\n  " + err.stacktrace.rstrip().replace("\n", "\n  ")
    log.warning("attempt %d of %s (%s) failed: [%d] %s; %s%s", att.epoch, att.invocation_id,
                inv.target, err.code, err.message, nxt, trace)


def _future_json(f: pm.Future) -> str:
    def conv(x: pm.Future) -> dict[str, Any]:
        return {"combinator": int(x.combinator_type),
                "completions": list(x.waiting_completions),
                "signals": list(x.waiting_signals),
                "named_signals": list(x.waiting_named_signals),
                "nested": [conv(n) for n in x.nested_futures]}

    return json.dumps(conv(f))
