"""Service-protocol framing: 8-byte big-endian header + protobuf payload (sans-IO).

Header: ``u16 type | u16 flags | u32 payload length``. Flag bit 15 (``0x8000``) is
REQUESTED_ACK; other bits are reserved.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from .messages import MESSAGE_TYPES, Message, decode_message
from .wire import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER_SIZE",
    "REQUESTED_ACK",
    "FrameDecoder",
    "FrameHeader",
    "ProtocolError",
    "decode_header",
    "encode_frame",
    "encode_header",
    "encode_raw_frame",
]

HEADER_SIZE: Final = 8
REQUESTED_ACK: Final = 0x8000
#: Default upper bound on one frame's payload (32 MiB).
DEFAULT_MAX_FRAME_SIZE: Final = 32 * 1024 * 1024

_HDR: Final = struct.Struct(">HHI")
_pack = _HDR.pack
_unpack_from = _HDR.unpack_from


class FrameHeader(NamedTuple):
    type: int
    flags: int
    length: int

    @property
    def requested_ack(self) -> bool:
        return bool(self.flags & REQUESTED_ACK)


def encode_header(type_code: int, length: int, flags: int = 0) -> bytes:
    if not 0 <= type_code <= 0xFFFF or not 0 <= flags <= 0xFFFF or not 0 <= length <= 0xFFFF_FFFF:
        raise ValueError("frame header field out of range")
    return _pack(type_code, flags, length)


def decode_header(data: bytes | bytearray | memoryview) -> FrameHeader:
    if len(data) < HEADER_SIZE:
        raise ProtocolError("truncated frame header")
    return FrameHeader(*_unpack_from(data, 0))


def encode_raw_frame(type_code: int, payload: bytes, flags: int = 0) -> bytes:
    """Frame an already-encoded payload (e.g. a journal entry stored as (type, bytes))."""
    return encode_header(type_code, len(payload), flags) + payload


def encode_frame(msg: Message, flags: int = 0) -> bytes:
    """Encode ``msg`` and prepend the frame header."""
    t = msg.message_type
    if t < 0:
        raise ValueError(f"{type(msg).__name__} is not a top-level message")
    payload = msg.encode()
    return _pack(t, flags, len(payload)) + payload


class FrameDecoder:
    """Incremental frame decoder.

    ``feed(data)`` returns the complete frames now available as ``(header, message)``;
    ``feed_raw(data)`` returns ``(header, payload bytes)`` without decoding (useful to
    persist journal entries as is). Partial input is buffered. Frames larger than
    ``max_frame_size``, unknown control types and malformed payloads raise
    :class:`ProtocolError`; after an error the decoder is poisoned and keeps raising.
    Call :meth:`close` at end of stream to detect a truncated trailing frame.
    """

    __slots__ = ("_buf", "_error", "_max")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_frame_size
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf)

    def feed_raw(self, data: bytes | bytearray | memoryview) -> list[tuple[FrameHeader, bytes]]:
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        out: list[tuple[FrameHeader, bytes]] = []
        pos = 0
        n = len(buf)
        try:
            while n - pos >= HEADER_SIZE:
                t, flags, length = _unpack_from(buf, pos)
                if length > self._max:
                    raise ProtocolError(
                        f"frame of type 0x{t:04x} too large: {length} > {self._max} bytes"
                    )
                if t < 0x0400 and t not in MESSAGE_TYPES:
                    raise ProtocolError(f"unknown control message type 0x{t:04x}")
                end = pos + HEADER_SIZE + length
                if end > n:
                    break
                out.append((FrameHeader(t, flags, length), bytes(buf[pos + HEADER_SIZE:end])))
                pos = end
        except ProtocolError as exc:
            self._error = exc
            raise
        finally:
            if pos:
                del buf[:pos]
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[FrameHeader, Message]]:
        frames = self.feed_raw(data)
        out: list[tuple[FrameHeader, Message]] = []
        for hdr, payload in frames:
            try:
                out.append((hdr, decode_message(hdr.type, payload)))
            except ProtocolError as exc:
                self._error = exc
                raise
        return out

    def close(self) -> None:
        """Signal end of input; raise :class:`ProtocolError` if a partial frame remains."""
        if self._error is not None:
            raise self._error
        if self._buf:
            raise ProtocolError(f"stream ended inside a frame ({len(self._buf)} bytes left)")
