# ruff: noqa: RUF009  (pb() returns a dataclasses.field with protobuf metadata)
"""Restate service-protocol messages (v5, v6, v7) with a hand-written protobuf codec.

Every message is a frozen, slotted dataclass. Each field carries its protobuf field
number and kind in ``dataclasses.field(metadata=...)`` (see :func:`pb`); at import time
the class decorator :func:`_message` turns those declarations into precomputed encode and
decode tables, so encoding and decoding never reflect on the class per call.

Representation rules (proto3):

* plain scalars (``u32``, ``u64``, ``bool``, ``string``, ``bytes``, enums) default to
  ``0``/``False``/``""``/``b""`` and are omitted on the wire when default;
* ``optional`` scalars, oneof members and sub-messages are ``None`` when absent and are
  always encoded when not ``None`` (even if the value is a default);
* repeated fields are tuples; repeated ``u32`` is written packed and accepted both packed
  and unpacked;
* fields are written in field-number order, so output is byte-identical to protobuf's;
* unknown fields are skipped on decode (forward compatibility). Setting one oneof member
  on decode clears the others (last one wins, as in protobuf).

Messages are a superset over protocol versions: e.g. :class:`SuspensionMessage` has both
the v5/v6 flat lists (fields 1-3) and the v7 ``awaiting_on`` Future (field 4). The
caller chooses which fields to fill according to the negotiated version.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, ClassVar, Final, NamedTuple, Self, TypeVar

from .wire import (
    MAX_U32,
    MAX_U64,
    WIRE_LEN,
    WIRE_VARINT,
    DecodeError,
    ProtocolError,
    decode_len,
    decode_varint,
    encode_varint,
    make_tag,
    skip_field,
)

__all__ = [
    "MAX_NESTING",
    "MESSAGE_TYPES",
    "MESSAGE_TYPE_CODES",
    "VOID",
    "AttachInvocationCommandMessage",
    "AttachInvocationCompletionNotificationMessage",
    "AwaitingOnMessage",
    "BuiltInSignal",
    "CallCommandMessage",
    "CallCompletionNotificationMessage",
    "CallInvocationIdCompletionNotificationMessage",
    "ClearAllStateCommandMessage",
    "ClearStateCommandMessage",
    "CombinatorType",
    "Command",
    "CommandAckMessage",
    "CompleteAwakeableCommandMessage",
    "CompletePromiseCommandMessage",
    "CompletePromiseCompletionNotificationMessage",
    "CustomCommandMessage",
    "EndMessage",
    "ErrorBehavior",
    "ErrorMessage",
    "Failure",
    "FailureMetadata",
    "FieldKind",
    "Future",
    "GetEagerStateCommandMessage",
    "GetEagerStateKeysCommandMessage",
    "GetInvocationOutputCommandMessage",
    "GetInvocationOutputCompletionNotificationMessage",
    "GetLazyStateCommandMessage",
    "GetLazyStateCompletionNotificationMessage",
    "GetLazyStateKeysCommandMessage",
    "GetLazyStateKeysCompletionNotificationMessage",
    "GetPromiseCommandMessage",
    "GetPromiseCompletionNotificationMessage",
    "Header",
    "IdempotentRequestTarget",
    "InputCommandMessage",
    "Message",
    "MessageType",
    "Notification",
    "NotificationId",
    "NotificationKind",
    "NotificationResult",
    "OneWayCallCommandMessage",
    "OpaqueMessage",
    "OutputCommandMessage",
    "PeekPromiseCommandMessage",
    "PeekPromiseCompletionNotificationMessage",
    "ProposeRunCompletionAckMessage",
    "ProposeRunCompletionMessage",
    "RunCommandMessage",
    "RunCompletionNotificationMessage",
    "SendSignalCommandMessage",
    "SetStateCommandMessage",
    "SignalNotificationMessage",
    "SleepCommandMessage",
    "SleepCompletionNotificationMessage",
    "StartMessage",
    "StateEntry",
    "StateKeys",
    "SuspensionMessage",
    "Value",
    "Void",
    "WorkflowTarget",
    "decode_message",
    "is_command",
    "is_control",
    "is_custom_command",
    "is_notification",
    "message_type_name",
    "pb",
]

# --------------------------------------------------------------------------------------
# Field declarations
# --------------------------------------------------------------------------------------


class FieldKind(enum.IntEnum):
    U32 = 1
    U64 = 2
    BOOL = 3
    ENUM = 4
    STRING = 5
    BYTES = 6
    MESSAGE = 7
    REP_U32 = 8  # packed
    REP_STRING = 9
    REP_BYTES = 10
    REP_MESSAGE = 11


_K = FieldKind
_SCALAR_DEFAULTS: Final[dict[FieldKind, object]] = {
    _K.U32: 0, _K.U64: 0, _K.BOOL: False, _K.ENUM: 0, _K.STRING: "", _K.BYTES: b"",
}
_REPEATED: Final = frozenset({_K.REP_U32, _K.REP_STRING, _K.REP_BYTES, _K.REP_MESSAGE})

#: Maximum sub-message nesting accepted by the decoder (Future trees are recursive).
MAX_NESTING: Final = 64

_SELF: Final = "self"


class _Meta(NamedTuple):
    number: int
    kind: FieldKind
    msg: Any  # message class, "self", an enum class, or None
    presence: bool  # optional / oneof member / sub-message: None means absent
    oneof: str | None


def pb(
    number: int,
    kind: FieldKind,
    msg: Any = None,
    *,
    optional: bool = False,
    oneof: str | None = None,
) -> Any:
    """Declare a protobuf field on a message dataclass.

    ``msg`` is the sub-message class for MESSAGE/REP_MESSAGE (``"self"`` for recursion)
    or the IntEnum class for ENUM. ``optional`` marks proto3 explicit presence;
    ``oneof`` names the oneof group. Absent presence fields are ``None``.
    """
    presence = optional or oneof is not None or kind == _K.MESSAGE
    if kind in _REPEATED:
        if optional or oneof:
            raise TypeError("repeated fields cannot be optional or in a oneof")
        default: object = ()
    elif presence:
        default = None
    else:
        default = _SCALAR_DEFAULTS[kind]
    return dataclasses.field(
        default=default, metadata={"pb": _Meta(number, kind, msg, presence, oneof)}
    )


# --------------------------------------------------------------------------------------
# Codec machinery
# --------------------------------------------------------------------------------------

_Out = bytearray
_Encoder = Callable[[_Out, bytes, Any], None]
_Reader = Callable[[bytes, int, int, int], tuple[Any, int]]


def _enc_u32(out: _Out, key: bytes, v: int) -> None:
    if not 0 <= v <= MAX_U32:
        raise ValueError(f"u32 out of range: {v}")
    out += key
    out += encode_varint(v)


def _enc_u64(out: _Out, key: bytes, v: int) -> None:
    if not 0 <= v <= MAX_U64:
        raise ValueError(f"u64 out of range: {v}")
    out += key
    out += encode_varint(v)


def _enc_bool(out: _Out, key: bytes, v: bool) -> None:
    out += key
    out += b"\x01" if v else b"\x00"


def _enc_enum(out: _Out, key: bytes, v: int) -> None:
    if not -0x8000_0000 <= v <= 0x7FFF_FFFF:
        raise ValueError(f"enum value out of int32 range: {v}")
    out += key
    out += encode_varint(v & MAX_U64)


def _enc_string(out: _Out, key: bytes, v: str) -> None:
    b = v.encode()
    out += key
    out += encode_varint(len(b))
    out += b


def _enc_bytes(out: _Out, key: bytes, v: bytes) -> None:
    out += key
    out += encode_varint(len(v))
    out += v


def _enc_message(out: _Out, key: bytes, v: Message) -> None:
    b = v._encode_body()
    out += key
    out += encode_varint(len(b))
    out += b


def _enc_rep_u32(out: _Out, key: bytes, v: tuple[int, ...]) -> None:
    body = bytearray()
    for x in v:
        if not 0 <= x <= MAX_U32:
            raise ValueError(f"u32 out of range: {x}")
        body += encode_varint(x)
    out += key
    out += encode_varint(len(body))
    out += body


def _enc_rep_string(out: _Out, key: bytes, v: tuple[str, ...]) -> None:
    for x in v:
        _enc_string(out, key, x)


def _enc_rep_bytes(out: _Out, key: bytes, v: tuple[bytes, ...]) -> None:
    for x in v:
        _enc_bytes(out, key, x)


def _enc_rep_message(out: _Out, key: bytes, v: tuple[Message, ...]) -> None:
    for x in v:
        _enc_message(out, key, x)


_ENCODERS: Final[dict[FieldKind, _Encoder]] = {
    _K.U32: _enc_u32, _K.U64: _enc_u64, _K.BOOL: _enc_bool, _K.ENUM: _enc_enum,
    _K.STRING: _enc_string, _K.BYTES: _enc_bytes, _K.MESSAGE: _enc_message,
    _K.REP_U32: _enc_rep_u32, _K.REP_STRING: _enc_rep_string, _K.REP_BYTES: _enc_rep_bytes,
    _K.REP_MESSAGE: _enc_rep_message,
}


def _rd_u32(buf: bytes, pos: int, end: int, depth: int) -> tuple[int, int]:
    b = buf[pos] if pos < end else 0x80
    if b < 0x80:
        return b, pos + 1
    v, pos = decode_varint(buf, pos, end)
    return v & MAX_U32, pos


def _rd_u64(buf: bytes, pos: int, end: int, depth: int) -> tuple[int, int]:
    return decode_varint(buf, pos, end)


def _rd_bool(buf: bytes, pos: int, end: int, depth: int) -> tuple[bool, int]:
    v, pos = decode_varint(buf, pos, end)
    return v != 0, pos


def _make_rd_enum(enum_cls: type[enum.IntEnum] | None) -> _Reader:
    known: dict[int, int] = {int(m): m for m in enum_cls} if enum_cls is not None else {}

    def _rd_enum(buf: bytes, pos: int, end: int, depth: int) -> tuple[int, int]:
        v, pos = decode_varint(buf, pos, end)
        v &= MAX_U32
        if v >= 0x8000_0000:
            v -= 0x1_0000_0000
        return known.get(v, v), pos

    return _rd_enum


def _rd_string(buf: bytes, pos: int, end: int, depth: int) -> tuple[str, int]:
    s, e = decode_len(buf, pos, end)
    try:
        return buf[s:e].decode(), e
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 in string field: {exc}") from None


def _rd_bytes(buf: bytes, pos: int, end: int, depth: int) -> tuple[bytes, int]:
    s, e = decode_len(buf, pos, end)
    return buf[s:e], e


def _rd_packed_u32(buf: bytes, pos: int, end: int, depth: int) -> tuple[list[int], int]:
    s, e = decode_len(buf, pos, end)
    out: list[int] = []
    while s < e:
        v, s = decode_varint(buf, s, e)
        out.append(v & MAX_U32)
    return out, e


def _make_rd_message(info: _Info) -> _Reader:
    def _rd_message(buf: bytes, pos: int, end: int, depth: int) -> tuple[Message, int]:
        s, e = decode_len(buf, pos, end)
        if depth >= MAX_NESTING:
            raise DecodeError("message nesting too deep")
        return _decode_body(info, buf, s, e, depth + 1), e

    return _rd_message


# Decode table entry modes
_SET, _APPEND, _EXTEND = 0, 1, 2


class _Info:
    """Precomputed codec tables of one message class."""

    __slots__ = ("cls", "dec", "defaults", "enc", "names", "oneofs", "rep_idx")

    def __init__(self, cls: type[Message]) -> None:
        self.cls = cls
        self.enc: tuple[tuple[str, bytes, _Encoder, bool], ...] = ()
        self.dec: dict[int, tuple[int, _Reader, int, tuple[int, ...]]] = {}
        self.defaults: tuple[object, ...] = ()
        self.rep_idx: tuple[int, ...] = ()
        self.oneofs: tuple[tuple[str, ...], ...] = ()
        self.names: tuple[str, ...] = ()


def _build_info(cls: type[Message]) -> _Info:
    info = _Info(cls)
    cls._info = info
    flds = dataclasses.fields(cls)  # type: ignore[arg-type]
    metas: list[tuple[int, str, _Meta]] = []
    for i, f in enumerate(flds):
        meta = f.metadata.get("pb")
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name} lacks a pb() declaration")
        metas.append((i, f.name, meta))
    numbers = [m.number for _, _, m in metas]
    if len(set(numbers)) != len(numbers):
        raise TypeError(f"{cls.__name__}: duplicate field numbers")
    info.names = tuple(f.name for f in flds)
    info.defaults = tuple(f.default for f in flds)
    info.rep_idx = tuple(i for i, _, m in metas if m.kind in _REPEATED)
    groups: dict[str, list[int]] = {}
    for i, _, m in metas:
        if m.oneof is not None:
            groups.setdefault(m.oneof, []).append(i)
    info.oneofs = tuple(tuple(info.names[i] for i in g) for g in groups.values())

    enc: list[tuple[int, str, bytes, _Encoder, bool]] = []
    for i, name, m in metas:
        sub = cls if m.msg == _SELF else m.msg
        if m.kind in (_K.MESSAGE, _K.REP_MESSAGE) and not (
            isinstance(sub, type) and issubclass(sub, Message)
        ):
            raise TypeError(f"{cls.__name__}.{name}: message field needs a message class")
        wt = WIRE_VARINT if m.kind in (_K.U32, _K.U64, _K.BOOL, _K.ENUM) else WIRE_LEN
        key = make_tag(m.number, wt)
        enc.append((m.number, name, key, _ENCODERS[m.kind], m.presence))
        clear = tuple(j for j in groups.get(m.oneof, ()) if j != i) if m.oneof else ()
        tag = (m.number << 3) | wt
        reader: _Reader
        if m.kind == _K.U32:
            reader = _rd_u32
        elif m.kind == _K.U64:
            reader = _rd_u64
        elif m.kind == _K.BOOL:
            reader = _rd_bool
        elif m.kind == _K.ENUM:
            reader = _make_rd_enum(m.msg)
        elif m.kind in (_K.STRING, _K.REP_STRING):
            reader = _rd_string
        elif m.kind in (_K.BYTES, _K.REP_BYTES):
            reader = _rd_bytes
        elif m.kind == _K.REP_U32:
            info.dec[tag] = (i, _rd_packed_u32, _EXTEND, ())
            info.dec[(m.number << 3) | WIRE_VARINT] = (i, _rd_u32, _APPEND, ())
            continue
        else:  # MESSAGE / REP_MESSAGE
            reader = _make_rd_message(_info_of(sub))
        mode = _APPEND if m.kind in _REPEATED else _SET
        info.dec[tag] = (i, reader, mode, clear)
    enc.sort(key=lambda e: e[0])
    info.enc = tuple((name, key, fn, presence) for _, name, key, fn, presence in enc)
    return info


def _info_of(cls: type[Message]) -> _Info:
    info = cls.__dict__.get("_info")
    if info is None:  # forward/self reference: build now
        info = _build_info(cls)
    assert isinstance(info, _Info)
    return info


def _encode_with(msg: Message, info: _Info) -> bytes:
    if info.oneofs:
        for group in info.oneofs:
            n = 0
            for name in group:
                if getattr(msg, name) is not None:
                    n += 1
            if n > 1:
                raise ValueError(
                    f"{type(msg).__name__}: more than one of oneof {group} is set"
                )
    out = bytearray()
    for name, key, fn, presence in info.enc:
        v = getattr(msg, name)
        if presence:
            if v is None:
                continue
        elif not v:
            continue
        fn(out, key, v)
    return bytes(out)


def _decode_body(info: _Info, buf: bytes, pos: int, end: int, depth: int) -> Any:
    vals = list(info.defaults)
    dec = info.dec
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = decode_varint(buf, pos, end)
        entry = dec.get(tag)
        if entry is None:
            if tag < 8:
                raise DecodeError("invalid field number 0")
            pos = skip_field(buf, pos, end, tag)
            continue
        idx, reader, mode, clear = entry
        v, pos = reader(buf, pos, end, depth)
        if mode == _SET:
            vals[idx] = v
            for c in clear:
                vals[c] = None
        else:
            cur = vals[idx]
            if type(cur) is not list:
                cur = vals[idx] = list(cur)  # type: ignore[call-overload]
            if mode == _APPEND:
                cur.append(v)
            else:
                cur.extend(v)
    if pos != end:
        raise DecodeError("field overruns message end")
    for i in info.rep_idx:
        v = vals[i]
        if type(v) is list:
            vals[i] = tuple(v)
    return info.cls(*vals)


# --------------------------------------------------------------------------------------
# Base classes
# --------------------------------------------------------------------------------------

_M = TypeVar("_M", bound="Message")


class Message:
    """Base of all protocol messages and nested types.

    ``encode()`` returns the protobuf payload; ``Cls.decode(payload)`` parses one.
    Top-level frame messages have a ``TYPE`` (u16 frame type code).
    """

    __slots__ = ()
    TYPE: ClassVar[int] = -1
    _info: ClassVar[_Info]

    @property
    def message_type(self) -> int:
        """Frame type code of this message (``-1`` for nested types)."""
        return self.TYPE

    def encode(self) -> bytes:
        """Encode to the canonical protobuf payload (no frame header)."""
        return _encode_with(self, self._info)

    _encode_body = encode

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode a protobuf payload. Raises :class:`DecodeError` on malformed input."""
        buf = data if type(data) is bytes else bytes(data)
        try:
            msg: Self = _decode_body(cls._info, buf, 0, len(buf), 0)
        except ProtocolError:
            raise
        except (IndexError, ValueError, TypeError, RecursionError) as exc:  # defensive
            raise DecodeError(f"malformed {cls.__name__}: {exc!r}") from None
        return msg

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


