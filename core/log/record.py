"""Record framing: pure encode/decode/scan over bytes (sans-IO).

Record layout (little-endian, 16-byte header)::

    u32 crc32c   over every byte after this field (word, lsn, payload)
    u32 word     payload length (low 30 bits) | START (bit 31) | END (bit 30)
    u64 lsn
    payload

START marks the first record of one group-commit write and END its last one (a write of one
record carries both). The flags let recovery tell an unfinished write (a torn tail, never
acknowledged) from damage to records that were already fsynced; see `recovery`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from crc32c import crc32c

HEADER = struct.Struct("<IIQ")
HEADER_SIZE = HEADER.size
_BODY = struct.Struct("<IQ")  # the crc-covered part of the header

FLAG_START = 1 << 31
FLAG_END = 1 << 30
LENGTH_MASK = FLAG_END - 1
MAX_PAYLOAD = LENGTH_MASK


def encode(lsn: int, payload: bytes, flags: int = FLAG_START | FLAG_END) -> bytes:
    """One framed record; a lone record is a whole write, hence START|END by default."""
    out = bytearray()
    encode_into(out, lsn, payload, flags)
    return bytes(out)


def encode_into(out: bytearray, lsn: int, payload: bytes, flags: int) -> None:
    """Append one framed record to `out` (the group-commit buffer)."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError(f"payload of {n} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    body = _BODY.pack(n | flags, lsn)
    out += HEADER.pack(crc32c(payload, crc32c(body)), n | flags, lsn)
    out += payload


def set_flags(buf: bytearray, offset: int, flags: int) -> None:
    """Add flags to the record at `offset` of `buf` (it must end the buffer) and re-crc it."""
    _, word, lsn = HEADER.unpack_from(buf, offset)
    _BODY.pack_into(buf, offset + 4, word | flags, lsn)
    with memoryview(buf) as view:
        struct.pack_into("<I", buf, offset, crc32c(view[offset + 4 :]))


@dataclass(frozen=True, slots=True)
class Record:
    lsn: int
    payload: bytes
    flags: int
    end: int  # offset just past the record


class Invalid(Exception):
    """The bytes at an offset are not a valid record (reason in args[0])."""


def decode_at(buf: bytes | memoryview, offset: int) -> Record:
    """Decode and verify the record at `offset`; raises Invalid. LSN continuity is the caller's."""
    if len(buf) - offset < HEADER_SIZE:
        raise Invalid("incomplete header")
    crc, word, lsn = HEADER.unpack_from(buf, offset)
    end = offset + HEADER_SIZE + (word & LENGTH_MASK)
    if end > len(buf):
        raise Invalid("record extends past end of file")
    if crc32c(buf[offset + 4 : end]) != crc:
        raise Invalid("checksum mismatch")
    return Record(lsn, bytes(buf[offset + HEADER_SIZE : end]), word & ~LENGTH_MASK, end)


@dataclass(slots=True)
class Scan:
    """Outcome of scanning records from an offset until the end or the first bad record."""

    end: int  # offset past the last valid, LSN-continuous record
    next_lsn: int  # LSN the record at `end` should have
    committed_end: int  # offset past the last valid record carrying END (a finished write)
    committed_next_lsn: int
    bad_reason: str | None = None  # why the record at `end` is bad, None if clean to EOF
    lsn_mismatch: bool = False  # the bad record has a valid checksum but the wrong LSN
    index: list[tuple[int, int]] = field(default_factory=list)  # sparse (lsn, offset) of writes


INDEX_SPACING = 64 * 1024  # bytes between sparse index entries: bounds a read's skip-scan


def scan(buf: bytes | memoryview, offset: int, next_lsn: int) -> Scan:
    """Walk records from `offset` expecting dense LSNs from `next_lsn`."""
    result = Scan(offset, next_lsn, offset, next_lsn)
    last_indexed = -INDEX_SPACING
    while result.end < len(buf):
        try:
            rec = decode_at(buf, result.end)
        except Invalid as e:
            result.bad_reason = str(e.args[0])
            return result
        if rec.lsn != result.next_lsn:
            result.bad_reason = f"lsn {rec.lsn} where {result.next_lsn} was expected"
            result.lsn_mismatch = True
            return result
        if rec.flags & FLAG_START and result.end - last_indexed >= INDEX_SPACING:
            result.index.append((rec.lsn, result.end))
            last_indexed = result.end
        result.end = rec.end
        result.next_lsn += 1
        if rec.flags & FLAG_END:
            result.committed_end, result.committed_next_lsn = result.end, result.next_lsn
    return result


def find_later_write(buf: bytes | memoryview, offset: int, after_lsn: int) -> int | None:
    """Offset of the first valid START record with LSN > after_lsn at or after `offset`.

    Byte-by-byte: the bad record's length field cannot be trusted. Only reached for a bad
    record in the last segment, whose tail is at most one unfinished write in the torn case.
    """
    start_byte = 3  # the START bit is the top bit of byte 3 of the little-endian word
    for pos in range(offset, len(buf) - HEADER_SIZE + 1):
        if not buf[pos + 4 + start_byte] & 0x80:
            continue
        try:
            rec = decode_at(buf, pos)
        except Invalid:
            continue
        if rec.lsn > after_lsn:
            return pos
    return None
