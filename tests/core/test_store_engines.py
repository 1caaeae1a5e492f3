"""Engine-specific behaviour of the partition store, and pins of the library gaps the engines
work around (if one of these starts failing, the library changed: revisit the workaround)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rocksdict import Options, Rdict, ReadOptions
from rstq.core.store import StoreError
from rstq.core.store.lmdb_store import LmdbStore
from rstq.core.store.rocks import RocksStore


def test_lmdb_map_grows_when_full(tmp_path: Path) -> None:
    with LmdbStore(tmp_path / "s", map_size=1 << 20) as store:
        for n in range(8):
            batch = store.batch()
            for i in range(1000):
                batch.put(b"%d/%04d" % (n, i), b"x" * 500)
            store.write(batch)
        assert len(list(store.iterate())) == 8000


def test_lmdb_batch_failing_midway_leaves_nothing(tmp_path: Path) -> None:
    """A batch that runs out of map space part-way (growing is impossible while a snapshot
    is open) raises, and none of its rows are written."""
    with LmdbStore(tmp_path / "s", map_size=1 << 20) as store:
        store.put(b"before", b"1")
        snap = store.snapshot()
        batch = store.batch()
        for i in range(5000):
            batch.put(b"k%05d" % i, b"x" * 500)
        with pytest.raises(StoreError, match="map full"):
            store.write(batch)
        assert list(store.iterate()) == [(b"before", b"1")]
        snap.close()
        store.put(b"after", b"2")  # the store is usable afterwards
        assert store.get(b"after") == b"2"


def rdict(path: Path) -> Rdict:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    return Rdict(str(path), opts)


def test_pin_rocksdict_snapshot_iteration_reads_the_live_db(tmp_path: Path) -> None:
    """rocksdict 0.3.29: Snapshot.items() ignores the snapshot (RocksSnapshot scans through
    an iterator made at snapshot time instead); Snapshot[key] honours it."""
    db = rdict(tmp_path / "db")
    db.put(b"k", b"old")
    snap = db.snapshot()
    db.put(b"k", b"new")
    assert snap[b"k"] == b"old"
    assert list(snap.items()) == [(b"k", b"new")]  # the bug
    del snap
    db.close()


def test_pin_rocksdict_lower_bound_sets_the_upper_bound(tmp_path: Path) -> None:
    """rocksdict 0.3.29: ReadOptions.set_iterate_lower_bound overwrites the upper bound
    (RocksStore never calls it: scans seek to their start)."""
    db = rdict(tmp_path / "db")
    for k in (b"a", b"b", b"c", b"d"):
        db.put(k, b"")
    ro = ReadOptions()
    ro.set_iterate_upper_bound(b"d")
    ro.set_iterate_lower_bound(b"b")
    assert [k for k, _ in db.items(read_opt=ro)] == [b"a"]  # bounds [b, d) would give b, c
    db.close()


def test_rocks_reopen_keeps_our_cache(tmp_path: Path) -> None:
    """rocksdict takes an existing DB's column-family options from its OPTIONS file (with an
    8 MB block cache) unless column_families is passed: RocksStore passes it."""
    for _ in range(2):
        with RocksStore(tmp_path / "s", cache_bytes=48 << 20) as store:
            store.put(b"k", b"v")
            assert store.property_int("rocksdb.block-cache-capacity") == 48 << 20


def test_pin_rocksdict_reopen_drops_the_table_options(tmp_path: Path) -> None:
    from rocksdict import BlockBasedOptions, Cache

    def opts() -> Options:
        o = Options(raw_mode=True)
        o.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(48 << 20))
        o.set_block_based_table_factory(table)
        return o

    capacity = []
    for _ in range(2):
        db = Rdict(str(tmp_path / "db"), opts())
        capacity.append(db.property_int_value("rocksdb.block-cache-capacity"))
        db.close()
    assert capacity == [48 << 20, 8 << 20]  # the bug: the reopened DB has an 8 MB cache
