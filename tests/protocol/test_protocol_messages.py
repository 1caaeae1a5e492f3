from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rstq.protocol import messages as m
from rstq.protocol.wire import DecodeError, ProtocolError, encode_varint, iter_fields
from test_protocol_support import SETTINGS, load_vectors, message_strategy

# Every message type of restate-protocol.md Appendix A / section 3.3.
APPENDIX_A = {
    0x0000: "StartMessage", 0x0001: "SuspensionMessage", 0x0002: "ErrorMessage",
    0x0003: "EndMessage", 0x0004: "CommandAckMessage", 0x0005: "ProposeRunCompletionMessage",
    0x0006: "AwaitingOnMessage", 0x0007: "ProposeRunCompletionAckMessage",
    0x0400: "InputCommandMessage", 0x0401: "OutputCommandMessage",
    0x0402: "GetLazyStateCommandMessage", 0x8002: "GetLazyStateCompletionNotificationMessage",
    0x0403: "SetStateCommandMessage", 0x0404: "ClearStateCommandMessage",
    0x0405: "ClearAllStateCommandMessage", 0x0406: "GetLazyStateKeysCommandMessage",
    0x8006: "GetLazyStateKeysCompletionNotificationMessage",
    0x0407: "GetEagerStateCommandMessage", 0x0408: "GetEagerStateKeysCommandMessage",
    0x0409: "GetPromiseCommandMessage", 0x8009: "GetPromiseCompletionNotificationMessage",
    0x040A: "PeekPromiseCommandMessage", 0x800A: "PeekPromiseCompletionNotificationMessage",
    0x040B: "CompletePromiseCommandMessage",
    0x800B: "CompletePromiseCompletionNotificationMessage",
    0x040C: "SleepCommandMessage", 0x800C: "SleepCompletionNotificationMessage",
    0x040D: "CallCommandMessage", 0x800E: "CallInvocationIdCompletionNotificationMessage",
    0x800D: "CallCompletionNotificationMessage", 0x040E: "OneWayCallCommandMessage",
    0x0410: "SendSignalCommandMessage", 0x0411: "RunCommandMessage",
    0x8011: "RunCompletionNotificationMessage", 0x0412: "AttachInvocationCommandMessage",
    0x8012: "AttachInvocationCompletionNotificationMessage",
    0x0413: "GetInvocationOutputCommandMessage",
    0x8013: "GetInvocationOutputCompletionNotificationMessage",
    0x0414: "CompleteAwakeableCommandMessage", 0xFBFF: "SignalNotificationMessage",
}
NESTED = [m.Value, m.Void, m.Failure, m.FailureMetadata, m.Header, m.StateKeys, m.StateEntry,
          m.WorkflowTarget, m.IdempotentRequestTarget, m.Future]
ALL_CLASSES = [m.MESSAGE_TYPES[t] for t in sorted(m.MESSAGE_TYPES)] + NESTED


def test_registry_covers_appendix_a() -> None:
    assert {t: c.__name__ for t, c in m.MESSAGE_TYPES.items()} == APPENDIX_A
    for t, cls in m.MESSAGE_TYPES.items():
        assert cls.TYPE == t
        assert m.MESSAGE_TYPE_CODES[cls] == t
        assert m.MessageType(t) == t
        assert m.message_type_name(t) == cls.__name__
        if m.is_command(t):
            assert issubclass(cls, m.Command)
        elif m.is_notification(t):
            assert issubclass(cls, m.Notification)
        else:
            assert m.is_control(t)
            assert not issubclass(cls, (m.Command, m.Notification))