class Command(Message):
    """A journal command (types 0x0400-0x7FFF, plus custom commands 0xFC00-0xFFFF)."""

    __slots__ = ()
    _NAME_ATTR: ClassVar[str] = "name"
    _COMPLETION_ATTRS: ClassVar[tuple[str, ...]] = ()

    @property
    def entry_name(self) -> str:
        """The command's observability name (field 12; ``entry_name`` on SendSignal)."""
        v = getattr(self, self._NAME_ATTR, "")
        return v if isinstance(v, str) else ""

    def completion_ids(self) -> tuple[int, ...]:
        """Completion ids this command allocates, in allocation order.

        Call allocates (invocation_id_notification_idx, result_completion_id); one-way
        call its invocation-id notification idx; other async commands their result id.
        """
        return tuple(getattr(self, a) for a in self._COMPLETION_ATTRS)


class NotificationKind(enum.IntEnum):
    COMPLETION = 0
    SIGNAL = 1
    NAMED_SIGNAL = 2


class NotificationId(NamedTuple):
    """Identity of a notification: a completion id, a signal index or a signal name."""

    kind: NotificationKind
    value: int | str

    @classmethod
    def completion(cls, completion_id: int) -> NotificationId:
        return cls(NotificationKind.COMPLETION, completion_id)

    @classmethod
    def signal(cls, idx: int) -> NotificationId:
        return cls(NotificationKind.SIGNAL, idx)

    @classmethod
    def named_signal(cls, name: str) -> NotificationId:
        return cls(NotificationKind.NAMED_SIGNAL, name)


