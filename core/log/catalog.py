"""The in-memory list of segments, shared by the writer thread, readers and trim.

The writer thread appends segments on roll and sparse index entries; readers take snapshots;
trim detaches whole segments from the front. One lock keeps those views consistent.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass

from .segment import SEG_HEADER_SIZE, Segment


@dataclass(frozen=True, slots=True)
class SegmentView:
    """A reader's immutable view of one segment."""

    segment: Segment
    end_lsn: int | None  # first LSN of the next segment; None for the active one
    index: tuple[tuple[int, int], ...]

    def seek(self, lsn: int) -> tuple[int, int]:
        """(lsn, file offset) of the latest indexed record at or before `lsn`."""
        i = bisect_right(self.index, (lsn, 1 << 62))
        return self.index[i - 1] if i else (self.segment.first_lsn, SEG_HEADER_SIZE)


class Catalog:
    def __init__(self, segments: list[Segment]) -> None:
        if not segments:
            raise ValueError("a log always has an active segment")
        self._segments = list(segments)
        self._lock = threading.Lock()

    @property
    def first_lsn(self) -> int:
        with self._lock:
            return self._segments[0].first_lsn

    @property
    def active(self) -> Segment:
        with self._lock:
            return self._segments[-1]

    def add_segment(self, segment: Segment) -> None:
        with self._lock:
            self._segments.append(segment)

    def add_index(self, lsn: int, offset: int) -> None:
        with self._lock:
            self._segments[-1].index.append((lsn, offset))

    def views(self) -> list[SegmentView]:
        with self._lock:
            segs = list(self._segments)
            return [
                SegmentView(
                    seg,
                    segs[i + 1].first_lsn if i + 1 < len(segs) else None,
                    tuple(seg.index),
                )
                for i, seg in enumerate(segs)
            ]

    def detach_below(self, below_lsn: int) -> list[Segment]:
        """Remove and return the leading segments whose records all have LSN < below_lsn.

        A segment's records end where the next segment starts, so the active (last) segment,
        which has no successor, is never detached.
        """
        with self._lock:
            n = 0
            while n + 1 < len(self._segments) and self._segments[n + 1].first_lsn <= below_lsn:
                n += 1
            doomed, self._segments = self._segments[:n], self._segments[n:]
            return doomed
