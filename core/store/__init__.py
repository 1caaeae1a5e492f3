"""The partition store: one partition's state tables as ordered byte keys on disk.

`open_store(path, engine)` opens (or creates) a store; the interface is `rstq.core.store.api`,
the key layout `rstq.core.store.keys`. Engines: "rocksdb" (rocksdict, the default) and "lmdb".
"""

from __future__ import annotations

from pathlib import Path

from rstq.core.store.api import (
    MAX_KEY_SIZE,
    PartitionStore,
    ReadView,
    Snapshot,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
    prefix_end,
)

__all__ = [
    "ENGINES",
    "MAX_KEY_SIZE",
    "PartitionStore",
    "ReadView",
    "Snapshot",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "WriteBatch",
    "detect_engine",
    "open_store",
    "prefix_end",
]

ENGINES = ("rocksdb", "lmdb")


def detect_engine(path: str | Path) -> str | None:
    """The engine whose files are in `path`, or None (missing or empty directory)."""
    p = Path(path)
    if (p / "data.mdb").exists():
        return "lmdb"
    if (p / "CURRENT").exists():
        return "rocksdb"
    return None


def open_store(
    path: str | Path,
    engine: str | None = None,
    *,
    cache_bytes: int | None = None,
    map_size: int | None = None,
) -> PartitionStore:
    """Open or create the store in directory `path`.

    `engine` None: the engine of the files found there, RocksDB for a new store. A store is
    never opened with the other engine (StoreError). `cache_bytes`: RocksDB block cache
    (LMDB reads through the OS page cache); `map_size`: LMDB's map (address space, grown when
    full).
    """
    found = detect_engine(path)
    if engine is None:
        engine = found or "rocksdb"
    if engine not in ENGINES:
        raise ValueError(f"unknown store engine {engine!r} (one of {', '.join(ENGINES)})")
    if found is not None and found != engine:
        raise StoreError(f"{path} holds a {found} store, not {engine}")
    if engine == "rocksdb":
        from rstq.core.store.rocks import DEFAULT_CACHE_BYTES, RocksStore

        return RocksStore(path, cache_bytes=cache_bytes or DEFAULT_CACHE_BYTES)
    from rstq.core.store.lmdb_store import DEFAULT_MAP_SIZE, LmdbStore

    return LmdbStore(path, map_size=map_size or DEFAULT_MAP_SIZE)
