"""The partition store on LMDB (py-lmdb): one B+tree in a memory-mapped file, MVCC readers.

- Every `write` is one write transaction; a failing operation (or a crash) aborts it whole.
- The environment is opened without fsync at commit (`sync=False`); `sync=True` commits and
  then `env.sync(True)`. LMDB's own caveat applies to unsynced commits: after an OS crash (not
  a process crash) the last transactions may be lost and, on a file system that reorders
  writes, the file may be corrupt (LMDB docs, MDB_NOSYNC). RocksDB recovers a consistent
  prefix from its checksummed WAL in that case.
- Memory: the data file is mapped (`map_size` is address space, not RAM); what is resident is
  the OS page cache, which the kernel reclaims, so RSS counts touched pages as shared memory.
- `map_size` is a hard ceiling of the file: a write hitting it doubles the map and retries
  (possible only while no snapshot is open, LMDB's rule).
- A snapshot is a read transaction: gets and any number of concurrent cursors. It holds a
  reader slot (`max_readers`) and keeps the pages it sees from reuse (the file grows while it
  lives).
- LMDB itself allows several processes on one environment; this store does not (one owner,
  like RocksDB): an exclusive `flock` on `rstq-store.lock` in the directory refuses a second
  open.
- `checkpoint` is `env.copy(compact=True)`: a full, compacted copy of the live pages (O(size),
  not incremental), fsynced and renamed into place.
"""

from __future__ import annotations

import fcntl
import inspect
import os
import shutil
import threading
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path

import lmdb
from rstq.core.store.api import (
    LMDB_MAX_KEY_SIZE,
    PartitionStore,
    Snapshot,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
    bad_key,
    check_value,
)


def _check_key(key: bytes) -> None:
    """LMDB's own key limit (511 bytes), below the interface's."""
    if type(key) is not bytes or not 0 < len(key) <= LMDB_MAX_KEY_SIZE:
        if type(key) is bytes and len(key) > LMDB_MAX_KEY_SIZE:
            raise ValueError(f"LMDB keys are at most {LMDB_MAX_KEY_SIZE} bytes, got {len(key)}")
        bad_key(key)

_Scan = Generator[tuple[bytes, bytes], None, None]

DEFAULT_MAP_SIZE = 64 << 30  # address space; the file grows with the data
LOCK_FILE = "rstq-store.lock"


class LmdbBatch(WriteBatch):
    __slots__ = ("ops", "_owner", "_written")

    def __init__(self, owner: LmdbStore) -> None:
        self.ops: list[tuple[bytes, bytes | None]] = []
        self._owner = owner
        self._written = False

    def put(self, key: bytes, value: bytes) -> None:
        # the checks inlined: this is the hot path of apply
        if type(key) is not bytes or not 0 < len(key) <= LMDB_MAX_KEY_SIZE:
            bad_key(key)
        if type(value) is not bytes:
            check_value(value)
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        _check_key(key)
        self.ops.append((key, None))

    def __len__(self) -> int:
        return len(self.ops)


def _scan(
    txn: lmdb.Transaction[bytes], start: bytes, end: bytes | None, reverse: bool,
    owned: bool,
) -> _Scan:
    """Rows of one read transaction (aborted at the end when `owned`)."""
    try:
        cur = txn.cursor()
        if not reverse:
            if not (cur.set_range(start) if start else cur.first()):
                return
            for key, value in cur.iternext():
                if end is not None and key >= end:
                    return
                yield key, value
            return
        if end is None:
            found = cur.last()
        elif cur.set_range(end):  # first key >= end: step back
            found = cur.prev()
        else:
            found = cur.last()
        if not found:
            return
        for key, value in cur.iterprev():
            if key < start:
                return
            yield key, value
    finally:
        if owned:
            txn.abort()


def _end(scan: _Scan) -> None:
    try:
        scan.close()
    except ValueError:  # running in another thread right now
        pass


