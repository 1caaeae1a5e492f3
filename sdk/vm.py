"""The invocation state machine, sans-IO: frames in, frames out.

One :class:`VM` per attempt. The runtime's frames (Start, the replayed journal, then live
notifications) go in through :meth:`VM.notify_input`; commands and control frames come out
of :meth:`VM.take_output`. User-facing calls (``sys_*``) allocate completion/signal ids
deterministically, check replayed commands against the journal (mismatch -> ErrorMessage
570), and return *handles* the caller polls with :meth:`VM.is_completed` / :meth:`VM.take`.

Handles: a completion id ``c`` is ``c``; signal ``idx`` is ``-idx`` (so CANCEL is ``-1``);
named signals get handles below :data:`_NAMED_BASE`. Every notification gets an arrival
sequence number: combinators and cancellation resolve by arrival order, which the runtime
persists, so a replay takes the same decisions as the original run.
"""

from __future__ import annotations

import time
from typing import Any, Final

from rstq.protocol import (
    REQUESTED_ACK,
    VOID,
    AttachInvocationCommandMessage,
    AwaitingOnMessage,
    CallCommandMessage,
    ClearAllStateCommandMessage,
    ClearStateCommandMessage,
    Command,
    CommandAckMessage,
    CompleteAwakeableCommandMessage,
    CompletePromiseCommandMessage,
    EndMessage,
    ErrorCode,
    ErrorMessage,
    Failure,
    FrameDecoder,
    Future,
    GetEagerStateCommandMessage,
    GetEagerStateKeysCommandMessage,
    GetInvocationOutputCommandMessage,
    GetLazyStateCommandMessage,
    GetLazyStateKeysCommandMessage,
    GetPromiseCommandMessage,
    Header,
    InputCommandMessage,
    Message,
    Notification,
    OneWayCallCommandMessage,
    OutputCommandMessage,
    PeekPromiseCommandMessage,
    ProposeRunCompletionAckMessage,
    ProposeRunCompletionMessage,
    ProtocolError,
    RunCommandMessage,
    SendSignalCommandMessage,
    SetStateCommandMessage,
    SleepCommandMessage,
    StartMessage,
    StateKeys,
    SuspensionMessage,
    Value,
    awakeable_id,
    encode_frame,
    is_command,
    is_notification,
)

from .exceptions import SdkInternalBaseException

CANCEL_HANDLE: Final = -1
_NAMED_BASE: Final = -(1 << 40)
_FIRST_SIGNAL: Final = 17

#: results held per handle: VOID, bytes (a value), Failure, str (invocation id), StateKeys
Result = Any