def test_ranges() -> None:
    assert m.is_control(0) and m.is_control(0x03FF) and not m.is_control(0x0400)
    assert m.is_command(0x0400) and m.is_command(0x7FFF) and not m.is_command(0x8000)
    assert m.is_notification(0x8000) and m.is_notification(0xFBFF)
    assert not m.is_notification(0xFC00)
    assert m.is_custom_command(0xFC00) and m.is_custom_command(0xFFFF)
    assert m.is_command(0xFC00)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_roundtrip_every_message(cls: type[m.Message]) -> None:
    @SETTINGS
    @given(message_strategy(cls))
    def check(msg: m.Message) -> None:
        data = msg.encode()
        back = cls.decode(data)
        assert back == msg
        assert back.encode() == data
        assert cls.decode(memoryview(bytearray(data))) == msg

    check()


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_default_instance_encodes_empty(cls: type[m.Message]) -> None:
    assert cls().encode() == b""
    assert cls.decode(b"") == cls()


@pytest.mark.parametrize(("name", "payload"), load_vectors())
def test_protobuf_reference_vectors(name: str, payload: bytes) -> None:
    """Bytes produced by the reference protobuf runtime decode and re-encode identically."""
    cls = getattr(m, name)
    msg = cls.decode(payload)
    assert msg.encode() == payload


def test_vectors_cover_every_message() -> None:
    names = {n for n, _ in load_vectors()}
    assert names == set(APPENDIX_A.values())


def test_optional_presence_and_defaults() -> None:
    # plain proto3 scalars at default are omitted
    assert m.StartMessage(known_entries=0, partial_state=False, key="").encode() == b""
    # explicit presence: set-to-default is still written
    assert m.StartMessage(scope="").encode() == bytes.fromhex("5200")
    assert m.ErrorMessage(related_command_index=0).encode() == bytes.fromhex("2000")
    assert m.IdempotentRequestTarget(service_key="").encode() == bytes.fromhex("1200")
    # sub-messages are present even when empty
    assert m.OutputCommandMessage(value=m.Value()).encode() == bytes.fromhex("7200")
    assert m.SleepCompletionNotificationMessage(2, m.VOID).encode() == bytes.fromhex("08022200")
    # oneof scalar members have presence
    assert m.SignalNotificationMessage(idx=0, void=m.VOID).encode() == bytes.fromhex("10002200")
    assert m.ProposeRunCompletionMessage(1, value=b"").encode() == bytes.fromhex("08017200")
    back = m.ProposeRunCompletionMessage.decode(bytes.fromhex("08017200"))
    assert back.value == b"" and back.failure is None


def test_fields_written_in_field_number_order() -> None:
    msg = m.InputCommandMessage(headers=(m.Header("a", "b"),), value=m.Value(b"x"), name="n")
    assert [f for f, _, _ in iter_fields(msg.encode())] == [1, 12, 14]


def test_unknown_fields_are_skipped() -> None:
    base = m.SetStateCommandMessage(key=b"k", value=m.Value(b"v"), name="s")
    data = base.encode()
    extra = (
        bytes.fromhex("f80701")  # field 127 varint
        + bytes.fromhex("8908") + b"12345678"  # field 129 fixed64
        + bytes.fromhex("9208") + b"\x03abc"  # field 130 len
        + bytes.fromhex("9d08") + b"1234"  # field 131 fixed32
        + bytes.fromhex("a3080801a408")  # field 132 group
        + bytes.fromhex("1001")  # field 2 (unused by SetState) as varint
        + bytes.fromhex("0801")  # field 1 with the wrong wire type -> skipped
    )
    assert m.SetStateCommandMessage.decode(extra + data + extra) == base
    # v7-only fields in a message read by older code: simply more fields
    start = m.StartMessage(id=b"x", scope="s", limit_key="l", idempotency_key="i")
    assert m.StartMessage.decode(start.encode()).idempotency_key == "i"


def test_packed_and_unpacked_repeated_u32() -> None:
    packed = bytes.fromhex("0a03010203")
    unpacked = bytes.fromhex("080108020803")
    mixed = bytes.fromhex("08010a020203")
    for data in (packed, unpacked, mixed):
        assert m.SuspensionMessage.decode(data).waiting_completions == (1, 2, 3)
    assert m.SuspensionMessage((1, 2, 3)).encode() == packed


