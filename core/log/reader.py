"""Reading durable records back: seek by sparse index, then stream and verify records."""

from __future__ import annotations

from collections.abc import Iterator

from . import record
from .api import LogCorruption, LogError
from .catalog import SegmentView

CHUNK = 1 << 20


def read_records(
    views: list[SegmentView], from_lsn: int, upto_lsn: int
) -> Iterator[tuple[int, bytes]]:
    """(lsn, payload) for from_lsn <= lsn <= upto_lsn, from a snapshot of the segments."""
    for view in views:
        if view.end_lsn is not None and view.end_lsn <= from_lsn:
            continue
        if view.segment.first_lsn > upto_lsn:
            return
        last = upto_lsn if view.end_lsn is None else min(upto_lsn, view.end_lsn - 1)
        yield from _read_segment(view, max(from_lsn, view.segment.first_lsn), last)


def _read_segment(view: SegmentView, from_lsn: int, upto_lsn: int) -> Iterator[tuple[int, bytes]]:
    path = view.segment.path
    expected, offset = view.seek(from_lsn)
    try:
        f = open(path, "rb")  # noqa: SIM115 - held across yields
    except FileNotFoundError as e:
        raise LogError(f"segment {path} was trimmed while being read") from e
    with f:
        f.seek(offset)
        buf, pos = b"", 0
        while expected <= upto_lsn:
            need = _missing(buf, pos)
            if need:
                more = f.read(max(CHUNK, need))
                if len(more) < need:
                    raise LogCorruption(str(path), offset + pos, "durable record is missing")
                offset += pos
                buf, pos = buf[pos:] + more, 0
                continue
            try:
                rec = record.decode_at(buf, pos)
            except record.Invalid as e:
                raise LogCorruption(str(path), offset + pos, str(e.args[0])) from None
            if rec.lsn != expected:
                raise LogCorruption(
                    str(path), offset + pos, f"lsn {rec.lsn} where {expected} was expected"
                )
            expected = rec.lsn + 1
            pos = rec.end
            if rec.lsn >= from_lsn:
                yield rec.lsn, rec.payload


def _missing(buf: bytes, pos: int) -> int:
    """Bytes still to read before the record at `pos` is whole in `buf` (0 when it is)."""
    have = len(buf) - pos
    if have < record.HEADER_SIZE:
        return record.HEADER_SIZE - have
    word: int = record.HEADER.unpack_from(buf, pos)[1]
    return max(0, record.HEADER_SIZE + (word & record.LENGTH_MASK) - have)