class Notification(Message):
    """A notification (types 0x8000-0xFBFF).

    Uniform accessors: ``completion_id`` (``None`` for signals), ``signal_idx`` and
    ``signal_name`` (``None`` for completions), ``notification_id`` and ``result``
    (the set one of void / value / failure / invocation_id / state_keys, or ``None``).
    """

    __slots__ = ()
    _RESULT_ATTRS: ClassVar[tuple[str, ...]] = ()

    @property
    def completion_id(self) -> int | None:
        return None

    @property
    def signal_idx(self) -> int | None:
        return None

    @property
    def signal_name(self) -> str | None:
        return None

    @property
    def notification_id(self) -> NotificationId:
        cid = self.completion_id
        if cid is not None:
            return NotificationId(NotificationKind.COMPLETION, cid)
        idx = self.signal_idx
        if idx is not None:
            return NotificationId(NotificationKind.SIGNAL, idx)
        name = self.signal_name
        if name is not None:
            return NotificationId(NotificationKind.NAMED_SIGNAL, name)
        raise ProtocolError(f"{type(self).__name__} has no completion id or signal id")

    @property
    def result(self) -> NotificationResult:
        for a in self._RESULT_ATTRS:
            v = getattr(self, a)
            if v is not None:
                return v  # type: ignore[no-any-return]
        return None


