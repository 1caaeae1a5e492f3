"""A partition's history: completed invocations in immutable Arrow segment files.

Completed invocations are immutable (apply only ever deletes them), so once enough of them
have piled up in the partition store they move, a few thousand at a time, into one segment:
an Arrow IPC file sorted by invocation id, memory-mapped when read. The store keeps a manifest
row per segment (`keys.segment_key`) and one small index row per invocation
(`keys.history_key`: which segment holds it), so a point lookup costs one store get plus a
binary search in one file, and memory does not grow with history. The SQL tables scan the
files natively (pyarrow), and retention drops a segment whole, as a file, once every
invocation in it has expired: no command per invocation in the log.

A segment row deleted later (a purge) gets a tombstone row (`keys.tombstone_key`); the
tombstones are few and kept in memory so readers can skip those rows.

Crash safety: a segment file is written and fsynced under a temporary name, renamed, and only
then recorded by one store batch (manifest row, index rows, hot rows deleted). A file no
manifest refers to (a crash before that batch) is garbage: `collect` removes files that neither
the live store nor a kept checkpoint refers to, so falling back to a checkpoint always finds
its files.

File layout (one record batch, rows sorted by `id`):
  id                 fixed_size_binary(24)  raw invocation id
  invocation_id      string                 `inv_1…`
  completed_at       int64                  ms
  expires_at         int64                  completed_at + retention (the row goes then)
  journal_expires_at int64                  completed_at + journal retention
  status             binary                 the invocation record without its journal
  journal            list<binary>           its journal entries' records
"""

from __future__ import annotations

import bisect
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from rstq.core.invocations import expires_at
from rstq.core.log.segment import fsync_dir
from rstq.core.model import Invocation, JournalEntry
from rstq.core.store import keys, records
from rstq.core.store.api import ReadView

FORMAT = "1"
SUFFIX = ".arrow"
ID_LEN = 24

_FIELDS: list[pa.Field[Any]] = [
    pa.field("id", pa.binary(ID_LEN), nullable=False),
    pa.field("invocation_id", pa.string(), nullable=False),
    pa.field("completed_at", pa.int64(), nullable=False),
    pa.field("expires_at", pa.int64(), nullable=False),
    pa.field("journal_expires_at", pa.int64(), nullable=False),
    pa.field("status", pa.binary(), nullable=False),
    pa.field("journal", pa.list_(pa.binary()), nullable=False),
]
SCHEMA = pa.schema(_FIELDS, metadata={"rstq.segment.format": FORMAT})

NO_JOURNAL = ("journal",)


def journal_expires_at(inv: Invocation) -> int:
    return (inv.completed_at or inv.modified_at) + inv.journal_retention_ms


@dataclass(slots=True)
class SegmentMeta:
    """The manifest row of one segment."""

    segment_id: str
    rows: int
    min_expires_at: int
    max_expires_at: int
    created_lsn: int  # the applied LSN when it was recorded
    size: int  # file bytes


def new_segment_id(lsn: int) -> str:
    # Unique even when a fallback to a checkpoint makes the same LSNs flush again.
    return f"{lsn:020d}-{uuid.uuid4().hex[:8]}"


class Segment:
    """One segment file, memory-mapped on first use (the OS pages it in and out)."""

    def __init__(self, path: Path, meta: SegmentMeta) -> None:
        self.path = path
        self.meta = meta
        self._table: pa.Table | None = None
        self._ids: memoryview | None = None

    @property
    def table(self) -> pa.Table:
        if self._table is None:
            with pa.memory_map(str(self.path), "r") as source:
                self._table = pa.ipc.open_file(source).read_all()
        return self._table

    def _id_buffer(self) -> memoryview:
        if self._ids is None:
            col = self.table.column("id").combine_chunks()
            buf = col.buffers()[1]
            assert buf is not None
            self._ids = memoryview(buf)[col.offset * ID_LEN:(col.offset + len(col)) * ID_LEN]
        return self._ids

    def find(self, raw_id: bytes) -> int | None:
        """The row of `raw_id`, or None."""
        ids = self._id_buffer()
        n = len(ids) // ID_LEN

        def at(j: int) -> bytes:
            return bytes(ids[j * ID_LEN:(j + 1) * ID_LEN])

        i = bisect.bisect_left(range(n), raw_id, key=at)
        return i if i < n and at(i) == raw_id else None

    def invocation(self, row: int) -> Invocation:
        t = self.table
        inv = records.decode(Invocation, t.column("status")[row].as_py(), NO_JOURNAL)
        inv.journal = [records.decode(JournalEntry, e) for e in t.column("journal")[row].as_py()]
        return inv

    def close(self) -> None:
        self._table = None
        self._ids = None


class SegmentSink(Protocol):
    """Takes a segment's invocations chunk by chunk (in id order), then finishes."""

    def add(self, invocations: Sequence[Invocation]) -> None: ...

    def finish(self) -> None: ...


