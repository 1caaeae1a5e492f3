"""Completed invocations on disk: the invocation cache, history segments, expiry, restart.

Driven through `StorePersistence` and `apply` (no server): every invocation must read back
exactly as a plain in-memory replay of the same commands has it, wherever it lives (resident,
hot store, a segment), before and after a restart; memory holds live work and the cache only.
"""

from __future__ import annotations

from pathlib import Path

from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.model import COMPLETED, PartitionState
from rstq.core.persistence import StorePersistence
from rstq.core.store import keys
from rstq.core.store.history import History

from .builders import T0, inv_id_on, invoke, output

P = 4
DAY = 86_400_000


class Run:
    def __init__(self, directory: Path, **kw: int) -> None:
        self.directory = directory
        self.kw = kw
        self.now = T0
        self.lsn = 0
        self.log: list[bytes] = []
        self.open()
        self.reference = PartitionState(0, P)  # the same commands, all in memory

    def open(self) -> None:
        self.p = StorePersistence(self.directory, **self.kw)  # type: ignore[arg-type]
        self.state = self.p.recover(0, P, self.lsn)

    def restart(self) -> None:
        self.p.close()
        self.open()

    def __call__(self, cmd: c.Command) -> None:
        self.now += 1
        self.lsn += 1
        env = c.decode(c.encode(self.now, cmd))
        apply(self.state, env, self.lsn)
        apply(self.reference, env, self.lsn)
        self.p.applied(self.state)

    def complete(self, n: int, retention: int = DAY, first: int = 0) -> list[str]:
        ids = [inv_id_on(0, P, n=first + i) for i in range(n)]
        for i in ids:
            self(invoke(i, completion_retention_ms=retention, journal_retention_ms=retention))
            self(output(i, 1, b'"done"'))
            self(c.End(i, 1))
        return ids

    def move(self) -> str:
        move = self.p.start_move(self.state)
        assert move is not None
        self.p.build_move(move)
        self.p.commit_move(move, self.state)
        return move.segment_id

    def same(self, ids: list[str]) -> None:
        for i in ids:
            assert self.state.invocations.get(i) == self.reference.invocations.get(i), i


def test_completed_invocations_move_to_a_segment_and_read_back(tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=8, cache_size=3)
    ids = r.complete(10)
    table = r.state.invocations
    assert len(table.mem) == 3 and len(table.hot_completed) == 10  # the cache holds 3
    sid = r.move()
    assert not table.hot_completed and r.p.history.segments[sid].meta.rows == 10
    assert all(r.p.store.get(keys.status_key(i)) is None for i in ids)  # hot rows gone
    assert (tmp_path / "history" / f"{sid}.arrow").is_file()
    r.same(ids)
    assert len(table.mem) <= 3 + 1
    assert len(table) == 10
    r.restart()
    assert not r.state.invocations.mem  # nothing live: nothing loaded
    r.same(ids)
    assert r.state.invocations.get(ids[0]).status == COMPLETED


def test_restart_loads_only_live_work(tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=1000, cache_size=0)
    done = r.complete(20)
    live = inv_id_on(0, P, n=100)
    r(invoke(live))
    r.restart()
    assert set(r.state.invocations.mem) == {live}
    assert r.state.invocations.hot_completed == set(done)
    r.same([*done, live])


def test_a_purged_history_row_stays_purged(tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=4, cache_size=0)
    ids = r.complete(4)
    sid = r.move()
    r(c.Purge(ids[1]))
    assert r.state.invocations.get(ids[1]) is None
    assert keys.inv_raw(ids[1]) in r.p.history.tombstones[sid]
    r.restart()
    r.same(ids)
    assert r.state.invocations.get(ids[1]) is None
    assert keys.inv_raw(ids[1]) in r.p.history.tombstones[sid]


def test_touched_during_a_move_stays_hot_and_its_copy_is_void(tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=4, cache_size=0)
    ids = r.complete(4)
    move = r.p.start_move(r.state)
    assert move is not None
    r.p.build_move(move)
    r(c.Purge(ids[0]))  # between the file and the batch that records it
    r.p.commit_move(move, r.state)
    assert keys.inv_raw(ids[0]) in r.p.history.tombstones[move.segment_id]
    r.same(ids)
    r.restart()
    r.same(ids)


def test_expiry_needs_no_timer_and_drops_the_segment_whole(tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=5, cache_size=0)
    ids = r.complete(5, retention=1000)
    assert not r.state.timers
    sid = r.move()
    r.now += 1000
    r(c.Cancel(ids[0]))  # any command: its time is past every retention
    assert all(r.state.invocations.get(i) is None for i in ids)
    r.same(ids)
    r.now += 60_000
    r(c.Cancel(ids[1]))
    assert r.p.drop_expired(r.state.invocations.now) == 1
    assert sid not in r.p.history.segments
    assert r.p.store.get(keys.history_key(ids[2])) is None
    r.restart()
    r.same(ids)
    for _ in range(3):  # files go once no kept checkpoint lists them
        r.p.checkpoint(r.state)
        r(c.Cancel(ids[2]))
    assert not (tmp_path / "history" / f"{sid}.arrow").exists()