class MessageType(enum.IntEnum):
    """Frame type codes (u16)."""

    START = 0x0000
    SUSPENSION = 0x0001
    ERROR = 0x0002
    END = 0x0003
    COMMAND_ACK = 0x0004
    PROPOSE_RUN_COMPLETION = 0x0005
    AWAITING_ON = 0x0006
    PROPOSE_RUN_COMPLETION_ACK = 0x0007
    INPUT_COMMAND = 0x0400
    OUTPUT_COMMAND = 0x0401
    GET_LAZY_STATE_COMMAND = 0x0402
    SET_STATE_COMMAND = 0x0403
    CLEAR_STATE_COMMAND = 0x0404
    CLEAR_ALL_STATE_COMMAND = 0x0405
    GET_LAZY_STATE_KEYS_COMMAND = 0x0406
    GET_EAGER_STATE_COMMAND = 0x0407
    GET_EAGER_STATE_KEYS_COMMAND = 0x0408
    GET_PROMISE_COMMAND = 0x0409
    PEEK_PROMISE_COMMAND = 0x040A
    COMPLETE_PROMISE_COMMAND = 0x040B
    SLEEP_COMMAND = 0x040C
    CALL_COMMAND = 0x040D
    ONE_WAY_CALL_COMMAND = 0x040E
    SEND_SIGNAL_COMMAND = 0x0410
    RUN_COMMAND = 0x0411
    ATTACH_INVOCATION_COMMAND = 0x0412
    GET_INVOCATION_OUTPUT_COMMAND = 0x0413
    COMPLETE_AWAKEABLE_COMMAND = 0x0414
    GET_LAZY_STATE_COMPLETION_NOTIFICATION = 0x8002
    GET_LAZY_STATE_KEYS_COMPLETION_NOTIFICATION = 0x8006
    GET_PROMISE_COMPLETION_NOTIFICATION = 0x8009
    PEEK_PROMISE_COMPLETION_NOTIFICATION = 0x800A
    COMPLETE_PROMISE_COMPLETION_NOTIFICATION = 0x800B
    SLEEP_COMPLETION_NOTIFICATION = 0x800C
    CALL_COMPLETION_NOTIFICATION = 0x800D
    CALL_INVOCATION_ID_COMPLETION_NOTIFICATION = 0x800E
    RUN_COMPLETION_NOTIFICATION = 0x8011
    ATTACH_INVOCATION_COMPLETION_NOTIFICATION = 0x8012
    GET_INVOCATION_OUTPUT_COMPLETION_NOTIFICATION = 0x8013
    SIGNAL_NOTIFICATION = 0xFBFF


