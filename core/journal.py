"""Journal entries as the state machine needs them: protocol messages made and read.

A thin layer over the shared protocol codec (`rstq.protocol.messages`), so `apply` reads as
runtime semantics rather than protobuf plumbing. Entries are stored as (type code, payload).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rstq.core import ids
from rstq.protocol import messages as pm

T = pm.MessageType
Message = Any  # a decoded protocol message; fields per restate-protocol.md Appendix A

INPUT = T.INPUT_COMMAND
OUTPUT = T.OUTPUT_COMMAND
SET_STATE = T.SET_STATE_COMMAND
CLEAR_STATE = T.CLEAR_STATE_COMMAND
CLEAR_ALL_STATE = T.CLEAR_ALL_STATE_COMMAND
GET_LAZY_STATE = T.GET_LAZY_STATE_COMMAND
GET_LAZY_STATE_KEYS = T.GET_LAZY_STATE_KEYS_COMMAND
GET_PROMISE = T.GET_PROMISE_COMMAND
PEEK_PROMISE = T.PEEK_PROMISE_COMMAND
COMPLETE_PROMISE = T.COMPLETE_PROMISE_COMMAND
SLEEP = T.SLEEP_COMMAND
CALL = T.CALL_COMMAND
ONE_WAY_CALL = T.ONE_WAY_CALL_COMMAND
SEND_SIGNAL = T.SEND_SIGNAL_COMMAND
RUN = T.RUN_COMMAND
ATTACH_INVOCATION = T.ATTACH_INVOCATION_COMMAND
GET_INVOCATION_OUTPUT = T.GET_INVOCATION_OUTPUT_COMMAND
COMPLETE_AWAKEABLE = T.COMPLETE_AWAKEABLE_COMMAND
SIGNAL = T.SIGNAL_NOTIFICATION
CANCEL_SIGNAL = 1

Result = tuple[bytes | None, tuple[int, str] | None]


def is_notification(entry_type: int) -> bool:
    return 0x8000 <= entry_type <= 0xFBFF


def is_command(entry_type: int) -> bool:
    return 0x0400 <= entry_type <= 0x7FFF or entry_type >= 0xFC00


def decode(entry_type: int, raw: bytes) -> Message:
    cls = pm.MESSAGE_TYPES.get(entry_type)
    if cls is None:
        return None  # custom command: opaque
    return cls.decode(raw)


def _entry(msg: pm.Message) -> tuple[int, bytes]:
    return msg.TYPE, msg.encode()


def _failure(f: tuple[int, str]) -> pm.Failure:
    return pm.Failure(code=f[0], message=f[1])


def _value_or_failure(cls: Any, completion_id: int, result: Result) -> tuple[int, bytes]:
    value, failure = result
    if failure is not None:
        return _entry(cls(completion_id=completion_id, failure=_failure(failure)))
    return _entry(cls(completion_id=completion_id, value=pm.Value(content=value or b"")))


def value_of(v: pm.Value | None) -> bytes:
    return v.content if v is not None else b""


def result_of(msg: Message) -> Result:
    """(value, failure) of a message with a value|failure oneof."""
    if getattr(msg, "failure", None) is not None:
        return None, (msg.failure.code, msg.failure.message)
    return value_of(getattr(msg, "value", None)), None


# --- commands the runtime writes -----------------------------------------------------------------


def input_command(headers: Sequence[tuple[str, str]], value: bytes) -> tuple[int, bytes]:
    hs = tuple(pm.Header(key=k, value=v) for k, v in headers)
    return _entry(pm.InputCommandMessage(headers=hs, value=pm.Value(content=value)))


# --- notifications the runtime writes ------------------------------------------------------------


def lazy_state_completion(completion_id: int, value: bytes | None) -> tuple[int, bytes]:
    cls = pm.GetLazyStateCompletionNotificationMessage
    if value is None:
        return _entry(cls(completion_id=completion_id, void=pm.Void()))
    return _entry(cls(completion_id=completion_id, value=pm.Value(content=value)))


def lazy_keys_completion(completion_id: int, keys: Sequence[bytes]) -> tuple[int, bytes]:
    return _entry(pm.GetLazyStateKeysCompletionNotificationMessage(
        completion_id=completion_id, state_keys=pm.StateKeys(keys=tuple(keys))))


def sleep_completion(completion_id: int) -> tuple[int, bytes]:
    return _entry(pm.SleepCompletionNotificationMessage(completion_id=completion_id,
                                                        void=pm.Void()))


def call_invocation_id(completion_id: int, invocation_id: str) -> tuple[int, bytes]:
    return _entry(pm.CallInvocationIdCompletionNotificationMessage(
        completion_id=completion_id, invocation_id=invocation_id))


def call_completion(completion_id: int, value: bytes | None,
                    failure: tuple[int, str] | None) -> tuple[int, bytes]:
    return _value_or_failure(pm.CallCompletionNotificationMessage, completion_id,
                             (value, failure))


def attach_completion(completion_id: int, value: bytes | None,
                      failure: tuple[int, str] | None) -> tuple[int, bytes]:
    return _value_or_failure(pm.AttachInvocationCompletionNotificationMessage, completion_id,
                             (value, failure))


def output_completion(completion_id: int, value: bytes | None,
                      failure: tuple[int, str] | None) -> tuple[int, bytes]:
    cls = pm.GetInvocationOutputCompletionNotificationMessage
    if value is None and failure is None:
        return _entry(cls(completion_id=completion_id, void=pm.Void()))
    return _value_or_failure(cls, completion_id, (value, failure))


_PROMISE_NOTES: dict[int, Any] = {
    GET_PROMISE: pm.GetPromiseCompletionNotificationMessage,
    PEEK_PROMISE: pm.PeekPromiseCompletionNotificationMessage,
    COMPLETE_PROMISE: pm.CompletePromiseCompletionNotificationMessage,
}


def promise_result(command_type: int, completion_id: int, value: bytes | None,
                   failure: tuple[int, str] | None) -> tuple[int, bytes]:
    return _value_or_failure(_PROMISE_NOTES[command_type], completion_id, (value, failure))


def promise_void(command_type: int, completion_id: int) -> tuple[int, bytes]:
    return _entry(_PROMISE_NOTES[command_type](completion_id=completion_id, void=pm.Void()))


def promise_completion_of(msg: Message) -> Result:
    if msg.completion_failure is not None:
        return None, (msg.completion_failure.code, msg.completion_failure.message)
    return value_of(msg.completion_value), None


def run_completion(completion_id: int, value: bytes | None,
                   failure: tuple[int, str] | None) -> tuple[int, bytes]:
    return _value_or_failure(pm.RunCompletionNotificationMessage, completion_id,
                             (value, failure))


def cancel_signal() -> tuple[int, bytes]:
    return _entry(pm.SignalNotificationMessage(idx=CANCEL_SIGNAL, void=pm.Void()))


def signal_notification(msg: Message) -> tuple[int, bytes]:
    """The SignalNotification a SendSignalCommand delivers to its target."""
    return _entry(pm.SignalNotificationMessage(idx=msg.idx, name=msg.name, void=msg.void,
                                               value=msg.value, failure=msg.failure))


def awakeable_completion(idx: int, msg: Message) -> tuple[int, bytes]:
    """The SignalNotification a CompleteAwakeableCommand delivers."""
    if msg.failure is not None:
        return _entry(pm.SignalNotificationMessage(idx=idx, failure=msg.failure))
    return _entry(pm.SignalNotificationMessage(idx=idx, value=msg.value or pm.Value()))


def awakeable_resolution(idx: int, value: bytes | None,
                         failure: tuple[int, str] | None) -> tuple[int, bytes]:
    """The SignalNotification for an awakeable resolved or rejected through ingress."""
    if failure is not None:
        return _entry(pm.SignalNotificationMessage(idx=idx, failure=_failure(failure)))
    return _entry(pm.SignalNotificationMessage(idx=idx, value=pm.Value(content=value or b"")))


def notification_ids(entry_type: int, raw: bytes) -> tuple[int | None, int | None, str | None]:
    """(completion id, signal index, signal name) of a stored notification."""
    msg = decode(entry_type, raw)
    if msg is None:
        return None, None, None
    return msg.completion_id, msg.signal_idx, msg.signal_name


def attach_target_id(msg: Message) -> str:
    """The invocation id an Attach/GetInvocationOutput command targets."""
    if msg.invocation_id is not None:
        return str(msg.invocation_id)
    if msg.workflow_target is not None:
        wt = msg.workflow_target
        return ids.workflow_invocation_id(str(wt.workflow_name), str(wt.workflow_key))
    t = msg.idempotent_request_target
    return ids.idempotent_invocation_id(str(t.service_name), t.service_key,
                                        str(t.handler_name), str(t.idempotency_key))