class Ready:
    """A result available without a round trip (eager state)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class AttemptEnded(SdkInternalBaseException):
    """Raised by ``sys_*`` once the attempt has ended (mismatch, error, suspension).
    A BaseException, so ``except Exception`` in user code does not swallow it."""


def _now_ms() -> int:
    return int(time.time() * 1000)


# Fields that legitimately differ between the original run and a replay.
_VOLATILE: Final[dict[type, dict[str, Any]]] = {
    SleepCommandMessage: {"wake_up_time": 0},
    OneWayCallCommandMessage: {"invoke_time": 0},
}


def _same_command(recorded: Command, new: Command) -> bool:
    if type(recorded) is not type(new):
        return False
    if recorded == new:
        return True
    blank = _VOLATILE.get(type(new))
    return blank is not None and recorded.replace(**blank) == new.replace(**blank)


class VM:
    """State machine of one invocation attempt (protocol v5-v7)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self.start: StartMessage | None = None
        self.input: InputCommandMessage | None = None
        self._known = -1
        self._received = 0
        self._replay: list[Command] = []
        self._replay_idx = 0
        self._results: dict[int, tuple[int, Result]] = {}
        self._seq = 0
        self._next_cid = 1
        self._next_signal = _FIRST_SIGNAL
        self._named: dict[str, int] = {}
        self._proposals: dict[int, Result] = {}
        self.run_commands: dict[int, tuple[int, Command]] = {}  # cid -> (index, command)
        self._commands = 1  # the Input command is index 0
        self.state: dict[str, bytes] = {}
        self.partial_state = True
        self.input_closed = False
        self.ended = False
        self.cancel_consumed = False
        self.outcome: str | None = None  # "end" | "suspended" | "error"

    # ---------------------------------------------------------------- input
    @property
    def ready(self) -> bool:
        """Start and the whole replayed journal have arrived."""
        return self._known >= 0 and self._received >= self._known

    @property
    def replaying(self) -> bool:
        return self._replay_idx < len(self._replay)

    def notify_input(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            self._protocol_violation(str(exc))
            return
        for hdr, msg in frames:
            self._on_message(hdr.type, msg)

    def notify_input_closed(self) -> None:
        self.input_closed = True

    def _on_message(self, t: int, msg: Message) -> None:
        if self.start is None:
            if not isinstance(msg, StartMessage):
                self._protocol_violation("the first frame must be StartMessage")
                return
            self.start = msg
            self._known = msg.known_entries
            self.state = {e.key.decode(): e.value for e in msg.state_map}
            self.partial_state = msg.partial_state
            return
        if is_notification(t):
            self._received += 1
            assert isinstance(msg, Notification)
            self._on_notification(msg)
        elif is_command(t):
            self._received += 1
            if isinstance(msg, InputCommandMessage) and self.input is None:
                self.input = msg
            elif self._received <= self._known:
                assert isinstance(msg, Command)
                self._replay.append(msg)
        elif isinstance(msg, ProposeRunCompletionAckMessage):
            cid = msg.completion_id
            if cid in self._proposals and cid not in self._results:
                self._complete(cid, self._proposals[cid])
        elif isinstance(msg, CommandAckMessage):
            pass

    def _on_notification(self, n: Notification) -> None:
        cid = n.completion_id
        if cid is not None:
            h = cid
        elif n.signal_idx is not None:
            h = -n.signal_idx
        else:
            name = n.signal_name or ""
            h = self._named_handle(name)
        r: Result = n.result
        if type(r) is Value:
            r = r.content
        self._complete(h, r)

    def _complete(self, h: int, r: Result) -> None:
        if h not in self._results:
            self._seq += 1
            self._results[h] = (self._seq, r)

    def _named_handle(self, name: str) -> int:
        h = self._named.get(name)
        if h is None:
            h = self._named[name] = _NAMED_BASE - len(self._named)
        return h

    # ---------------------------------------------------------------- output
    def take_output(self) -> bytes:
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _write(self, msg: Message, flags: int = 0) -> None:
        self._out += encode_frame(msg, flags)

    def _alloc(self) -> int:
        c = self._next_cid
        self._next_cid = c + 1
        return c

    def _emit(self, cmd: Command) -> Command:
        """Journal a command: check it against the replayed journal, else send it."""
        if self.ended:
            raise AttemptEnded()
        self._commands += 1
        if self._replay_idx < len(self._replay):
            rec = self._replay[self._replay_idx]
            self._replay_idx += 1
            if not _same_command(rec, cmd):
                self.fail(ErrorCode.JOURNAL_MISMATCH,
                          f"Journal mismatch at command {self._commands - 1}: replayed "
                          f"{type(rec).__name__} {rec!r}, the handler now issued "
                          f"{type(cmd).__name__} {cmd!r}", command=cmd)
                raise AttemptEnded()
            return rec
        self._write(cmd)
        return cmd

    def _peek_replay(self) -> Command | None:
        if self._replay_idx < len(self._replay):
            return self._replay[self._replay_idx]
        return None

    # ---------------------------------------------------------------- state
    def sys_get_state(self, key: str, name: str = "") -> Ready | int:
        kb = key.encode()
        rec = self._peek_replay()
        if isinstance(rec, GetEagerStateCommandMessage) or (
                rec is None and (key in self.state or not self.partial_state)):
            val = self.state.get(key)
            cmd = GetEagerStateCommandMessage(
                key=kb, name=name, void=VOID if val is None else None,
                value=None if val is None else Value(val))
            got = self._emit(cmd) if rec is None else self._replay_eager(cmd, rec)
            assert isinstance(got, GetEagerStateCommandMessage)
            return Ready(got.value.content if got.value is not None else None)
        cid = self._alloc()
        self._emit(GetLazyStateCommandMessage(key=kb, result_completion_id=cid, name=name))
        return cid

    def _replay_eager(self, cmd: Command, rec: Command) -> Command:
        """Eager reads replay the recorded result (state may have moved on since)."""
        if type(rec) is not type(cmd) or getattr(rec, "key", None) != getattr(cmd, "key", None):
            return self._emit(cmd)  # reports the mismatch
        self._replay_idx += 1
        self._commands += 1
        return rec

    def sys_state_keys(self, name: str = "") -> Ready | int:
        rec = self._peek_replay()
        if isinstance(rec, GetEagerStateKeysCommandMessage) or (
                rec is None and not self.partial_state):
            keys = sorted(self.state)
            cmd = GetEagerStateKeysCommandMessage(
                name=name, value=StateKeys(tuple(k.encode() for k in keys)))
            got = self._emit(cmd) if rec is None else self._replay_eager(cmd, rec)
            assert isinstance(got, GetEagerStateKeysCommandMessage)
            return Ready([k.decode() for k in (got.value.keys if got.value else ())])
        cid = self._alloc()
        self._emit(GetLazyStateKeysCommandMessage(result_completion_id=cid, name=name))
        return cid

    def sys_set_state(self, key: str, value: bytes, name: str = "") -> None:
        self._emit(SetStateCommandMessage(key=key.encode(), value=Value(value), name=name))
        self.state[key] = value

    def sys_clear_state(self, key: str, name: str = "") -> None:
        self._emit(ClearStateCommandMessage(key=key.encode(), name=name))
        self.state.pop(key, None)

    def sys_clear_all_state(self, name: str = "") -> None:
        self._emit(ClearAllStateCommandMessage(name=name))
        self.state.clear()
        self.partial_state = False  # nothing left that we do not know of

    # ---------------------------------------------------------------- timers, calls
    def sys_sleep(self, millis: int, name: str = "") -> int:
        cid = self._alloc()
        self._emit(SleepCommandMessage(wake_up_time=_now_ms() + millis,
                                       result_completion_id=cid, name=name))
        return cid

    def sys_call(self, service: str, handler: str, parameter: bytes, key: str = "",
                 idempotency_key: str | None = None, headers: dict[str, str] | None = None,
                 name: str = "") -> tuple[int, int]:
        """Returns (result handle, invocation-id handle)."""
        id_cid = self._alloc()
        res_cid = self._alloc()
        hdrs = tuple(Header(k, v) for k, v in headers.items()) if headers else ()
        self._emit(CallCommandMessage(
            service_name=service, handler_name=handler, parameter=parameter, headers=hdrs,
            key=key, idempotency_key=idempotency_key, invocation_id_notification_idx=id_cid,
            result_completion_id=res_cid, name=name))
        return res_cid, id_cid

    def sys_send(self, service: str, handler: str, parameter: bytes, key: str = "",
                 delay_ms: int | None = None, idempotency_key: str | None = None,
                 headers: dict[str, str] | None = None, name: str = "") -> int:
        """Returns the invocation-id handle."""
        id_cid = self._alloc()
        hdrs = tuple(Header(k, v) for k, v in headers.items()) if headers else ()
        self._emit(OneWayCallCommandMessage(
            service_name=service, handler_name=handler, parameter=parameter,
            invoke_time=_now_ms() + delay_ms if delay_ms else 0, headers=hdrs, key=key,
            idempotency_key=idempotency_key, invocation_id_notification_idx=id_cid,
            name=name))
        return id_cid

    def sys_cancel_invocation(self, invocation_id: str) -> None:
        self._emit(SendSignalCommandMessage(target_invocation_id=invocation_id, idx=1,
                                            void=VOID))

    def sys_attach_invocation(self, invocation_id: str, name: str = "") -> int:
        cid = self._alloc()
        self._emit(AttachInvocationCommandMessage(invocation_id=invocation_id,
                                                  result_completion_id=cid, name=name))
        return cid

    def sys_get_invocation_output(self, invocation_id: str, name: str = "") -> int:
        cid = self._alloc()
        self._emit(GetInvocationOutputCommandMessage(invocation_id=invocation_id,
                                                     result_completion_id=cid, name=name))
        return cid

    # ---------------------------------------------------------------- run
    def sys_run(self, name: str) -> int:
        cid = self._alloc()
        cmd = self._emit(RunCommandMessage(result_completion_id=cid, name=name))
        self.run_commands[cid] = (self._commands - 1, cmd)
        return cid

    def needs_execution(self, cid: int) -> bool:
        """A run whose result is neither journaled nor proposed in this attempt."""
        return cid not in self._results and cid not in self._proposals

    def propose_run_completion(self, cid: int, value: bytes | None = None,
                               failure: Failure | None = None) -> None:
        if self.ended:
            return
        self._proposals[cid] = failure if failure is not None else value
        # v7: ask for an ack instead of the notification echo (REQUESTED_ACK)
        self._write(ProposeRunCompletionMessage(result_completion_id=cid, value=value,
                                                failure=failure),
                    REQUESTED_ACK if self.version >= 7 else 0)

    # ---------------------------------------------------------------- signals, promises
    def sys_awakeable(self) -> tuple[str, int]:
        assert self.start is not None
        idx = self._next_signal
        self._next_signal = idx + 1
        return awakeable_id(self.start.id, idx), -idx

    def sys_complete_awakeable(self, awk_id: str, value: bytes | None = None,
                               failure: Failure | None = None) -> None:
        self._emit(CompleteAwakeableCommandMessage(
            awakeable_id=awk_id, value=None if failure is not None else Value(value or b""),
            failure=failure))

    def sys_signal(self, name: str) -> int:
        return self._named_handle(name)

    def sys_complete_signal(self, invocation_id: str, name: str, value: bytes | None = None,
                            failure: Failure | None = None) -> None:
        self._emit(SendSignalCommandMessage(
            target_invocation_id=invocation_id, name=name,
            value=None if failure is not None else Value(value or b""), failure=failure))

    def sys_get_promise(self, key: str, name: str = "") -> int:
        cid = self._alloc()
        self._emit(GetPromiseCommandMessage(key=key, result_completion_id=cid, name=name))
        return cid

    def sys_peek_promise(self, key: str, name: str = "") -> int:
        cid = self._alloc()
        self._emit(PeekPromiseCommandMessage(key=key, result_completion_id=cid, name=name))
        return cid

    def sys_complete_promise(self, key: str, value: bytes | None = None,
                             failure: Failure | None = None, name: str = "") -> int:
        cid = self._alloc()
        self._emit(CompletePromiseCommandMessage(
            key=key, completion_value=None if failure is not None else Value(value or b""),
            completion_failure=failure, result_completion_id=cid, name=name))
        return cid

    # ---------------------------------------------------------------- results
    def is_completed(self, h: int) -> bool:
        return h in self._results

    def seq(self, h: int) -> int:
        """Arrival order of a completed handle."""
        return self._results[h][0]

    def take(self, h: int) -> Result:
        return self._results[h][1]

    def cancel_pending(self) -> bool:
        return not self.cancel_consumed and CANCEL_HANDLE in self._results

    # ---------------------------------------------------------------- ending
    def awaiting_on(self, handles: list[int]) -> None:
        """v7 hint sent before blocking (the runtime may ignore it)."""
        if self.version >= 7 and not self.ended:
            self._write(AwaitingOnMessage(awaiting_on=self._future(handles)))

    def _leaves(self, handles: list[int]) -> tuple[tuple[int, ...], tuple[int, ...],
                                                   tuple[str, ...]]:
        comps = tuple(sorted(h for h in handles if h > 0))
        sigs = tuple(sorted(-h for h in handles if _NAMED_BASE < h < 0 and h != -1)) + (1,)
        names = {v: k for k, v in self._named.items()}
        named = tuple(names[h] for h in handles if h <= _NAMED_BASE)
        return comps, sigs, named

    def _future(self, handles: list[int]) -> Future:
        c, s, n = self._leaves(handles)
        return Future(c, s, n, (), 1)

    def suspend(self, handles: list[int]) -> None:
        if self.ended:
            return
        c, s, n = self._leaves(handles)
        self._write(SuspensionMessage.create(self.version, c, s, n))
        self.ended = True
        self.outcome = "suspended"

    def output(self, value: bytes | None = None, failure: Failure | None = None) -> None:
        """OutputCommand + End."""
        cmd = OutputCommandMessage(value=None if failure is not None else Value(value or b""),
                                   failure=failure)
        self._emit(cmd)
        self._write(EndMessage())
        self.ended = True
        self.outcome = "end"

    def fail(self, code: int, message: str, stacktrace: str = "",
             next_retry_delay_ms: int | None = None, command: Command | None = None,
             command_index: int | None = None) -> None:
        """ErrorMessage: this attempt failed, the runtime retries."""
        if self.ended:
            return
        related: dict[str, Any] = {}
        if command is not None:
            idx = self._commands - 1 if command_index is None else command_index
            related = {"related_command_index": idx,
                       "related_command_type": command.message_type}
            if command.entry_name:
                related["related_command_name"] = command.entry_name
        self._write(ErrorMessage(code=code, message=message, stacktrace=stacktrace,
                                 next_retry_delay=next_retry_delay_ms, **related))
        self.ended = True
        self.outcome = "error"

    def _protocol_violation(self, message: str) -> None:
        self.fail(ErrorCode.PROTOCOL_VIOLATION, message)
