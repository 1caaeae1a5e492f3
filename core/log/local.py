"""LocalLog: one partition's durable log in segment files of a local directory.

Composition of the pieces: `recovery` checks and repairs the directory on open (synchronously,
so tools can read a log without an event loop), `writer` group-commits appends on its own
thread, `reader` streams durable records back, `catalog` tracks the segments they share.
Torn-tail versus corruption rule: see `rstq.core.log.recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .api import FsyncPolicy, LogClosed, LogError, LogFull
from .catalog import Catalog
from .reader import read_records
from .recovery import recover
from .segment import fsync_dir
from .writer import GroupCommitWriter

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

_Waiter = asyncio.Future[None]


def default_sync() -> Callable[[int], None]:
    # fdatasync skips the inode timestamps; the file size it does flush is all we need.
    return getattr(os, "fdatasync", os.fsync)


class LocalLog:
    """Implements `rstq.core.log.api.Log`. Create with `open` (async) or `open_sync`."""

    def __init__(
        self,
        directory: Path,
        fsync: FsyncPolicy,
        segment_bytes: int,
        sync_file: Callable[[int], None],
    ) -> None:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        recovered = recover(directory)
        self.directory = directory
        self.truncated_bytes = recovered.truncated_bytes  # torn tail cut at open (diagnostics)
        self._catalog = Catalog(recovered.segments)
        self._durable_lsn = recovered.next_lsn - 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._writer: GroupCommitWriter[_Waiter] = GroupCommitWriter(
            directory,
            self._catalog,
            next_lsn=recovered.next_lsn,
            active_size=recovered.active_size,
            segment_bytes=segment_bytes,
            sync=fsync is FsyncPolicy.BATCH,
            sync_file=sync_file,
            notify=self._on_written,
        )

    @classmethod
    def open_sync(
        cls,
        path: str | os.PathLike[str],
        fsync: FsyncPolicy = FsyncPolicy.BATCH,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        *,
        sync_file: Callable[[int], None] | None = None,
    ) -> LocalLog:
        """Recover and open; raises LogCorruption. `sync_file` replaces fdatasync (test hook)."""
        return cls(Path(path), fsync, segment_bytes, sync_file or default_sync())

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        fsync: FsyncPolicy = FsyncPolicy.BATCH,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        *,
        sync_file: Callable[[int], None] | None = None,
    ) -> LocalLog:
        """`open_sync` off the event loop (recovery reads every segment)."""
        return await asyncio.to_thread(
            cls.open_sync, path, fsync, segment_bytes, sync_file=sync_file
        )

    @property
    def first_lsn(self) -> int:
        return self._catalog.first_lsn

    @property
    def next_lsn(self) -> int:
        return self._writer.next_lsn

    @property
    def durable_lsn(self) -> int:
        return self._durable_lsn

    async def append(self, payload: bytes) -> int:
        """Cancelling the caller does not retract the record: it is still written."""
        fut, lsn = self._submit((payload,))
        await fut
        return lsn

    async def append_batch(self, payloads: Sequence[bytes]) -> int:
        """All records land in one write, so after a crash either all or none are present."""
        fut, lsn = self._submit(payloads)
        await fut
        return lsn

    def _submit(self, payloads: Sequence[bytes]) -> tuple[_Waiter, int]:
        if self._closed:
            raise LogClosed("log is closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut: _Waiter = loop.create_future()
        return fut, self._writer.submit(payloads, fut)

    def read(self, from_lsn: int) -> Iterator[tuple[int, bytes]]:
        """Records durable when called, from max(from_lsn, first_lsn). Blocking file reads."""
        return read_records(self._catalog.views(), from_lsn, self._durable_lsn)

    async def trim(self, below_lsn: int) -> None:
        await asyncio.to_thread(self.trim_sync, below_lsn)

    def trim_sync(self, below_lsn: int) -> None:
        # Oldest first, so a crash part-way leaves a contiguous run of segments.
        doomed = self._catalog.detach_below(below_lsn)
        for segment in doomed:
            segment.path.unlink()
        if doomed:
            fsync_dir(self.directory)

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._writer.close)

    def close_sync(self) -> None:
        """For logs opened with `open_sync` and never appended to from an event loop."""
        self._closed = True
        self._writer.close()

    def _on_written(
        self, waiters: list[_Waiter], last_lsn: int, error: BaseException | None
    ) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is left waiting
            loop.call_soon_threadsafe(self._complete, waiters, last_lsn, error)

    def _complete(self, waiters: list[_Waiter], last_lsn: int, error: BaseException | None) -> None:
        if error is None:
            self._durable_lsn = last_lsn
        for fut in waiters:
            if fut.done():
                continue  # cancelled by its caller
            if error is None:
                fut.set_result(None)
            else:
                exc = (LogFull(str(error)) if isinstance(error, LogFull)  # not fatal: no wrap
                       else LogError(f"log write failed: {error!r}"))
                exc.__cause__ = error
                fut.set_exception(exc)
