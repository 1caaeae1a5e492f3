from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rstq.protocol import (
    HEADER_SIZE,
    REQUESTED_ACK,
    FrameDecoder,
    FrameHeader,
    ProtocolError,
    decode_header,
    encode_frame,
    encode_header,
)
from rstq.protocol import messages as m
from test_protocol_support import SETTINGS, message_strategy

TOP_LEVEL = [m.MESSAGE_TYPES[t] for t in sorted(m.MESSAGE_TYPES)]


def test_header_layout() -> None:
    frame = encode_frame(m.ProposeRunCompletionMessage(1, value=b'"x"'), flags=REQUESTED_ACK)
    assert frame[:HEADER_SIZE] == struct.pack(">HHI", 0x0005, 0x8000, len(frame) - 8)
    hdr = decode_header(frame)
    assert hdr == FrameHeader(5, 0x8000, len(frame) - 8) and hdr.requested_ack
    v = int.from_bytes(frame[:8], "big")
    assert v >> 48 == 5 and v & 0x0000_8000_0000_0000 and v & 0xFFFF_FFFF == len(frame) - 8
    assert encode_frame(m.EndMessage()) == bytes.fromhex("0003000000000000")
    with pytest.raises(ValueError):
        encode_frame(m.Value(b"x"))
    with pytest.raises(ValueError):
        encode_header(0x10000, 0)
    with pytest.raises(ProtocolError):
        decode_header(b"\x00" * 7)


@SETTINGS
@given(st.lists(st.sampled_from(TOP_LEVEL).flatmap(message_strategy), min_size=1, max_size=6),
       st.data())
def test_stream_roundtrip_random_chunks(msgs: list[m.Message], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(x) for x in msgs)
    dec = FrameDecoder()
    got: list[m.Message] = []
    i = 0
    while i < len(stream):
        n = data.draw(st.integers(1, 32))
        got += [msg for _, msg in dec.feed(stream[i:i + n])]
        i += n
    dec.close()
    assert got == msgs


def test_byte_by_byte_and_buffered() -> None:
    msgs = [m.StartMessage(id=b"\x00" * 24, known_entries=1), m.InputCommandMessage(
        value=m.Value(b"1")), m.EndMessage()]
    stream = b"".join(encode_frame(x) for x in msgs)
    dec = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
        if i < len(stream) - 1:
            assert dec.buffered or got
    assert [msg for _, msg in got] == msgs
    assert dec.buffered == 0
    dec.close()


def test_feed_raw_and_custom_commands() -> None:
    custom = m.CustomCommandMessage(0xFC10, b"\x01\x02\x03")
    stream = encode_frame(custom) + encode_frame(m.EndMessage())
    raw = FrameDecoder().feed_raw(stream)
    assert raw == [(FrameHeader(0xFC10, 0, 3), b"\x01\x02\x03"), (FrameHeader(3, 0, 0), b"")]
    assert [msg for _, msg in FrameDecoder().feed(stream)] == [custom, m.EndMessage()]


def test_truncated_stream() -> None:
    frame = encode_frame(m.SetStateCommandMessage(b"k", m.Value(b"v")))
    for cut in range(1, len(frame)):
        dec = FrameDecoder()
        assert dec.feed(frame[:cut]) == []
        with pytest.raises(ProtocolError):
            dec.close()


def test_oversize_frame() -> None:
    dec = FrameDecoder(max_frame_size=16)
    with pytest.raises(ProtocolError, match="too large"):
        dec.feed(encode_header(0x0400, 17))
    # poisoned afterwards
    with pytest.raises(ProtocolError):
        dec.feed(b"")
    with pytest.raises(ProtocolError):
        dec.close()
    ok = FrameDecoder(max_frame_size=16)
    assert len(ok.feed(encode_frame(m.SetStateCommandMessage(b"k", m.Value(b"v"))))) == 1


@pytest.mark.parametrize("type_code", [0x0008, 0x0100, 0x03FF])
def test_unknown_control_type(type_code: int) -> None:
    with pytest.raises(ProtocolError, match="unknown control"):
        FrameDecoder().feed(encode_header(type_code, 0))


def test_garbage_payload() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(encode_header(0x0000, 2) + b"\x0a\x05")


def test_unknown_command_and_notification_types_are_opaque() -> None:
    got = FrameDecoder().feed(encode_header(0x0415, 2) + b"\x08\x01" + encode_header(0x8100, 0))
    assert [type(msg) for _, msg in got] == [m.OpaqueMessage, m.OpaqueMessage]
    assert [msg.message_type for _, msg in got] == [0x0415, 0x8100]


@SETTINGS
@given(st.binary(max_size=200), st.integers(1, 16))
def test_garbage_raises_only_protocol_error(data: bytes, chunk: int) -> None:
    dec = FrameDecoder(max_frame_size=1024)
    try:
        for i in range(0, len(data), chunk):
            dec.feed(data[i:i + chunk])
        dec.close()
    except ProtocolError:
        pass


@SETTINGS
@given(st.sampled_from(sorted(m.MESSAGE_TYPES)), st.binary(max_size=80))
def test_garbage_payload_in_valid_frame(type_code: int, payload: bytes) -> None:
    dec = FrameDecoder()
    try:
        dec.feed(encode_header(type_code, len(payload)) + payload)
    except ProtocolError:
        pass
