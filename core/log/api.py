"""The log interface: what a partition processor needs from its log.

The local segment-file log (`rstq.core.log.local`) implements it today; a replicated log can
replace it later without touching the processors (ARCHITECTURE.md section 7).

Log positions (LSN) are dense per partition and start at 1; 0 means "nothing".
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import Protocol


class FsyncPolicy(enum.Enum):
    """When an append counts as durable."""

    BATCH = "batch"  # one fsync per group-committed batch; append returns after it (default)
    NONE = "none"  # UNSAFE: never fsync; an OS crash loses acknowledged appends (tests/benchmarks)


class LogError(Exception):
    """Base class of log failures."""


class LogCorruption(LogError):
    """A record before the tail failed its checks: never skipped silently."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt log record in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class LogFull(LogError):
    """The disk is full: this append was not written (nothing acknowledged is affected); later
    appends succeed again once space is freed."""


class LogClosed(LogError):
    """The log was closed while an append was pending or after close."""


class Log(Protocol):
    """One partition's append-only log."""

    @property
    def first_lsn(self) -> int:
        """Lowest LSN still readable (after trimming); next_lsn when the log is empty."""

    @property
    def next_lsn(self) -> int:
        """LSN the next appended record will get."""

    @property
    def durable_lsn(self) -> int:
        """Highest LSN known durable under the fsync policy (0 when none)."""

    async def append(self, payload: bytes) -> int:
        """Append one record; returns its LSN once durable. Concurrent calls are group-committed."""

    async def append_batch(self, payloads: Sequence[bytes]) -> int:
        """Append records as one unit of durability; returns the LSN of the last one."""

    def read(self, from_lsn: int) -> Iterator[tuple[int, bytes]]:
        """Durable records with LSN >= from_lsn, in order."""

    async def trim(self, below_lsn: int) -> None:
        """Delete whole segments whose records are all < below_lsn (may keep some older ones)."""

    async def close(self) -> None:
        """Finish pending appends (flush + fsync) and release files."""
