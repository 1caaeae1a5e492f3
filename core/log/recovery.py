"""Recovery on open: verify every segment, cut a torn tail, refuse mid-log corruption.

Facts the writer (`writer`) guarantees and this module relies on:

1. A group-commit write is one contiguous run of records whose first record has START and last
   END, always inside one segment. Its appends are acknowledged only after its fsync.
2. A write is issued only after the fsync of the previous write returned, and a segment is only
   rolled after its last write was fsynced. So bytes of a later write on disk prove that every
   earlier write was complete and durable.

Rule, scanning each segment record by record (checksum, then dense LSN):

* Non-last segment: any bad record, or a last record without END, is `LogCorruption`.
* Last segment, first bad record at offset X (should hold LSN n): if a valid START record with
  LSN > n exists anywhere after X (byte-by-byte search, since X's length is untrusted), a later
  write reached the disk, so X was durable: `LogCorruption` naming the file and X. Otherwise X is
  part of the final, unfinished write (a crash may persist its pages in any order): torn tail.
* A record with a valid checksum but an unexpected LSN is never torn: `LogCorruption`.
* Last segment with a bad header and no valid record: its creation was torn (the header is
  fsynced before any record goes in), so it is reset to an empty segment.
* Torn tail: the file is truncated after the last record carrying END, which also drops the
  intact head of an unfinished write, so `append_batch` is all-or-nothing across crashes.

Limit: damage to the last write after its fsync looks exactly like a torn write and is cut; no
format can tell them apart without an extra synchronous write. Under FsyncPolicy.NONE fact 2 does
not hold, so an OS crash (not a process crash) may surface as LogCorruption.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import record
from .api import LogCorruption
from .segment import (
    SEG_HEADER_SIZE,
    Segment,
    fsync_dir,
    header_problem,
    list_segments,
    write_new_segment,
)


@dataclass(slots=True)
class Recovered:
    segments: list[Segment]  # LSN order, never empty; the last one is active
    next_lsn: int
    active_size: int  # bytes of the active segment, header included
    truncated_bytes: int  # how much torn tail was cut (0 when the log was clean)


def recover(directory: Path) -> Recovered:
    """Open-time check and repair of a log directory (created if missing). Synchronous."""
    directory.mkdir(parents=True, exist_ok=True)
    segments = list_segments(directory)
    if not segments:
        return Recovered([write_new_segment(directory, 1)], 1, SEG_HEADER_SIZE, 0)
    next_lsn = segments[0].first_lsn
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg.first_lsn != next_lsn:
            raise LogCorruption(
                str(seg.path), 0, f"segment starts at lsn {seg.first_lsn}, expected {next_lsn}"
            )
        if last:
            end_lsn, size, truncated = _recover_last(directory, seg)
            return Recovered(segments, end_lsn, size, truncated)
        next_lsn = _verify_sealed(seg)
    raise AssertionError("unreachable")


def _verify_sealed(seg: Segment) -> int:
    """Check a rolled segment; returns the LSN the next segment must start at."""
    result = check_sealed(seg.path.read_bytes(), str(seg.path), seg.first_lsn)
    seg.index = result.index
    return result.next_lsn


def _recover_last(directory: Path, seg: Segment) -> tuple[int, int, int]:
    """Check the active segment and cut its torn tail; returns (next lsn, size, bytes cut)."""
    data = seg.path.read_bytes()
    result = check_active(data, str(seg.path), seg.first_lsn)
    if result is None:
        write_new_segment(directory, seg.first_lsn)
        return seg.first_lsn, SEG_HEADER_SIZE, len(data)
    seg.index = [(lsn, off) for lsn, off in result.index if off < result.committed_end]
    if result.committed_end < len(data):
        _truncate(seg.path, result.committed_end)
    return result.committed_next_lsn, result.committed_end, len(data) - result.committed_end


def check_sealed(data: bytes, path: str, first_lsn: int) -> record.Scan:
    """A rolled segment must be entirely valid and end on a finished write."""
    problem = header_problem(data, first_lsn)
    if problem:
        raise LogCorruption(path, 0, problem)
    result = record.scan(data, SEG_HEADER_SIZE, first_lsn)
    if result.bad_reason is not None:
        raise LogCorruption(path, result.end, result.bad_reason)
    if result.committed_end != len(data):
        raise LogCorruption(path, result.committed_end, "unfinished write in sealed segment")
    return result


def check_active(data: bytes, path: str, first_lsn: int) -> record.Scan | None:
    """Pure torn-tail rule for the last segment (module docstring).

    Returns the scan, whose `committed_end` is where the file must be cut, or None when the
    segment's creation itself was torn (bad header, no record ever written: reset it).
    """
    problem = header_problem(data, first_lsn)
    if problem:
        # The header is fsynced before any record is written, so with no surviving record
        # this is a torn creation; with one, the header was damaged after the fact.
        if record.find_later_write(data, 0, first_lsn - 1) is None:
            return None
        raise LogCorruption(path, 0, problem)
    result = record.scan(data, SEG_HEADER_SIZE, first_lsn)
    if result.bad_reason is not None:
        if result.lsn_mismatch:
            raise LogCorruption(path, result.end, result.bad_reason)
        later = record.find_later_write(data, result.end + 1, result.next_lsn)
        if later is not None:
            raise LogCorruption(
                path, result.end, f"{result.bad_reason}, yet a later write survives at {later}"
            )
    return result


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