def test_oneof_last_wins_on_decode_and_conflict_on_encode() -> None:
    data = m.OutputCommandMessage(value=m.Value(b"v")).encode() + m.OutputCommandMessage(
        failure=m.Failure(500, "x")).encode()
    out = m.OutputCommandMessage.decode(data)
    assert out.value is None and out.failure == m.Failure(500, "x")
    with pytest.raises(ValueError):
        m.OutputCommandMessage(value=m.Value(), failure=m.Failure()).encode()
    with pytest.raises(ValueError):
        m.SendSignalCommandMessage(idx=1, name="x").encode()


def test_repeated_sub_messages_merge_order() -> None:
    start = m.StartMessage(state_map=(m.StateEntry(b"a", b"1"), m.StateEntry(b"b", b"2")))
    assert m.StartMessage.decode(start.encode()).state_map == start.state_map


@pytest.mark.parametrize(
    ("msg", "exc"),
    [
        (m.CommandAckMessage(2**32), ValueError),
        (m.CommandAckMessage(-1), ValueError),
        (m.SleepCommandMessage(wake_up_time=2**64), ValueError),
        (m.SuspensionMessage(waiting_completions=(2**32,)), ValueError),
        (m.ErrorMessage(behavior=2**31), ValueError),
    ],
)
def test_encode_range_checks(msg: m.Message, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        msg.encode()


def test_enums() -> None:
    err = m.ErrorMessage(code=500, behavior=m.ErrorBehavior.PAUSE)
    back = m.ErrorMessage.decode(err.encode())
    assert back.behavior is m.ErrorBehavior.PAUSE
    # unknown enum values survive as ints; negative values use 10-byte varints
    weird = m.Future(combinator_type=-2)
    assert len(weird.encode()) == 11
    assert m.Future.decode(weird.encode()).combinator_type == -2
    assert m.Future.decode(bytes.fromhex("2863")).combinator_type == 99


@pytest.mark.parametrize(
    "payload",
    ["0a", "0a05", "1280", "12ff", "22028001", "0a0b0a09", "00", "0700", "1202c328",
     "18ffffffffffffffffffff01", "3203ffffff", "4a01", "0b", "0f"],
)
def test_malformed_payload_raises_decode_error(payload: str) -> None:
    with pytest.raises(DecodeError):
        m.StartMessage.decode(bytes.fromhex(payload))


def test_deep_nesting_is_rejected() -> None:
    data = b""
    for _ in range(m.MAX_NESTING + 5):
        data = b"\x22" + _varint(len(data)) + data
    with pytest.raises(DecodeError):
        m.Future.decode(data)
    ok = b""
    for _ in range(10):
        ok = b"\x22" + _varint(len(ok)) + ok
    assert m.Future.decode(ok).encode() == ok


def _varint(n: int) -> bytes:
    return encode_varint(n)


@SETTINGS
@given(st.sampled_from(sorted(m.MESSAGE_TYPES)), st.binary(max_size=64))
def test_random_payloads_only_raise_protocol_error(type_code: int, data: bytes) -> None:
    try:
        msg = m.decode_message(type_code, data)
    except ProtocolError:
        return
    # whatever decodes must re-encode and decode to the same value
    assert m.decode_message(type_code, msg.encode()) == msg


def test_decode_message_dispatch() -> None:
    assert m.decode_message(0x0003, b"") == m.EndMessage()
    custom = m.decode_message(0xFC01, b"\x01\x02")
    assert isinstance(custom, m.CustomCommandMessage) and isinstance(custom, m.Command)
    assert custom.message_type == 0xFC01 and custom.encode() == b"\x01\x02"
    opaque = m.decode_message(0x0415, b"\x08\x01")
    assert isinstance(opaque, m.OpaqueMessage) and opaque.message_type == 0x0415
    assert isinstance(m.decode_message(0x8100, b""), m.OpaqueMessage)
    with pytest.raises(ProtocolError):
        m.decode_message(0x0008, b"")
    with pytest.raises(ProtocolError):
        m.decode_message(0x03FF, b"")
    with pytest.raises(ValueError):
        m.CustomCommandMessage(0x0400)


NOTIFICATION_CASES: list[tuple[m.Notification, m.NotificationId, Any]] = [
    (m.RunCompletionNotificationMessage(1, value=m.Value(b"v")),
     m.NotificationId.completion(1), m.Value(b"v")),
    (m.SleepCompletionNotificationMessage(2, m.VOID), m.NotificationId.completion(2), m.VOID),
    (m.CallInvocationIdCompletionNotificationMessage(3, "inv_1x"),
     m.NotificationId.completion(3), "inv_1x"),
    (m.CallCompletionNotificationMessage(4, failure=m.Failure(409, "no")),
     m.NotificationId.completion(4), m.Failure(409, "no")),
    (m.GetLazyStateKeysCompletionNotificationMessage(5, m.StateKeys((b"n",))),
     m.NotificationId.completion(5), m.StateKeys((b"n",))),
    (m.GetLazyStateCompletionNotificationMessage(6, void=m.VOID),
     m.NotificationId.completion(6), m.VOID),
    (m.SignalNotificationMessage(idx=17, value=m.Value(b"y")), m.NotificationId.signal(17),
     m.Value(b"y")),
    (m.SignalNotificationMessage(name="go", void=m.VOID), m.NotificationId.named_signal("go"),
     m.VOID),
    (m.PeekPromiseCompletionNotificationMessage(7), m.NotificationId.completion(7), None),
]


@pytest.mark.parametrize(("notif", "nid", "result"), NOTIFICATION_CASES)
def test_notification_accessors(notif: m.Notification, nid: m.NotificationId, result: Any) -> None:
    assert notif.notification_id == nid
    assert notif.result == result
    if nid.kind == m.NotificationKind.COMPLETION:
        assert notif.completion_id == nid.value
        assert notif.signal_idx is None and notif.signal_name is None
    else:
        assert notif.completion_id is None
        assert (notif.signal_idx if nid.kind == m.NotificationKind.SIGNAL
                else notif.signal_name) == nid.value
    decoded = m.decode_message(notif.message_type, notif.encode())
    assert isinstance(decoded, m.Notification)
    assert decoded.notification_id == nid and decoded.result == result


def test_signal_without_id_has_no_notification_id() -> None:
    with pytest.raises(ProtocolError):
        _ = m.SignalNotificationMessage(void=m.VOID).notification_id


def test_command_helpers() -> None:
    call = m.CallCommandMessage(service_name="S", handler_name="h",
                                invocation_id_notification_idx=3, result_completion_id=4,
                                name="c")
    assert call.completion_ids() == (3, 4) and call.entry_name == "c"
    assert m.OneWayCallCommandMessage(invocation_id_notification_idx=5).completion_ids() == (5,)
    assert m.RunCommandMessage(1, "side").completion_ids() == (1,)
    assert m.SetStateCommandMessage(b"k").completion_ids() == ()
    sig = m.SendSignalCommandMessage("inv_1x", name="sig", void=m.VOID, entry_name="e")
    assert sig.entry_name == "e"


def test_suspension_helpers() -> None:
    v6 = m.SuspensionMessage.create(6, completions=(1,), signals=(1,))
    assert v6.encode().hex() == "0a0101120101"
    v7 = m.SuspensionMessage.create(7, completions=(1,), signals=(1,))
    assert v7.encode().hex() == "22080a01011201012801"
    tree = m.Future(waiting_completions=(1,), nested_futures=(
        m.Future(waiting_signals=(17,), waiting_named_signals=("x",)),),
        combinator_type=m.CombinatorType.ALL_COMPLETED)
    assert m.SuspensionMessage(awaiting_on=tree).leaves() == (
        frozenset({1}), frozenset({17}), frozenset({"x"}))
    assert v6.leaves() == v7.leaves()


def test_messages_are_frozen_and_hashable() -> None:
    msg = m.SetStateCommandMessage(b"k", m.Value(b"v"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.key = b"x"  # type: ignore[misc]
    assert hash(msg) == hash(m.SetStateCommandMessage(b"k", m.Value(b"v")))
    assert msg.replace(key=b"x").key == b"x"
