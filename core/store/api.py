"""The partition-store interface: one partition's ordered byte-key store on disk.

What `apply` and the SQL layer will need from the store, and nothing more: point reads, writes
committed atomically in batches (optionally fsynced), ordered range scans, a consistent read
view that later writes do not change, and a checkpoint that is an openable copy. Two engines
implement it (`rstq.core.store.rocks`: RocksDB through rocksdict; `rstq.core.store.lmdb_store`:
LMDB); `rstq.core.store.open_store` picks one. Keys and values are `bytes`; their layout per
table is `rstq.core.store.keys`.

The contract, the same for both engines (tests/core/test_store.py runs it on each):

- Keys are 1..`MAX_KEY_SIZE` bytes (LMDB's compile-time limit, enforced for RocksDB too, so
  code written against one engine runs on the other). Values are any length, empty included.
- `write(batch)` applies every put and delete of the batch or none of them, also across a
  crash of the process (SIGKILL): a reopened store shows the batch whole or not at all.
  Operations apply in the order they were added (a put then a delete of one key deletes it).
- Durability: without `sync` a write returned survives a crash of the process (the engine
  has handed it to the OS), not necessarily of the OS or the machine; with `sync=True` it
  and every write before it survive those too (fsync).
- `iterate(start, end)` yields `(key, value)` with `start <= key < end` in byte order
  (`end=None`: to the last key), or the same rows in reverse order with `reverse=True`. A scan
  sees one consistent state of the store: writes made while it runs are not mixed in.
- `snapshot()` is a read view (get and iterate) of the store as it was when it was taken,
  unaffected by later writes, until `close()`. Snapshots pin old data (RocksDB: files and
  versions; LMDB: pages that cannot be reused): keep them short-lived.
- `checkpoint(path)` writes a complete store to the new directory `path` (which must not
  exist; its parent must), openable with `open_store(path, engine)` and independent of later
  writes to this store. It is written under a temporary name and renamed, so a crash leaves
  no half checkpoint under `path`.
- A store directory is owned by one open store at a time: a second open, from this process or
  another, raises `StoreLockedError` (released when the owner closes or dies).
- One writer is expected (the partition's processor); writes from several threads are
  serialized. Reads, scans and snapshots may be used from any thread, several at once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

#: Largest key (bytes) the store accepts. RocksDB has no practical limit; LMDB's
#: compile-time one is 511 bytes (`LMDB_MAX_KEY_SIZE`), checked by that engine alone, so long
#: object keys and state names persist on the default engine.
MAX_KEY_SIZE = 64 * 1024
LMDB_MAX_KEY_SIZE = 511


class StoreError(Exception):
    """Base class of store failures."""


class StoreLockedError(StoreError):
    """The store directory is already open (in this process or another)."""


class StoreClosedError(StoreError):
    """The store (or snapshot) was used after close()."""


def check_key(key: bytes) -> None:
    if type(key) is not bytes or not 0 < len(key) <= MAX_KEY_SIZE:
        bad_key(key)


def bad_key(key: object) -> None:
    """Raise the error for a key `check_key` refuses (bytes subclasses and buffers too)."""
    if type(key) is not bytes:
        raise TypeError(f"store keys are bytes, not {type(key).__name__}")
    raise ValueError(f"store key must be 1..{MAX_KEY_SIZE} bytes, got {len(key)}")


def check_value(value: bytes) -> None:
    if type(value) is not bytes:
        raise TypeError(f"store values are bytes, not {type(value).__name__}")


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no such key,
    the prefix is all 0xFF bytes or empty)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class ReadView(abc.ABC):
    """Point reads and ordered scans: the live store or a snapshot of it."""

    @abc.abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""

    @abc.abstractmethod
    def iterate(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Rows with `start <= key < end` (end None: unbounded) in key order, or reversed."""

    def iterate_prefix(
        self, prefix: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Rows whose key starts with `prefix`, in key order (or reversed)."""
        return self.iterate(prefix, prefix_end(prefix), reverse=reverse)


class Snapshot(ReadView):
    """A read view frozen when it was taken. Close it (or use `with`) to release what it pins."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the view; further reads raise StoreClosedError. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class WriteBatch(abc.ABC):
    """Puts and deletes collected for one atomic `PartitionStore.write`. Made by
    `PartitionStore.batch()`, written once, only to the store that made it."""

    @abc.abstractmethod
    def put(self, key: bytes, value: bytes) -> None: ...

    @abc.abstractmethod
    def delete(self, key: bytes) -> None: ...

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of operations added."""


class PartitionStore(ReadView):
    """One partition's store (see the module docstring for the contract)."""

    #: "rocksdb" or "lmdb"
    engine: str
    path: Path
    #: the longest key this engine takes (LMDB: 511 bytes)
    max_key_size: int = MAX_KEY_SIZE

    @abc.abstractmethod
    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        """Store one row (a batch of one)."""

    @abc.abstractmethod
    def delete(self, key: bytes, *, sync: bool = False) -> None:
        """Remove one row if present (a batch of one)."""

    @abc.abstractmethod
    def batch(self) -> WriteBatch:
        """An empty batch for `write`."""

    @abc.abstractmethod
    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        """Apply the batch atomically; with `sync`, durable on return (fsync). A batch is
        written once: reusing it raises StoreError."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """A consistent read view of everything written so far."""

    @abc.abstractmethod
    def checkpoint(self, path: str | Path) -> None:
        """Write an openable copy of the store (as of now) to the new directory `path`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the store (and every snapshot still open); releases the directory lock.
        Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