#: frame type code -> message class
MESSAGE_TYPES: dict[int, type[Message]] = {}
#: message class -> frame type code
MESSAGE_TYPE_CODES: dict[type[Message], int] = {}


def _message(type_code: int | None = None) -> Callable[[type[_M]], type[_M]]:
    """Class decorator: build codec tables and register the frame type code."""

    def deco(cls: type[_M]) -> type[_M]:
        if type_code is not None:
            if type_code in MESSAGE_TYPES:
                raise TypeError(f"duplicate message type 0x{type_code:04x}")
            cls.TYPE = type_code
            MESSAGE_TYPES[type_code] = cls
            MESSAGE_TYPE_CODES[cls] = type_code
        if "_info" not in cls.__dict__:
            _build_info(cls)
        return cls

    return deco


# --------------------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------------------


class CombinatorType(enum.IntEnum):
    COMBINATOR_TYPE_UNKNOWN = 0  # treated as FIRST_COMPLETED
    FIRST_COMPLETED = 1
    ALL_COMPLETED = 2
    FIRST_SUCCEEDED_OR_ALL_FAILED = 3
    ALL_SUCCEEDED_OR_FIRST_FAILED = 4


class ErrorBehavior(enum.IntEnum):
    RETRY = 0
    PAUSE = 1
    FAIL = 2


class BuiltInSignal(enum.IntEnum):
    SIGNAL_UNKNOWN = 0
    CANCEL = 1


# --------------------------------------------------------------------------------------
# Nested types
# --------------------------------------------------------------------------------------


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class Void(Message):
    pass


#: The (only) Void value.
VOID: Final = Void()


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class Value(Message):
    content: bytes = pb(1, _K.BYTES)


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class FailureMetadata(Message):
    key: str = pb(1, _K.STRING)
    value: str = pb(2, _K.STRING)


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class Failure(Message):
    code: int = pb(1, _K.U32)
    message: str = pb(2, _K.STRING)
    metadata: tuple[FailureMetadata, ...] = pb(3, _K.REP_MESSAGE, FailureMetadata)  # v6+


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class Header(Message):
    key: str = pb(1, _K.STRING)
    value: str = pb(2, _K.STRING)


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class StateKeys(Message):
    keys: tuple[bytes, ...] = pb(1, _K.REP_BYTES)


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class StateEntry(Message):
    key: bytes = pb(1, _K.BYTES)
    value: bytes = pb(2, _K.BYTES)


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class WorkflowTarget(Message):
    workflow_name: str = pb(1, _K.STRING)
    workflow_key: str = pb(2, _K.STRING)
    scope: str | None = pb(3, _K.STRING, optional=True)  # v7


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class IdempotentRequestTarget(Message):
    service_name: str = pb(1, _K.STRING)
    service_key: str | None = pb(2, _K.STRING, optional=True)
    handler_name: str = pb(3, _K.STRING)
    idempotency_key: str = pb(4, _K.STRING)
    scope: str | None = pb(5, _K.STRING, optional=True)  # v7


@_message()
@dataclasses.dataclass(frozen=True, slots=True)
class Future(Message):
    """v7 suspension/awaiting tree."""

    waiting_completions: tuple[int, ...] = pb(1, _K.REP_U32)
    waiting_signals: tuple[int, ...] = pb(2, _K.REP_U32)
    waiting_named_signals: tuple[str, ...] = pb(3, _K.REP_STRING)
    nested_futures: tuple[Future, ...] = pb(4, _K.REP_MESSAGE, _SELF)
    combinator_type: int = pb(5, _K.ENUM, CombinatorType)

    def leaves(self) -> tuple[frozenset[int], frozenset[int], frozenset[str]]:
        """All (completion ids, signal idxs, signal names) anywhere in the tree."""
        comps: set[int] = set()
        sigs: set[int] = set()
        names: set[str] = set()
        stack = [self]
        while stack:
            f = stack.pop()
            comps.update(f.waiting_completions)
            sigs.update(f.waiting_signals)
            names.update(f.waiting_named_signals)
            stack.extend(f.nested_futures)
        return frozenset(comps), frozenset(sigs), frozenset(names)


NotificationResult = Void | Value | Failure | str | StateKeys | None

# --------------------------------------------------------------------------------------
# Control messages 0x0000-0x03FF
# --------------------------------------------------------------------------------------