def test_an_expired_id_can_be_invoked_again(tmp_path: Path) -> None:
    """Workflow and idempotent ids are derived from their keys: the same id comes back."""
    r = Run(tmp_path, segment_rows=2, cache_size=0)
    ids = r.complete(2, retention=1000)
    r.move()
    r.now += 2000
    again = r.complete(1, retention=DAY)
    assert again == ids[:1]
    r.same(ids)
    r.restart()
    r.same(ids)
    assert r.state.invocations.get(ids[0]).created_at > T0 + 2000


def test_a_crash_before_the_move_is_recorded_leaves_no_file(tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=3, cache_size=0)
    ids = r.complete(3)
    move = r.p.start_move(r.state)
    assert move is not None
    r.p.build_move(move)  # the file exists, the batch never ran
    r.p.abort_move(move, r.state)
    r.restart()
    assert not list((tmp_path / "history").glob("*.arrow"))
    assert r.state.invocations.hot_completed == set(ids)
    r.same(ids)


def test_cold_objects_leave_memory_and_deleted_state_stays_deleted(tmp_path: Path) -> None:
    from .builders import set_state

    r = Run(tmp_path, segment_rows=1000, cache_size=0)
    r.state.kv.cache_size = 1
    objs = []
    for n in range(5):
        key = f"k{n}"
        i = inv_id_on(0, 1, "Obj", key, n)  # keyed ids: partition 0 of 1 is every key
        r.state.partitions = r.reference.partitions = 1
        r(invoke(i, service="Obj", key=key, service_ty="virtual_object",
                 handler_ty="exclusive"))
        r(set_state(i, 1, b"a", b"1"))
        objs.append(("Obj", key))
    assert len(r.state.kv.mem) <= 2
    r(c.StateMutation("Obj", "k0", clear_all=True))  # k0 is cold: loaded, then deleted
    assert r.state.kv.get(("Obj", "k0")) is None and r.reference.kv.get(("Obj", "k0")) is None
    for o in objs:
        assert r.state.kv.get(o) == r.reference.kv.get(o), o
    r.restart()
    assert not r.state.kv.mem  # loaded lazily
    for o in objs:
        assert r.state.kv.get(o) == r.reference.kv.get(o), o


def test_a_quiet_partition_moves_its_few_completed_invocations_after_a_while(
        tmp_path: Path) -> None:
    r = Run(tmp_path, segment_rows=1000, cache_size=0)
    ids = r.complete(3)
    assert r.p.start_move(r.state) is None  # 3 of 1000, just now
    r.now += 300_000
    r(c.Cancel(ids[0]))  # the partition's time moves on
    r.move()
    assert not r.state.invocations.hot_completed
    r.same(ids)


def test_a_store_of_the_previous_format_reads_back(tmp_path: Path) -> None:
    """Status rows written before the journal length led them (the last release's stores)."""
    from rstq.core.model import Invocation, JournalEntry
    from rstq.core.store import open_store, records
    from rstq.core.store import state as stored

    i = inv_id_on(0, P, n=3)
    inv = Invocation(i, 0, "Svc", "run", "", "service", "", "invoked", T0, T0,  # type: ignore[arg-type]
                     journal=[JournalEntry(0x0400, b"in", T0), JournalEntry(0x0401, b"x", T0)])
    with open_store(tmp_path / "s") as store:
        store.put(keys.status_key(i), records.encode(inv, ("journal",)))
        for n, e in enumerate(inv.journal):
            store.put(keys.journal_key(i, n), records.encode(e))
        got = stored.StoreBacking(store, History(tmp_path / "h")).load(i)
    assert got is not None and got[0] == inv and got[1] == 2


def test_a_move_builds_its_segment_chunk_by_chunk(tmp_path: Path, monkeypatch) -> None:
    # A large move (after downtime, up to MAX_SEGMENT_ROWS) must not decode all of its
    # invocations at once: chunks of BUILD_CHUNK, written as one sorted file all the same.
    import rstq.core.persistence as persistence
    from rstq.core.store.history import SegmentWriter

    monkeypatch.setattr(persistence, "BUILD_CHUNK", 3)
    chunks: list[int] = []
    real_add = SegmentWriter.add

    def add(self: SegmentWriter, invs: list) -> None:  # type: ignore[type-arg]
        chunks.append(len(invs))
        real_add(self, invs)

    monkeypatch.setattr(SegmentWriter, "add", add)
    r = Run(tmp_path, segment_rows=8, cache_size=0)
    ids = r.complete(8)
    sid = r.move()
    assert chunks == [3, 3, 2]
    seg = r.p.history.segments[sid]
    raws = [bytes(x) for x in seg.table.column("id").to_pylist()]
    assert raws == sorted(raws) and len(raws) == 8
    r.same(ids)


def test_segment_chunks_must_come_in_id_order(tmp_path: Path) -> None:
    import pytest
    from rstq.core.store.history import SegmentWriter

    r = Run(tmp_path, segment_rows=8, cache_size=8)
    ids = sorted(r.complete(2), key=keys.inv_raw)
    invs = [r.state.invocations.get(i) for i in ids]
    w = SegmentWriter(tmp_path / "h", "s1", 1)
    w.add([invs[1]])
    with pytest.raises(ValueError):
        w.add([invs[0]])