class SegmentWriter:
    """Writes one segment from chunks of invocations given in raw-id order: each chunk is
    encoded to Arrow as it comes, so a move holds a chunk of decoded invocations at a time,
    not the whole segment (Python memory freed in pieces does not return to the system:
    the peak of a move stays as the floor of the process)."""

    def __init__(self, directory: Path, segment_id: str, created_lsn: int) -> None:
        self.directory, self.segment_id, self.created_lsn = directory, segment_id, created_lsn
        self._chunks: list[pa.RecordBatch] = []
        self._last: bytes = b""
        self._min_exp: int | None = None
        self._max_exp: int | None = None

    def add(self, invocations: Sequence[Invocation]) -> None:
        if not invocations:
            return
        raws = [keys.inv_raw(inv.invocation_id) for inv in invocations]
        if raws != sorted(raws) or raws[0] <= self._last:
            raise ValueError("segment chunks must come in increasing invocation id order")
        self._last = raws[-1]
        exp = [expires_at(inv) for inv in invocations]
        self._min_exp = min(exp) if self._min_exp is None else min(self._min_exp, *exp)
        self._max_exp = max(exp) if self._max_exp is None else max(self._max_exp, *exp)
        self._chunks.append(pa.RecordBatch.from_arrays([
            pa.array(raws, pa.binary(ID_LEN)),
            pa.array([inv.invocation_id for inv in invocations], pa.string()),
            pa.array([inv.completed_at or inv.modified_at for inv in invocations], pa.int64()),
            pa.array(exp, pa.int64()),
            pa.array([journal_expires_at(inv) for inv in invocations], pa.int64()),
            pa.array([records.encode(inv, NO_JOURNAL) for inv in invocations], pa.binary()),
            pa.array([[records.encode(e) for e in inv.journal] for inv in invocations],
                     pa.list_(pa.binary())),
        ], schema=SCHEMA))

    def finish(self) -> SegmentMeta:
        """Write the file as one record batch (durable on return)."""
        table = pa.Table.from_batches(self._chunks, schema=SCHEMA).combine_chunks()
        self._chunks = []
        rows = table.num_rows
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{self.segment_id}{SUFFIX}"
        tmp = final.with_name(final.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink:
            with pa.ipc.new_file(sink, SCHEMA) as writer:
                writer.write_table(table, max_chunksize=max(1, rows))
        del table
        _fsync_file(tmp)
        tmp.rename(final)
        fsync_dir(self.directory)
        return SegmentMeta(self.segment_id, rows, self._min_exp or 0, self._max_exp or 0,
                           self.created_lsn, final.stat().st_size)


def write_segment(directory: Path, segment_id: str, invocations: Iterable[Invocation],
                  created_lsn: int) -> SegmentMeta:
    """Write the completed `invocations` as segment `segment_id` (durable on return)."""
    w = SegmentWriter(directory, segment_id, created_lsn)
    w.add(sorted(invocations, key=lambda inv: keys.inv_raw(inv.invocation_id)))
    return w.finish()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class History:
    """The segments of one partition: what the manifest lists, opened lazily."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segments: dict[str, Segment] = {}
        self.tombstones: dict[str, set[bytes]] = {}  # segment id -> raw ids no longer valid
        self.version = 0  # bumped whenever the set of segments or tombstones changes
        # Called with (directory, segment id) when a segment is written, in the writing
        # thread: sinks that get the same chunks of invocations and write derived files (the
        # SQL plugin's Arrow rows). Failures are logged; derived files are rebuilt if missing.
        self.encoders: list[Callable[[Path, str], SegmentSink]] = []

    def load(self, view: ReadView) -> None:
        """The manifest and tombstones as a store holds them."""
        self.segments.clear()
        self.tombstones.clear()
        start, end = keys.table_range(keys.Table.SEGMENT)
        for _key, value in view.iterate(start, end):
            meta = records.decode(SegmentMeta, value)
            self.segments[meta.segment_id] = Segment(self.path(meta.segment_id), meta)
        start, end = keys.table_range(keys.Table.TOMBSTONE)
        for key, _ in view.iterate(start, end):
            sid, inv_id = keys.fields_of(key, keys.Table.TOMBSTONE)
            assert isinstance(sid, str) and isinstance(inv_id, str)
            self.tombstones.setdefault(sid, set()).add(keys.inv_raw(inv_id))
        self.version += 1

    def path(self, segment_id: str) -> Path:
        return self.directory / f"{segment_id}{SUFFIX}"

    def add(self, meta: SegmentMeta) -> None:
        self.segments[meta.segment_id] = Segment(self.path(meta.segment_id), meta)
        self.version += 1

    def drop(self, segment_id: str) -> None:
        seg = self.segments.pop(segment_id, None)
        if seg is not None:
            seg.close()
        self.tombstones.pop(segment_id, None)
        self.version += 1

    def tombstone(self, segment_id: str, raw_id: bytes) -> None:
        self.tombstones.setdefault(segment_id, set()).add(raw_id)
        self.version += 1

    def lookup(self, segment_id: str, raw_id: bytes) -> Invocation | None:
        seg = self.segments.get(segment_id)
        if seg is None or raw_id in self.tombstones.get(segment_id, ()):
            return None
        row = seg.find(raw_id)
        return None if row is None else seg.invocation(row)

    @property
    def rows(self) -> int:
        """Rows in segments, less the tombstoned ones (expired ones included until dropped)."""
        return sum(s.meta.rows for s in self.segments.values()) - sum(
            len(t) for t in self.tombstones.values())

    def expired(self, now_ms: int, grace_ms: int) -> list[str]:
        """Segments every row of which expired at least `grace_ms` ago."""
        return [sid for sid, s in self.segments.items()
                if s.meta.max_expires_at + grace_ms <= now_ms]

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [p for p in self.directory.iterdir() if p.name.endswith(SUFFIX)
                or p.name.endswith(SUFFIX + ".tmp")]

    def collect(self, referenced: Sequence[str] | set[str]) -> int:
        """Delete segment files not in `referenced` (ids); returns how many went."""
        keep = set(referenced) | set(self.segments)
        n = 0
        for p in self.files():
            sid = p.name.split(".", 1)[0]
            if p.name.endswith(".tmp") or sid not in keep:
                p.unlink(missing_ok=True)
                n += 1
        return n
