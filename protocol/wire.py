"""Protobuf wire-format primitives (sans-IO, pure Python).

Only what the Restate service protocol needs: varints (wire type 0), length-delimited
fields (wire type 2), and skipping of fixed32/fixed64/groups for forward compatibility.
All decode functions take ``(buf, pos, end)`` and return ``(value, new_pos)``; they raise
:class:`DecodeError` (a :class:`ProtocolError`) on truncated or malformed input.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_U32",
    "MAX_U64",
    "WIRE_EGROUP",
    "WIRE_FIXED32",
    "WIRE_FIXED64",
    "WIRE_LEN",
    "WIRE_SGROUP",
    "WIRE_VARINT",
    "DecodeError",
    "ProtocolError",
    "decode_len",
    "decode_varint",
    "encode_varint",
    "iter_fields",
    "make_tag",
    "skip_field",
    "varint_size",
]

WIRE_VARINT: Final = 0
WIRE_FIXED64: Final = 1
WIRE_LEN: Final = 2
WIRE_SGROUP: Final = 3
WIRE_EGROUP: Final = 4
WIRE_FIXED32: Final = 5

MAX_U32: Final = 0xFFFF_FFFF
MAX_U64: Final = 0xFFFF_FFFF_FFFF_FFFF
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1


class ProtocolError(Exception):
    """Malformed or unexpected protocol input (bad framing, bad protobuf, unknown type)."""


class DecodeError(ProtocolError):
    """Malformed protobuf payload."""


# Single-byte varints are by far the most common: precompute them.
_SMALL: Final[tuple[bytes, ...]] = tuple(bytes((i,)) for i in range(128))


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer < 2**64 as a protobuf varint."""
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0 or value > MAX_U64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_size(value: int) -> int:
    """Number of bytes :func:`encode_varint` produces for ``value``."""
    return max(1, (value.bit_length() + 6) // 7)


def make_tag(field_number: int, wire_type: int) -> bytes:
    """The encoded key (tag) bytes of a field."""
    if not 1 <= field_number <= _MAX_FIELD_NUMBER or not 0 <= wire_type <= 5:
        raise ValueError(f"bad field key {field_number}/{wire_type}")
    return encode_varint((field_number << 3) | wire_type)


def decode_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return ``(value, new_pos)``. Values are u64."""
    if pos >= end:
        raise DecodeError("truncated varint")
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")
    # A 10-byte varint may carry bits above 64; protobuf drops them.
    return result & MAX_U64, pos


def decode_len(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a length prefix; return ``(start, stop)`` of the delimited bytes."""
    n, pos = decode_varint(buf, pos, end)
    stop = pos + n
    if stop > end:
        raise DecodeError("truncated length-delimited field")
    return pos, stop


def skip_field(buf: bytes, pos: int, end: int, tag: int, depth: int = 0) -> int:
    """Skip over the value of an (unknown) field whose key ``tag`` was just read."""
    wt = tag & 7
    if wt == WIRE_VARINT:
        return decode_varint(buf, pos, end)[1]
    if wt == WIRE_LEN:
        return decode_len(buf, pos, end)[1]
    if wt == WIRE_FIXED64:
        pos += 8
    elif wt == WIRE_FIXED32:
        pos += 4
    elif wt == WIRE_SGROUP:
        if depth > 64:
            raise DecodeError("groups nested too deeply")
        field = tag >> 3
        while True:
            inner, pos = decode_varint(buf, pos, end)
            if inner >> 3 == 0:
                raise DecodeError("invalid field number 0")
            if inner & 7 == WIRE_EGROUP:
                if inner >> 3 != field:
                    raise DecodeError("mismatched end-group")
                return pos
            pos = skip_field(buf, pos, end, inner, depth + 1)
    else:
        raise DecodeError(f"invalid wire type {wt}")
    if pos > end:
        raise DecodeError("truncated fixed-width field")
    return pos


def iter_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Debug helper: list ``(field_number, wire_type, value)`` of a raw payload.

    Varints are returned as ints, length-delimited fields as bytes, fixed-width
    fields as raw bytes. Groups are skipped and reported as ``b""``.
    """
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = decode_varint(buf, pos, end)
        field, wt = tag >> 3, tag & 7
        if field == 0:
            raise DecodeError("invalid field number 0")
        if wt == WIRE_VARINT:
            v, pos = decode_varint(buf, pos, end)
            out.append((field, wt, v))
        elif wt == WIRE_LEN:
            s, pos = decode_len(buf, pos, end)
            out.append((field, wt, bytes(buf[s:pos])))
        else:
            start = pos
            pos = skip_field(buf, pos, end, tag)
            out.append((field, wt, b"" if wt == WIRE_SGROUP else bytes(buf[start:pos])))
    return out