@_message(0x0000)
@dataclasses.dataclass(frozen=True, slots=True)
class StartMessage(Message):
    id: bytes = pb(1, _K.BYTES)
    debug_id: str = pb(2, _K.STRING)
    known_entries: int = pb(3, _K.U32)
    state_map: tuple[StateEntry, ...] = pb(4, _K.REP_MESSAGE, StateEntry)
    partial_state: bool = pb(5, _K.BOOL)
    key: str = pb(6, _K.STRING)
    retry_count_since_last_stored_entry: int = pb(7, _K.U32)
    duration_since_last_stored_entry: int = pb(8, _K.U64)
    random_seed: int = pb(9, _K.U64)  # v6+
    scope: str | None = pb(10, _K.STRING, optional=True)  # v7
    limit_key: str | None = pb(11, _K.STRING, optional=True)  # v7
    idempotency_key: str | None = pb(12, _K.STRING, optional=True)  # v7


@_message(0x0001)
@dataclasses.dataclass(frozen=True, slots=True)
class SuspensionMessage(Message):
    """Fields 1-3 are the v5/v6 flat form; field 4 (``awaiting_on``) the v7 form."""

    waiting_completions: tuple[int, ...] = pb(1, _K.REP_U32)
    waiting_signals: tuple[int, ...] = pb(2, _K.REP_U32)
    waiting_named_signals: tuple[str, ...] = pb(3, _K.REP_STRING)
    awaiting_on: Future | None = pb(4, _K.MESSAGE, Future)  # v7

    @classmethod
    def create(
        cls,
        version: int,
        completions: tuple[int, ...] = (),
        signals: tuple[int, ...] = (),
        named_signals: tuple[str, ...] = (),
        combinator: int = CombinatorType.FIRST_COMPLETED,
    ) -> SuspensionMessage:
        """A suspension in the form for ``version`` (flat for <= 6, a one-level Future
        tree with ``combinator`` for >= 7)."""
        if version >= 7:
            return cls(awaiting_on=Future(tuple(completions), tuple(signals),
                                          tuple(named_signals), (), combinator))
        return cls(tuple(completions), tuple(signals), tuple(named_signals))

    def leaves(self) -> tuple[frozenset[int], frozenset[int], frozenset[str]]:
        """All awaited (completion ids, signal idxs, signal names), from either form."""
        comps = set(self.waiting_completions)
        sigs = set(self.waiting_signals)
        names = set(self.waiting_named_signals)
        if self.awaiting_on is not None:
            c, s, n = self.awaiting_on.leaves()
            comps |= c
            sigs |= s
            names |= n
        return frozenset(comps), frozenset(sigs), frozenset(names)


@_message(0x0002)
@dataclasses.dataclass(frozen=True, slots=True)
class ErrorMessage(Message):
    code: int = pb(1, _K.U32)
    message: str = pb(2, _K.STRING)
    stacktrace: str = pb(3, _K.STRING)
    related_command_index: int | None = pb(4, _K.U32, optional=True)
    related_command_name: str | None = pb(5, _K.STRING, optional=True)
    related_command_type: int | None = pb(6, _K.U32, optional=True)
    next_retry_delay: int | None = pb(8, _K.U64, optional=True)
    behavior: int = pb(9, _K.ENUM, ErrorBehavior)  # v7


@_message(0x0003)
@dataclasses.dataclass(frozen=True, slots=True)
class EndMessage(Message):
    pass


@_message(0x0004)
@dataclasses.dataclass(frozen=True, slots=True)
class CommandAckMessage(Message):
    command_index: int = pb(1, _K.U32)


@_message(0x0005)
@dataclasses.dataclass(frozen=True, slots=True)
class ProposeRunCompletionMessage(Message):
    result_completion_id: int = pb(1, _K.U32)
    value: bytes | None = pb(14, _K.BYTES, oneof="result")
    failure: Failure | None = pb(15, _K.MESSAGE, Failure, oneof="result")


@_message(0x0006)
@dataclasses.dataclass(frozen=True, slots=True)
class AwaitingOnMessage(Message):
    """v7 hint."""

    awaiting_on: Future | None = pb(1, _K.MESSAGE, Future)
    executing_side_effects: bool = pb(2, _K.BOOL)


@_message(0x0007)
@dataclasses.dataclass(frozen=True, slots=True)
class ProposeRunCompletionAckMessage(Message):
    """v7."""

    completion_id: int = pb(1, _K.U32)


# --------------------------------------------------------------------------------------
# Commands 0x0400-0x7FFF
# --------------------------------------------------------------------------------------

_RESULT_ID: Final = ("result_completion_id",)


@_message(0x0400)
@dataclasses.dataclass(frozen=True, slots=True)
class InputCommandMessage(Command):
    headers: tuple[Header, ...] = pb(1, _K.REP_MESSAGE, Header)
    name: str = pb(12, _K.STRING)
    value: Value | None = pb(14, _K.MESSAGE, Value)


@_message(0x0401)
@dataclasses.dataclass(frozen=True, slots=True)
class OutputCommandMessage(Command):
    name: str = pb(12, _K.STRING)
    value: Value | None = pb(14, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(15, _K.MESSAGE, Failure, oneof="result")


@_message(0x0402)
@dataclasses.dataclass(frozen=True, slots=True)
class GetLazyStateCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    key: bytes = pb(1, _K.BYTES)
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x0403)
@dataclasses.dataclass(frozen=True, slots=True)
class SetStateCommandMessage(Command):
    key: bytes = pb(1, _K.BYTES)
    value: Value | None = pb(3, _K.MESSAGE, Value)
    name: str = pb(12, _K.STRING)


@_message(0x0404)
@dataclasses.dataclass(frozen=True, slots=True)
class ClearStateCommandMessage(Command):
    key: bytes = pb(1, _K.BYTES)
    name: str = pb(12, _K.STRING)


@_message(0x0405)
@dataclasses.dataclass(frozen=True, slots=True)
class ClearAllStateCommandMessage(Command):
    name: str = pb(12, _K.STRING)


