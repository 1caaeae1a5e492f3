"""The partition store on RocksDB, through rocksdict (raw mode: keys and values are bytes).

Configuration (bounded memory): one LRU block cache of `cache_bytes`, shared by all the stores
of the process (`shared_cache`), that also holds the index
and filter blocks (so they do not grow outside it with the data), bloom filters for point
reads, memtables capped at `write_buffer_bytes` in total, LZ4 (ZSTD at the bottom level), two
background jobs.

rocksdict shortcomings this module works around (0.3.29, checked by tests/core/test_store.py):

- `Snapshot.items()/keys()/iter()` do not read at the snapshot: they build a fresh iterator
  over the live database (the snapshot is set on a read-options copy that is thrown away).
  Only `Snapshot[key]` reads at the snapshot. A RocksDB iterator, however, reads at the
  sequence number it was created at; so a snapshot here is a rocksdict `Snapshot` (for gets)
  plus one raw iterator created at the same instant (for scans), shared by the snapshot's
  scans: a scan that finds the iterator moved by another scan re-seeks to its last key
  (still there: the view is fixed), so nested and interleaved scans stay correct.
- `ReadOptions.set_iterate_lower_bound` sets the *upper* bound: never called; scans seek to
  their start instead.
- `Snapshot[key]` raises a bare `Exception("key not found")` for a missing key.
- `Rdict(path, options)` on an existing database keeps the options passed for the DB but
  takes the column family's from its OPTIONS file, with a new 8 MB block cache: our table
  options (cache size, partitioned filters) would silently be lost at the first reopen.
  Passing `column_families={"default": options}` makes it use ours.
- Engine errors are bare `Exception`s with RocksDB's status text; mapped to StoreError.
- The GIL is held during `write` (fsync included), `get`, iteration steps and checkpoints;
  it is released by `flush_wal` and `flush`. A synced write is therefore an unsynced `write`
  followed by `flush_wal(sync=True)` (RocksDB's SyncWAL: the same durability), so other
  threads run during the fsync; a checkpoint flushes the memtable first.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from rocksdict import (
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    Checkpoint,
    DBCompressionType,
    Options,
    Rdict,
    RdictIter,
    ReadOptions,
    WriteOptions,
)
from rocksdict import Snapshot as _RdSnapshot
from rocksdict import WriteBatch as _RdBatch
from rstq.core.store.api import (
    MAX_KEY_SIZE,
    PartitionStore,
    Snapshot,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
    bad_key,
    check_key,
    check_value,
)

_Scan = Generator[tuple[bytes, bytes], None, None]

DEFAULT_CACHE_BYTES = 64 << 20  # one block cache, shared by every store of the process
# Memtables per store: the hot rows are live work and the last completions (history moves
# out), so small ones suffice, and 8 partitions x 8 MB stay well inside the memory budget.
DEFAULT_WRITE_BUFFER_BYTES = 8 << 20
_caches: dict[int, Cache] = {}
_caches_lock = threading.Lock()


def shared_cache(cache_bytes: int) -> Cache:
    """The process's block cache of that size: the partitions of a server share one, so
    memory is bounded per server, not per partition."""
    with _caches_lock:
        cache = _caches.get(cache_bytes)
        if cache is None:
            cache = _caches[cache_bytes] = Cache(cache_bytes)
        return cache


def _options(cache_bytes: int, write_buffer_bytes: int) -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_max_background_jobs(2)
    opts.set_bytes_per_sync(1 << 20)
    opts.set_compression_type(DBCompressionType.lz4())
    opts.set_bottommost_compression_type(DBCompressionType.zstd())
    opts.set_write_buffer_size(max(write_buffer_bytes // 2, 1 << 20))
    opts.set_max_write_buffer_number(2)
    opts.set_db_write_buffer_size(write_buffer_bytes)
    opts.set_keep_log_file_num(2)
    opts.set_max_log_file_size(4 << 20)
    table = BlockBasedOptions()
    table.set_block_cache(shared_cache(cache_bytes))
    table.set_bloom_filter(10, False)
    # Index and filter blocks live in the block cache (bounded memory), partitioned so that a
    # point read loads a 4 KB partition rather than a whole file's filter; the top level of
    # each stays pinned.
    table.set_index_type(BlockBasedIndexType.two_level_index_search())
    table.set_partition_filters(True)
    table.set_metadata_block_size(4096)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_top_level_index_and_filter(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    opts.set_block_based_table_factory(table)
    return opts


def _live_scan(rows: Any, start: bytes, end: bytes | None, reverse: bool) -> _Scan:
    """Rows of a rocksdict items() iterator (raw mode: bytes pairs) within [start, end).
    The upper bound set on the read options is not enough: rocksdict 0.3.29 does not always
    keep it (scans ran past it into the next table; tests/core/test_apply_properties.py found
    it), so the bounds are checked here too."""
    if reverse:
        for row in rows:
            if end is not None and row[0] >= end:
                continue
            if row[0] < start:
                return
            yield row
        return
    if end is None:
        yield from rows
        return
    for row in rows:
        if row[0] >= end:
            return
        yield row


def _end(scan: _Scan) -> None:
    """Finish a scan so that its frame drops the rocksdict iterator it holds."""
    try:
        scan.close()
    except ValueError:  # running in another thread right now: it ends on its own
        pass


class RocksBatch(WriteBatch):
    __slots__ = ("_rd", "_owner", "_n", "_written")

    def __init__(self, owner: RocksStore) -> None:
        self._rd = _RdBatch(raw_mode=True)
        self._owner = owner
        self._n = 0
        self._written = False

    def put(self, key: bytes, value: bytes) -> None:
        # the checks inlined: this is the hot path of apply
        if type(key) is not bytes or not 0 < len(key) <= MAX_KEY_SIZE:
            bad_key(key)
        if type(value) is not bytes:
            check_value(value)
        self._rd.put(key, value)
        self._n += 1

    def delete(self, key: bytes) -> None:
        check_key(key)
        self._rd.delete(key)
        self._n += 1

    def __len__(self) -> int:
        return self._n


class RocksStore(PartitionStore):
    engine = "rocksdb"

    def __init__(
        self,
        path: str | Path,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        write_buffer_bytes: int = DEFAULT_WRITE_BUFFER_BYTES,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        opts = _options(cache_bytes, write_buffer_bytes)
        try:
            # column_families given: else rocksdict reopens an existing DB with the options
            # saved in its OPTIONS file (and an 8 MB block cache) instead of `opts`
            self._db: Rdict | None = Rdict(str(self.path), opts,
                                           column_families={"default": opts})
        except Exception as e:  # rocksdict raises bare Exceptions with RocksDB's status
            if "lock" in str(e).lower():
                raise StoreLockedError(f"{self.path} is open elsewhere: {e}") from e
            raise StoreError(f"cannot open RocksDB store {self.path}: {e}") from e
        self._nosync = WriteOptions()
        self._lock = threading.Lock()  # snapshot = rocksdict Snapshot + iterator, atomically
        self._snapshots: weakref.WeakSet[RocksSnapshot] = weakref.WeakSet()
        self._scans: weakref.WeakSet[_Scan] = weakref.WeakSet()

    def _open_db(self) -> Rdict:
        db = self._db
        if db is None:
            raise StoreClosedError(f"store {self.path} is closed")
        return db

    # reads

    def get(self, key: bytes) -> bytes | None:
        check_key(key)
        value: bytes | None = self._open_db().get(key)
        return value

    def iterate(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        db = self._open_db()
        if end is not None and end <= start:
            return iter(())
        ro = ReadOptions()
        if end is not None:
            ro.set_iterate_upper_bound(end)  # exclusive; RocksDB stops there by itself
        # One RocksDB iterator per scan, created now: it reads at this instant's sequence
        # number. Forward: seek to `start`; reverse: from the last key < end.
        if reverse:
            rows = db.items(backwards=True, read_opt=ro)
        else:
            rows = db.items(from_key=start, read_opt=ro)
        scan = _live_scan(rows, start, end, reverse)
        self._scans.add(scan)  # close() ends it: a live rocksdict iterator keeps the DB open
        return scan

    # writes

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        check_key(key)
        check_value(value)
        db = self._open_db()
        with self._lock:
            db.put(key, value, self._nosync)
        if sync:
            db.flush_wal(True)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        check_key(key)
        db = self._open_db()
        with self._lock:
            db.delete(key, self._nosync)
        if sync:
            db.flush_wal(True)

    def batch(self) -> RocksBatch:
        return RocksBatch(self)

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        if not isinstance(batch, RocksBatch) or batch._owner is not self:
            raise StoreError("the batch was made by another store")
        if batch._written:
            raise StoreError("a batch is written once")
        db = self._open_db()
        batch._written = True
        try:
            with self._lock:
                db.write(batch._rd, self._nosync)
            if sync:
                db.flush_wal(True)  # SyncWAL, with the GIL released
        except Exception as e:
            raise StoreError(f"write failed: {e}") from e

    # views

    def snapshot(self) -> RocksSnapshot:
        db = self._open_db()
        with self._lock:  # no write between the two: both read at the same sequence
            snap = RocksSnapshot(self.path, db.snapshot(), db.iter())
        self._snapshots.add(snap)
        return snap

    def checkpoint(self, path: str | Path) -> None:
        target = Path(path)
        if target.exists():
            raise StoreError(f"checkpoint target {target} exists")
        if not target.parent.is_dir():
            raise StoreError(f"checkpoint parent {target.parent} is not a directory")
        db = self._open_db()
        try:
            # The checkpoint flushes the memtable, hard-links the SST files (copies them on
            # another file system), copies MANIFEST/CURRENT/OPTIONS, into `<target>.tmp`
            # renamed to `<target>`. It holds the GIL throughout; flush() releases it, so the
            # memtable (up to write_buffer_bytes) is flushed first, outside the GIL.
            db.flush(True)
            Checkpoint(db).create_checkpoint(str(target))
        except Exception as e:
            raise StoreError(f"checkpoint to {target} failed: {e}") from e
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        db = self._db
        if db is None:
            return
        for snap in list(self._snapshots):
            snap.close()
        for scan in list(self._scans):
            _end(scan)
        self._db = None
        try:
            db.close()
        except Exception as e:  # e.g. "Writer has previous error" after a full disk
            # The handle is gone either way (rocksdict drops it); what did not reach the disk
            # is in the log, which is the ground truth.
            raise StoreError(f"closing {self.path}: {e}") from e
        finally:
            del db

    # for measurements

    def property_int(self, name: str) -> int | None:
        return self._open_db().property_int_value(name)


class RocksSnapshot(Snapshot):
    """A rocksdict Snapshot (point reads) plus one raw iterator made at the same instant
    (scans): see the module docstring for why."""

    def __init__(self, path: Path, snap: _RdSnapshot, it: RdictIter) -> None:
        self._path = path
        self._snap: _RdSnapshot | None = snap
        self._it: RdictIter | None = it
        self._owner: object | None = None  # the scan the iterator is positioned for
        self._lock = threading.Lock()
        self._scans: weakref.WeakSet[_Scan] = weakref.WeakSet()

    def _iter(self) -> RdictIter:
        it = self._it
        if it is None:
            raise StoreClosedError(f"snapshot of {self._path} is closed")
        return it

    def get(self, key: bytes) -> bytes | None:
        snap = self._snap
        if snap is None:
            raise StoreClosedError(f"snapshot of {self._path} is closed")
        check_key(key)
        try:
            value: bytes = snap[key]
        except Exception as e:
            if e.args == ("key not found",):
                return None
            raise StoreError(f"snapshot read failed: {e}") from e
        return value

    def iterate(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._iter()
        if end is not None and end <= start:
            return iter(())
        scan = self._scan(start, end, reverse)
        self._scans.add(scan)
        return scan

    def _scan(self, start: bytes, end: bytes | None, reverse: bool) -> _Scan:
        """The rows; each step under the lock, so that scans of this snapshot from several
        threads do not move the iterator under each other between positioning and reading.
        (Inlined: this loop is the snapshot's scan speed.)"""
        me = object()
        lock = self._lock
        key: bytes | None = None
        try:
            while True:
                with lock:
                    it = self._it
                    if it is None:
                        raise StoreClosedError(f"snapshot of {self._path} is closed")
                    try:
                        if self._owner is me:
                            it.prev() if reverse else it.next()
                        else:  # first step, or another scan moved the iterator
                            self._owner = me
                            self._position(it, key, start, end, reverse)
                        if not it.valid():
                            it.status()  # raises if the iterator stopped on an error
                            return
                        key = it.key()
                        if (key < start) if reverse else (end is not None and key >= end):
                            return
                        value: bytes = it.value()
                    except StoreError:
                        raise
                    except Exception as e:
                        raise StoreError(f"snapshot scan failed: {e}") from e
                yield key, value
        finally:
            if self._owner is me:
                self._owner = None

    @staticmethod
    def _position(it: RdictIter, last: bytes | None, start: bytes, end: bytes | None,
                  reverse: bool) -> None:
        if last is not None:
            it.seek(last)  # the view is fixed: `last` is still there
            it.prev() if reverse else it.next()
        elif not reverse:
            it.seek(start)
        elif end is None:
            it.seek_to_last()
        else:
            it.seek_for_prev(end)
            if it.valid() and it.key() == end:
                it.prev()

    def close(self) -> None:
        for scan in list(self._scans):
            _end(scan)
        self._snap = None  # dropping them releases the RocksDB snapshot and iterator
        self._it = None
