"""Group commit: one dedicated thread turns all pending appends into one write + one fsync.

Callers `submit` records from any thread: LSNs are assigned and records framed at once into the
pending buffer. The writer thread swaps that buffer out whole, marks its last record END, writes
it with one syscall and fsyncs it; meanwhile new submissions fill the next buffer, so batches
grow by themselves with load and no timer is needed. A dedicated thread (rather than
`asyncio.to_thread` per batch) keeps the event loop free and avoids executor hand-offs.

An I/O error poisons the writer: after a failed fsync the page cache state is unknown, so every
pending and later append fails rather than risk acknowledging lost data. Except a full disk
(ENOSPC/EDQUOT from write(), before any fsync): nothing of the batch was acknowledged, so the
segment is cut back to where the batch started, that batch and everything queued behind it fail
with `LogFull`, their LSNs are handed out again, and later appends succeed once space is freed.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from . import record
from .api import LogClosed, LogError, LogFull
from .catalog import Catalog
from .segment import SEG_HEADER_SIZE, write_all, write_new_segment

W = TypeVar("W")

# Called on the writer thread once a batch is durable (error None) or failed.
Notify = Callable[[list[W], int, BaseException | None], None]


class GroupCommitWriter(Generic[W]):
    def __init__(
        self,
        directory: Path,
        catalog: Catalog,
        *,
        next_lsn: int,
        active_size: int,
        segment_bytes: int,
        sync: bool,
        sync_file: Callable[[int], None],
        notify: Notify[W],
    ) -> None:
        self._dir = directory
        self._catalog = catalog
        self._segment_bytes = segment_bytes
        self._sync = sync
        self._sync_file = sync_file
        self._notify = notify
        self._cond = threading.Condition()
        # Guarded by _cond: the batch being filled.
        self._next_lsn = next_lsn
        self._buf = bytearray()
        self._buf_first_lsn = next_lsn
        self._buf_last_offset = 0
        self._waiters: list[W] = []
        self._closing = False
        self._idle = False  # the writer thread waits for work
        self.failure: BaseException | None = None
        # Writer thread only.
        self._active_size = active_size
        self._last_indexed = -record.INDEX_SPACING
        self._fd = -1
        self._thread: threading.Thread | None = None

    @property
    def next_lsn(self) -> int:
        return self._next_lsn

    def submit(self, payloads: Sequence[bytes], waiter: W) -> int:
        """Queue records as part of the next write; returns the LSN of the last one."""
        if not payloads:
            raise ValueError("nothing to append")
        for p in payloads:  # all checked before any LSN is taken
            if len(p) > record.MAX_PAYLOAD:
                raise ValueError(f"payload exceeds the {record.MAX_PAYLOAD}-byte limit")
        with self._cond:
            if self._closing:
                raise LogClosed("log is closed")
            if self.failure is not None:
                raise LogError(f"log writer failed: {self.failure!r}") from self.failure
            if self._thread is None:
                self._start()
            buf = self._buf
            lsn = self._next_lsn
            flags = record.FLAG_START if not buf else 0
            if flags:
                self._buf_first_lsn = lsn
            for payload in payloads:
                self._buf_last_offset = len(buf)
                record.encode_into(buf, lsn, payload, flags)
                flags = 0
                lsn += 1
            self._next_lsn = lsn
            self._waiters.append(waiter)
            if self._idle:  # while it writes, the writer finds the batch when it comes back
                self._cond.notify()
            return lsn - 1

    def close(self) -> None:
        """Write and fsync what is pending, then stop the thread. Blocking; idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        self._fd = os.open(self._catalog.active.path, os.O_WRONLY | os.O_APPEND)
        self._thread = threading.Thread(target=self._run, name="rstq-log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._buf and not self._closing:
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
                    if not self._buf:
                        break
                    buf, waiters = self._buf, self._waiters
                    first_lsn, last_lsn = self._buf_first_lsn, self._next_lsn - 1
                    last_offset = self._buf_last_offset
                    self._buf, self._waiters = bytearray(), []
                if self.failure is None:
                    try:
                        record.set_flags(buf, last_offset, record.FLAG_END)
                        self._write(buf, first_lsn)
                    except OSError as e:
                        if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._cut_back():
                            self.failure = e
                        else:
                            self._notify(waiters + self._drop_pending(first_lsn), last_lsn,
                                         LogFull(f"no space left for the log: {e}"))
                            continue
                    except BaseException as e:  # noqa: BLE001 - any failure must reach waiters
                        self.failure = e
                self._notify(waiters, last_lsn, self.failure)
            if not self._sync and self.failure is None:
                os.fsync(self._fd)  # close() promises durability under every policy
        finally:
            os.close(self._fd)

    def _cut_back(self) -> bool:
        """After a failed write: drop its partial bytes. False if even that fails."""
        try:
            os.ftruncate(self._fd, self._active_size)
        except OSError:
            return False
        return True

    def _drop_pending(self, first_lsn: int) -> list[W]:
        """Fail what queued behind a failed batch and reuse the LSNs from `first_lsn` on."""
        with self._cond:
            waiters, self._waiters = self._waiters, []
            self._buf = bytearray()
            self._next_lsn = self._buf_first_lsn = first_lsn
            return waiters

    def _write(self, buf: bytearray, first_lsn: int) -> None:
        # Roll only between writes, so a write never spans segments and the old segment's last
        # write was already fsynced (recovery relies on both).
        if self._active_size >= self._segment_bytes and self._active_size > SEG_HEADER_SIZE:
            segment = write_new_segment(self._dir, first_lsn)
            new_fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND)
            os.close(self._fd)
            self._fd = new_fd
            self._catalog.add_segment(segment)
            self._active_size = SEG_HEADER_SIZE
            self._last_indexed = -record.INDEX_SPACING
        offset = self._active_size
        write_all(self._fd, buf)
        if self._sync:
            try:
                self._sync_file(self._fd)
            except OSError as e:  # never treated as a full disk: the writer is poisoned
                raise LogError(f"fsync failed: {e!r}") from e
        self._active_size += len(buf)
        if offset - self._last_indexed >= record.INDEX_SPACING:
            self._catalog.add_index(first_lsn, offset)
            self._last_indexed = offset