@_message(0x0406)
@dataclasses.dataclass(frozen=True, slots=True)
class GetLazyStateKeysCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x0407)
@dataclasses.dataclass(frozen=True, slots=True)
class GetEagerStateCommandMessage(Command):
    key: bytes = pb(1, _K.BYTES)
    name: str = pb(12, _K.STRING)
    void: Void | None = pb(13, _K.MESSAGE, Void, oneof="result")
    value: Value | None = pb(14, _K.MESSAGE, Value, oneof="result")


@_message(0x0408)
@dataclasses.dataclass(frozen=True, slots=True)
class GetEagerStateKeysCommandMessage(Command):
    name: str = pb(12, _K.STRING)
    value: StateKeys | None = pb(14, _K.MESSAGE, StateKeys)


@_message(0x0409)
@dataclasses.dataclass(frozen=True, slots=True)
class GetPromiseCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    key: str = pb(1, _K.STRING)
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x040A)
@dataclasses.dataclass(frozen=True, slots=True)
class PeekPromiseCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    key: str = pb(1, _K.STRING)
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x040B)
@dataclasses.dataclass(frozen=True, slots=True)
class CompletePromiseCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    key: str = pb(1, _K.STRING)
    completion_value: Value | None = pb(2, _K.MESSAGE, Value, oneof="completion")
    completion_failure: Failure | None = pb(3, _K.MESSAGE, Failure, oneof="completion")
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x040C)
@dataclasses.dataclass(frozen=True, slots=True)
class SleepCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    wake_up_time: int = pb(1, _K.U64)  # ms since epoch
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x040D)
@dataclasses.dataclass(frozen=True, slots=True)
class CallCommandMessage(Command):
    _COMPLETION_ATTRS = ("invocation_id_notification_idx", "result_completion_id")
    service_name: str = pb(1, _K.STRING)
    handler_name: str = pb(2, _K.STRING)
    parameter: bytes = pb(3, _K.BYTES)
    headers: tuple[Header, ...] = pb(4, _K.REP_MESSAGE, Header)
    key: str = pb(5, _K.STRING)
    idempotency_key: str | None = pb(6, _K.STRING, optional=True)
    scope: str | None = pb(7, _K.STRING, optional=True)  # v7
    limit_key: str | None = pb(8, _K.STRING, optional=True)  # v7
    invocation_id_notification_idx: int = pb(10, _K.U32)
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x040E)
@dataclasses.dataclass(frozen=True, slots=True)
class OneWayCallCommandMessage(Command):
    _COMPLETION_ATTRS = ("invocation_id_notification_idx",)
    service_name: str = pb(1, _K.STRING)
    handler_name: str = pb(2, _K.STRING)
    parameter: bytes = pb(3, _K.BYTES)
    invoke_time: int = pb(4, _K.U64)  # ms since epoch, 0 = now
    headers: tuple[Header, ...] = pb(5, _K.REP_MESSAGE, Header)
    key: str = pb(6, _K.STRING)
    idempotency_key: str | None = pb(7, _K.STRING, optional=True)
    scope: str | None = pb(8, _K.STRING, optional=True)  # v7
    limit_key: str | None = pb(9, _K.STRING, optional=True)  # v7
    invocation_id_notification_idx: int = pb(10, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x0410)
@dataclasses.dataclass(frozen=True, slots=True)
class SendSignalCommandMessage(Command):
    _NAME_ATTR = "entry_name"
    target_invocation_id: str = pb(1, _K.STRING)
    idx: int | None = pb(2, _K.U32, oneof="signal_id")
    name: str | None = pb(3, _K.STRING, oneof="signal_id")
    void: Void | None = pb(4, _K.MESSAGE, Void, oneof="result")
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")
    entry_name: str = pb(12, _K.STRING)


@_message(0x0411)
@dataclasses.dataclass(frozen=True, slots=True)
class RunCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x0412)
@dataclasses.dataclass(frozen=True, slots=True)
class AttachInvocationCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    invocation_id: str | None = pb(1, _K.STRING, oneof="target")
    idempotent_request_target: IdempotentRequestTarget | None = pb(
        3, _K.MESSAGE, IdempotentRequestTarget, oneof="target")
    workflow_target: WorkflowTarget | None = pb(4, _K.MESSAGE, WorkflowTarget, oneof="target")
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x0413)
@dataclasses.dataclass(frozen=True, slots=True)
class GetInvocationOutputCommandMessage(Command):
    _COMPLETION_ATTRS = _RESULT_ID
    invocation_id: str | None = pb(1, _K.STRING, oneof="target")
    idempotent_request_target: IdempotentRequestTarget | None = pb(
        3, _K.MESSAGE, IdempotentRequestTarget, oneof="target")
    workflow_target: WorkflowTarget | None = pb(4, _K.MESSAGE, WorkflowTarget, oneof="target")
    result_completion_id: int = pb(11, _K.U32)
    name: str = pb(12, _K.STRING)


