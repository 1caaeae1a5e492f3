"""The partition-store contract (rstq.core.store.api), the same suite on each engine."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rstq.core.store import (
    PartitionStore,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    detect_engine,
    open_store,
)

CHILD = Path(__file__).with_name("store_child.py")
ROWS = 5000  # store_child.ROWS

pytestmark = pytest.mark.parametrize("engine", ["rocksdb", "lmdb"])


@pytest.fixture
def store(tmp_path: Path, engine: str) -> Iterator[PartitionStore]:
    s = open_store(tmp_path / "store", engine)
    yield s
    s.close()


def rows(view: PartitionStore | object, *args: object, **kw: object) -> list[tuple[bytes, bytes]]:
    return list(view.iterate(*args, **kw))  # type: ignore[attr-defined]


# round trips


def test_put_get_delete(store: PartitionStore, engine: str) -> None:
    assert store.engine == engine
    assert store.get(b"k") is None
    store.put(b"k", b"v")
    store.put(b"empty", b"")
    big = os.urandom(1 << 20)
    store.put(b"big", big)
    assert store.get(b"k") == b"v"
    assert store.get(b"empty") == b""
    assert store.get(b"big") == big
    store.put(b"k", b"v2", sync=True)
    assert store.get(b"k") == b"v2"
    store.delete(b"k")
    store.delete(b"never-there")
    assert store.get(b"k") is None
    top = b"\xff" * store.max_key_size
    store.put(top, b"x")
    assert store.get(top) == b"x"
    assert rows(store, b"\xff") == [(top, b"x")]


def test_bad_keys_and_values(store: PartitionStore) -> None:
    for bad in (b"", b"x" * (store.max_key_size + 1)):
        with pytest.raises(ValueError):
            store.put(bad, b"v")
        with pytest.raises(ValueError):
            store.batch().delete(bad)
    with pytest.raises(TypeError):
        store.put("str", b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put(b"k", bytearray(b"v"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.get(memoryview(b"k"))  # type: ignore[arg-type]


# batches


def test_batch_applies_in_order(store: PartitionStore) -> None:
    store.put(b"a", b"old")
    batch = store.batch()
    batch.put(b"a", b"1")
    batch.delete(b"a")  # put then delete: gone
    batch.delete(b"b")
    batch.put(b"b", b"2")  # delete then put: there
    batch.put(b"c", b"3")
    batch.put(b"c", b"4")  # last put wins
    assert len(batch) == 6
    assert store.get(b"b") is None  # nothing before write
    store.write(batch, sync=True)
    assert rows(store) == [(b"b", b"2"), (b"c", b"4")]
    empty = store.batch()
    store.write(empty)
    assert len(empty) == 0


def test_batch_is_written_once_to_its_store(store: PartitionStore, tmp_path: Path,
                                            engine: str) -> None:
    batch = store.batch()
    batch.put(b"a", b"1")
    store.write(batch)
    with pytest.raises(StoreError):
        store.write(batch)
    with open_store(tmp_path / "other", engine) as other:
        with pytest.raises(StoreError):
            other.write(store.batch())


def run_child(directory: Path, engine: str, mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), engine, mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )


def kill_after_line(proc: subprocess.Popen[str], expect: str | None = None,
                    delay: float = 0.0) -> list[str]:
    """Read lines until `expect` (or the first line), then SIGKILL (`delay` s later); all
    lines read."""
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child ended early: {proc.stderr.read()}")
        lines.append(line.strip())
        if expect is None or lines[-1] == expect:
            break
    if delay:
        time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    lines.extend(x.strip() for x in proc.stdout.read().splitlines())
    proc.stdout.close()
    proc.stderr.close()
    if proc.stdin is not None:
        proc.stdin.close()
    return lines


@pytest.mark.parametrize("mode", ["before", "after-nosync", "after-sync"])
def test_batch_all_or_nothing_across_sigkill(tmp_path: Path, engine: str, mode: str) -> None:
    """Killed before write: nothing; killed right after write returned: everything, with
    or without sync (a process crash, not an OS crash)."""
    directory = tmp_path / "store"
    kill_after_line(run_child(directory, engine, mode))
    with open_store(directory, engine) as store:
        found = rows(store)
    assert len(found) == (0 if mode == "before" else ROWS)


@pytest.mark.parametrize("delay_ms", [0, 0.5, 1, 2, 4])
def test_batches_whole_when_killed_mid_write(tmp_path: Path, engine: str,
                                             delay_ms: float) -> None:
    """A child writing 5000-row batches back to back is killed `delay_ms` after it starts
    writing its fourth, so the kills land at spread points in and around that write (a write
    takes a few ms). Whatever the point: every batch is there whole or not at all, the
    acknowledged ones are there, and they form a prefix. (Checked to fail in most of these
    runs with one LMDB transaction per row instead of per batch.)"""
    directory = tmp_path / "store"
    lines = kill_after_line(run_child(directory, engine, "loop"), "w3", delay_ms / 1000)
    acked = [int(x) for x in lines if not x.startswith("w")]
    with open_store(directory, engine) as store:
        per_batch: dict[int, int] = {}
        for key, _ in store.iterate(b"b", b"c"):
            n = int(key[1:7])
            per_batch[n] = per_batch.get(n, 0) + 1
        last = store.get(b"last")
    assert set(per_batch.values()) == {ROWS}, "a batch was applied in part"
    assert sorted(per_batch) == list(range(len(per_batch)))
    assert len(per_batch) >= len(acked) >= 3
    assert last == b"%d" % (len(per_batch) - 1)


# iteration


def model_rows(model: dict[bytes, bytes], start: bytes, end: bytes | None,
               reverse: bool) -> list[tuple[bytes, bytes]]:
    out = sorted((k, v) for k, v in model.items() if k >= start and (end is None or k < end))
    return out[::-1] if reverse else out


def test_iteration_order_and_bounds(store: PartitionStore) -> None:
    rng = random.Random(14)
    alphabet = b"\x00\x01\x7f\x80\xfe\xffab"
    model: dict[bytes, bytes] = {}
    batch = store.batch()
    for _ in range(600):
        k = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 6)))
        v = rng.randbytes(rng.randrange(0, 20))
        model[k] = v
        batch.put(k, v)
    store.write(batch)
    probes = [b"", b"\x00", b"\xff", b"\xff\xff\xff\xff\xff\xff", b"a", b"\x80\x00"]
    probes += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 4)))
               for _ in range(40)]
    for _ in range(150):
        start = rng.choice(probes)
        end = rng.choice(probes + [None])  # type: ignore[list-item]
        for reverse in (False, True):
            assert rows(store, start, end, reverse=reverse) == model_rows(model, start, end,
                                                                          reverse)
    for p in (b"a", b"\xff", b"\xff\xff", b"\x00"):
        for reverse in (False, True):
            want = [kv for kv in model_rows(model, b"", None, reverse) if kv[0].startswith(p)]
            assert list(store.iterate_prefix(p, reverse=reverse)) == want
    assert rows(store, b"b", b"a") == []
    assert rows(store, b"a", b"a") == []


def test_scan_sees_one_state(store: PartitionStore) -> None:
    """Writes made while a scan runs do not show up in it."""
    for i in range(10):
        store.put(b"k%d" % i, b"old")
    scan = store.iterate(b"k")
    assert next(scan) == (b"k0", b"old")
    store.put(b"k5", b"new")
    store.delete(b"k7")
    store.put(b"k55", b"added")
    assert [k for k, _ in scan] == [b"k%d" % i for i in range(1, 10)]
    assert store.get(b"k7") is None


# snapshots


def test_snapshot_isolation(store: PartitionStore) -> None:
    for i in range(100):
        store.put(b"k%03d" % i, b"old")
    snap = store.snapshot()
    batch = store.batch()
    for i in range(0, 100, 2):
        batch.delete(b"k%03d" % i)
    batch.put(b"k001", b"new")
    batch.put(b"k100", b"added")
    store.write(batch, sync=True)
    store.checkpoint(store.path.parent / "cp")  # flushes RocksDB's memtable: files change
    want = [(b"k%03d" % i, b"old") for i in range(100)]
    assert snap.get(b"k000") == b"old"
    assert snap.get(b"k001") == b"old"
    assert snap.get(b"k100") is None
    assert rows(snap) == want
    assert rows(snap, b"k010", b"k020", reverse=True) == want[10:20][::-1]
    assert list(snap.iterate_prefix(b"k09")) == want[90:]
    assert store.get(b"k001") == b"new"
    assert store.get(b"k000") is None
    assert len(rows(store)) == 51
    snap.close()
    snap.close()
    with pytest.raises(StoreClosedError):
        snap.get(b"k000")
    with pytest.raises(StoreClosedError):
        rows(snap)


def test_snapshot_scans_nest_and_interleave(store: PartitionStore) -> None:
    for i in range(20):
        store.put(b"a%02d" % i, b"%d" % i)
        store.put(b"b%02d" % i, b"%d" % i)
    with store.snapshot() as snap:
        store.put(b"a05", b"changed")
        store.delete(b"b10")
        pairs = []
        for ka, _ in snap.iterate(b"a", b"b"):
            inner = snap.iterate(b"b", reverse=True)
            pairs.append((ka, next(inner)[0], snap.get(b"b10")))
            assert len(list(inner)) == 19
        assert pairs == [(b"a%02d" % i, b"b19", b"10") for i in range(20)]
        fwd, back = snap.iterate(), snap.iterate(reverse=True)
        zipped = [(next(fwd)[0], next(back)[0]) for _ in range(40)]
        assert zipped[0] == (b"a00", b"b19") and zipped[-1] == (b"b19", b"a00")
        assert snap.get(b"a05") == b"5"


def test_snapshot_read_from_another_thread(store: PartitionStore) -> None:
    store.put(b"k", b"old")
    snap = store.snapshot()
    store.put(b"k", b"new")
    got: list[object] = []
    t = threading.Thread(target=lambda: got.extend([snap.get(b"k"), rows(snap)]))
    t.start()
    t.join()
    assert got == [b"old", [(b"k", b"old")]]
    snap.close()


def test_snapshot_scanned_by_threads_at_once(store: PartitionStore) -> None:
    batch = store.batch()
    for i in range(3000):
        batch.put(b"k%05d" % i, b"%d" % i)
    store.write(batch)
    want = rows(store)
    with store.snapshot() as snap:
        store.put(b"k00001", b"changed")
        results: list[list[tuple[bytes, bytes]]] = []
        threads = [threading.Thread(target=lambda r=r: results.append(
            rows(snap, reverse=r)[::-1] if r else rows(snap))) for r in (False, True) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [want] * 6


# checkpoints


def test_checkpoint_opens_with_the_data_and_is_independent(store: PartitionStore,
                                                           tmp_path: Path,
                                                           engine: str) -> None:
    batch = store.batch()
    for i in range(5000):
        batch.put(b"k%05d" % i, b"v%d" % i)
    store.write(batch)
    before = rows(store)
    cp = tmp_path / "cp"
    store.checkpoint(cp)
    assert detect_engine(cp) == engine
    store.put(b"k00000", b"changed")
    store.put(b"later", b"x")
    with open_store(cp, engine) as copy:
        assert rows(copy) == before
        copy.put(b"only-in-copy", b"y")
    assert store.get(b"only-in-copy") is None
    assert store.get(b"k00000") == b"changed"
    with pytest.raises(StoreError):
        store.checkpoint(cp)  # exists
    with pytest.raises(StoreError):
        store.checkpoint(tmp_path / "no" / "such" / "parent")
    with open_store(cp, engine) as copy:  # reopened: the copy's own write kept
        assert copy.get(b"only-in-copy") == b"y"
        assert copy.get(b"later") is None
    assert not (tmp_path / "cp.tmp").exists()


# lifecycle


def test_reopen_keeps_data(tmp_path: Path, engine: str) -> None:
    directory = tmp_path / "store"
    with open_store(directory, engine) as s:
        s.put(b"a", b"1")
        batch = s.batch()
        batch.put(b"b", b"2")
        s.write(batch)  # no sync: close makes it durable
        unfinished = s.iterate()
        next(unfinished)  # scans left open do not keep the store open
        snap = s.snapshot()
        snap_scan = snap.iterate()
        next(snap_scan)
    with pytest.raises(StoreClosedError):
        snap.get(b"a")
    assert list(unfinished) == [] and list(snap_scan) == []  # ended by close()
    with pytest.raises(StoreClosedError):
        s.get(b"a")
    with pytest.raises(StoreClosedError):
        s.put(b"a", b"x")
    s.close()  # idempotent
    with open_store(directory) as s:  # engine detected
        assert s.engine == engine
        assert rows(s) == [(b"a", b"1"), (b"b", b"2")]


def test_engine_mismatch_refused(tmp_path: Path, engine: str) -> None:
    other = "lmdb" if engine == "rocksdb" else "rocksdb"
    with open_store(tmp_path / "s", engine):
        pass
    with pytest.raises(StoreError, match=f"holds a {engine} store"):
        open_store(tmp_path / "s", other)
    with pytest.raises(ValueError):
        open_store(tmp_path / "t", "sqlite")


def test_one_owner_per_directory(tmp_path: Path, engine: str) -> None:
    """A second open is refused, from this process and from another; the lock goes with
    its owner (closed or killed)."""
    directory = tmp_path / "store"
    with open_store(directory, engine) as s:
        s.put(b"k", b"v")
        with pytest.raises(StoreLockedError):
            open_store(directory, engine)
    proc = run_child(directory, engine, "hold")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    with pytest.raises(StoreLockedError):
        open_store(directory, engine)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for f in (proc.stdout, proc.stderr, proc.stdin):
        if f is not None:
            f.close()
    with open_store(directory, engine) as s:
        assert s.get(b"k") == b"v"
