from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rstq.protocol import wire
from rstq.protocol.wire import DecodeError, ProtocolError
from test_protocol_support import SETTINGS


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (2**32 - 1, "ffffffff0f"),
        (2**63, "80808080808080808001"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_varint_known(value: int, encoded: str) -> None:
    assert wire.encode_varint(value).hex() == encoded
    b = bytes.fromhex(encoded)
    assert wire.decode_varint(b, 0, len(b)) == (value, len(b))
    assert wire.varint_size(value) == len(b)


@SETTINGS
@given(st.integers(0, 2**64 - 1))
def test_varint_roundtrip(n: int) -> None:
    b = wire.encode_varint(n)
    assert wire.decode_varint(b + b"\x00", 0, len(b)) == (n, len(b))


def test_varint_rejects() -> None:
    with pytest.raises(ValueError):
        wire.encode_varint(-1)
    with pytest.raises(ValueError):
        wire.encode_varint(2**64)
    with pytest.raises(DecodeError):
        wire.decode_varint(b"\x80\x80", 0, 2)
    with pytest.raises(DecodeError):
        wire.decode_varint(b"", 0, 0)
    with pytest.raises(DecodeError):
        wire.decode_varint(b"\xff" * 11, 0, 11)
    # the end bound is honoured even when the buffer continues
    with pytest.raises(DecodeError):
        wire.decode_varint(b"\x80\x01", 0, 1)
    assert issubclass(DecodeError, ProtocolError)


def test_skip_all_wire_types() -> None:
    payload = bytes.fromhex(
        "08ac02"  # 1: varint
        "11" "0102030405060708"  # 2: fixed64
        "1a03616263"  # 3: len
        "25" "01020304"  # 4: fixed32
        "2b" "0801" "2c"  # 5: group containing a varint
    )
    pos, end = 0, len(payload)
    seen = []
    while pos < end:
        tag, pos = wire.decode_varint(payload, pos, end)
        seen.append(tag >> 3)
        pos = wire.skip_field(payload, pos, end, tag)
    assert seen == [1, 2, 3, 4, 5]
    fields = wire.iter_fields(payload)
    assert [(f, w) for f, w, _ in fields] == [(1, 0), (2, 1), (3, 2), (4, 5), (5, 3)]
    assert fields[2][2] == b"abc"


@pytest.mark.parametrize("bad", ["0f", "11010203", "1a05616263", "2b0801", "2b080134", "25010203"])
def test_skip_malformed(bad: str) -> None:
    payload = bytes.fromhex(bad)
    with pytest.raises(DecodeError):
        wire.iter_fields(payload)


def test_make_tag() -> None:
    assert wire.make_tag(1, 0) == b"\x08"
    assert wire.make_tag(17, 2) == b"\x8a\x01"
    with pytest.raises(ValueError):
        wire.make_tag(0, 0)