class LmdbStore(PartitionStore):
    engine = "lmdb"
    max_key_size = LMDB_MAX_KEY_SIZE

    def __init__(
        self,
        path: str | Path,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_readers: int = 256,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = os.open(
            self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self._lock_fd)
            raise StoreLockedError(f"{self.path} is open elsewhere") from e
        try:
            self._env: lmdb.Environment | None = lmdb.open(
                str(self.path),
                map_size=map_size,
                subdir=True,
                sync=False,  # fsync per write(sync=True) only, by env.sync
                metasync=False,
                readahead=False,  # random reads of a file larger than RAM
                max_readers=max_readers,
                max_spare_txns=1,
                lock=True,
            )
        except lmdb.Error as e:
            os.close(self._lock_fd)
            raise StoreError(f"cannot open LMDB store {self.path}: {e}") from e
        self._write_lock = threading.Lock()
        self._snapshots: weakref.WeakSet[LmdbSnapshot] = weakref.WeakSet()
        self._scans: weakref.WeakSet[_Scan] = weakref.WeakSet()

    def _open_env(self) -> lmdb.Environment:
        env = self._env
        if env is None:
            raise StoreClosedError(f"store {self.path} is closed")
        return env

    # reads

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        with self._open_env().begin() as txn:
            return txn.get(key)

    def iterate(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        env = self._open_env()
        if end is not None and end <= start:
            return iter(())
        scan = _scan(env.begin(), start, end, reverse, owned=True)  # the view: now
        self._scans.add(scan)
        return scan

    # writes

    def _commit(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        env = self._open_env()
        with self._write_lock:
            while True:
                try:
                    with env.begin(write=True) as txn:  # commit on return, abort on raise
                        for key, value in ops:
                            if value is None:
                                txn.delete(key)
                            else:
                                txn.put(key, value)
                    break
                except lmdb.MapFullError as e:
                    if self._readers_open():
                        raise StoreError(f"LMDB map full ({env.info()['map_size']} B) "
                                         "while readers are open") from e
                    env.set_mapsize(env.info()["map_size"] * 2)
                except lmdb.Error as e:
                    raise StoreError(f"write failed: {e}") from e
            if sync:
                env.sync(True)

    def _readers_open(self) -> bool:
        """A snapshot or unfinished scan holds a read transaction (the map cannot grow)."""
        return any(s.is_open for s in self._snapshots) or any(
            inspect.getgeneratorstate(s) != inspect.GEN_CLOSED for s in self._scans
        )

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        _check_key(key)
        check_value(value)
        self._commit([(key, value)], sync)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        _check_key(key)
        self._commit([(key, None)], sync)

    def batch(self) -> LmdbBatch:
        return LmdbBatch(self)

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        if not isinstance(batch, LmdbBatch) or batch._owner is not self:
            raise StoreError("the batch was made by another store")
        if batch._written:
            raise StoreError("a batch is written once")
        batch._written = True
        self._commit(batch.ops, sync)

    # views

    def snapshot(self) -> LmdbSnapshot:
        snap = LmdbSnapshot(self.path, self._open_env().begin())
        self._snapshots.add(snap)
        return snap

    def checkpoint(self, path: str | Path) -> None:
        target = Path(path)
        if target.exists():
            raise StoreError(f"checkpoint target {target} exists")
        if not target.parent.is_dir():
            raise StoreError(f"checkpoint parent {target.parent} is not a directory")
        env = self._open_env()
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            env.copy(str(tmp), compact=True)
            fd = os.open(tmp / "data.mdb", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, target)
        except (lmdb.Error, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"checkpoint to {target} failed: {e}") from e
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        env = self._env
        if env is None:
            return
        for snap in list(self._snapshots):
            snap.close()
        for scan in list(self._scans):
            _end(scan)
        self._env = None
        env.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


class LmdbSnapshot(Snapshot):
    """One read transaction."""

    def __init__(self, path: Path, txn: lmdb.Transaction[bytes]) -> None:
        self._path = path
        self._txn: lmdb.Transaction[bytes] | None = txn
        self._scans: weakref.WeakSet[_Scan] = weakref.WeakSet()

    @property
    def is_open(self) -> bool:
        return self._txn is not None

    def _open_txn(self) -> lmdb.Transaction[bytes]:
        txn = self._txn
        if txn is None:
            raise StoreClosedError(f"snapshot of {self._path} is closed")
        return txn

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        return self._open_txn().get(key)

    def iterate(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        txn = self._open_txn()
        if end is not None and end <= start:
            return iter(())
        scan = _scan(txn, start, end, reverse, owned=False)
        self._scans.add(scan)
        return scan

    def close(self) -> None:
        txn = self._txn
        if txn is None:
            return
        for scan in list(self._scans):
            _end(scan)
        self._txn = None
        txn.abort()