@_message(0x0414)
@dataclasses.dataclass(frozen=True, slots=True)
class CompleteAwakeableCommandMessage(Command):
    awakeable_id: str = pb(1, _K.STRING)
    value: Value | None = pb(2, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(3, _K.MESSAGE, Failure, oneof="result")
    name: str = pb(12, _K.STRING)


# --------------------------------------------------------------------------------------
# Notifications 0x8000-0xFBFF
# --------------------------------------------------------------------------------------

_VVF: Final = ("void", "value", "failure")


@_message(0x8002)
@dataclasses.dataclass(frozen=True, slots=True)
class GetLazyStateCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF[:2]
    completion_id: int = pb(1, _K.U32)
    void: Void | None = pb(4, _K.MESSAGE, Void, oneof="result")
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")


@_message(0x8006)
@dataclasses.dataclass(frozen=True, slots=True)
class GetLazyStateKeysCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = ("state_keys",)
    completion_id: int = pb(1, _K.U32)
    state_keys: StateKeys | None = pb(17, _K.MESSAGE, StateKeys)


@_message(0x8009)
@dataclasses.dataclass(frozen=True, slots=True)
class GetPromiseCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF[1:]
    completion_id: int = pb(1, _K.U32)
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0x800A)
@dataclasses.dataclass(frozen=True, slots=True)
class PeekPromiseCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF
    completion_id: int = pb(1, _K.U32)
    void: Void | None = pb(4, _K.MESSAGE, Void, oneof="result")
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0x800B)
@dataclasses.dataclass(frozen=True, slots=True)
class CompletePromiseCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = ("void", "failure")
    completion_id: int = pb(1, _K.U32)
    void: Void | None = pb(4, _K.MESSAGE, Void, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0x800C)
@dataclasses.dataclass(frozen=True, slots=True)
class SleepCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = ("void",)
    completion_id: int = pb(1, _K.U32)
    void: Void | None = pb(4, _K.MESSAGE, Void)


@_message(0x800D)
@dataclasses.dataclass(frozen=True, slots=True)
class CallCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF[1:]
    completion_id: int = pb(1, _K.U32)
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0x800E)
@dataclasses.dataclass(frozen=True, slots=True)
class CallInvocationIdCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = ("invocation_id",)
    completion_id: int = pb(1, _K.U32)
    invocation_id: str = pb(16, _K.STRING)


@_message(0x8011)
@dataclasses.dataclass(frozen=True, slots=True)
class RunCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF[1:]
    completion_id: int = pb(1, _K.U32)
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0x8012)
@dataclasses.dataclass(frozen=True, slots=True)
class AttachInvocationCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF[1:]
    completion_id: int = pb(1, _K.U32)
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0x8013)
@dataclasses.dataclass(frozen=True, slots=True)
class GetInvocationOutputCompletionNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF
    completion_id: int = pb(1, _K.U32)
    void: Void | None = pb(4, _K.MESSAGE, Void, oneof="result")
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")


@_message(0xFBFF)
@dataclasses.dataclass(frozen=True, slots=True)
class SignalNotificationMessage(Notification):
    _RESULT_ATTRS = _VVF
    idx: int | None = pb(2, _K.U32, oneof="signal_id")
    name: str | None = pb(3, _K.STRING, oneof="signal_id")
    void: Void | None = pb(4, _K.MESSAGE, Void, oneof="result")
    value: Value | None = pb(5, _K.MESSAGE, Value, oneof="result")
    failure: Failure | None = pb(6, _K.MESSAGE, Failure, oneof="result")

    @property
    def signal_idx(self) -> int | None:
        return self.idx

    @property
    def signal_name(self) -> str | None:
        return self.name


# --------------------------------------------------------------------------------------
# Opaque messages: custom commands and unknown command/notification types
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CustomCommandMessage(Command):
    """A custom command (0xFC00-0xFFFF): opaque payload, persisted and replayed as is."""

    type_code: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not is_custom_command(self.type_code):
            raise ValueError(f"0x{self.type_code:04x} is not a custom command type")

    @property
    def message_type(self) -> int:
        return self.type_code

    def encode(self) -> bytes:
        return self.payload

    @property
    def entry_name(self) -> str:
        return ""


@dataclasses.dataclass(frozen=True, slots=True)
class OpaqueMessage(Message):
    """A command or notification type this codec does not know (e.g. from a newer
    protocol version). Carried opaquely; deciding whether it is acceptable is the
    caller's job."""

    type_code: int
    payload: bytes = b""

    @property
    def message_type(self) -> int:
        return self.type_code

    def encode(self) -> bytes:
        return self.payload


# --------------------------------------------------------------------------------------
# Type-code helpers and dispatch
# --------------------------------------------------------------------------------------


def is_control(type_code: int) -> bool:
    return 0x0000 <= type_code <= 0x03FF


def is_command(type_code: int) -> bool:
    """Commands, including the custom-command range 0xFC00-0xFFFF."""
    return 0x0400 <= type_code <= 0x7FFF or 0xFC00 <= type_code <= 0xFFFF


def is_notification(type_code: int) -> bool:
    return 0x8000 <= type_code <= 0xFBFF


def is_custom_command(type_code: int) -> bool:
    return 0xFC00 <= type_code <= 0xFFFF


def message_type_name(type_code: int) -> str:
    cls = MESSAGE_TYPES.get(type_code)
    if cls is not None:
        return cls.__name__
    if is_custom_command(type_code):
        return f"CustomCommand(0x{type_code:04x})"
    return f"Unknown(0x{type_code:04x})"


def decode_message(type_code: int, payload: bytes | bytearray | memoryview) -> Message:
    """Decode the payload of a frame of the given type.

    Unknown control types raise :class:`ProtocolError`; custom commands decode to
    :class:`CustomCommandMessage`; unknown command/notification types to
    :class:`OpaqueMessage`.
    """
    cls = MESSAGE_TYPES.get(type_code)
    if cls is not None:
        return cls.decode(payload)
    if not 0 <= type_code <= 0xFFFF:
        raise ProtocolError(f"message type out of range: {type_code}")
    if is_control(type_code):
        raise ProtocolError(f"unknown control message type 0x{type_code:04x}")
    if is_custom_command(type_code):
        return CustomCommandMessage(type_code, bytes(payload))
    return OpaqueMessage(type_code, bytes(payload))
