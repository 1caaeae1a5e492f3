"""The partition processor shell: durability before effects, recovery, snapshots, timers."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core.clock import ManualClock
from rstq.core.invocations import InvocationTable
from rstq.core.log.api import FsyncPolicy
from rstq.core.log.local import LocalLog
from rstq.core.model import COMPLETED, PartitionState
from rstq.core.objects import ObjectStates
from rstq.core.persistence import StorePersistence
from rstq.core.processor import PartitionProcessor, ProcessorConfig
from rstq.core.snapshot import latest_snapshot_lsn, load_snapshot, state_to_tables
from rstq.core.store import open_store
from rstq.core.store import state as stored

from .builders import T0, inv_id_on, invoke, output, set_state, sleep


class Sink:
    def __init__(self) -> None:
        self.seen: list[a.Action] = []

    def on_actions(self, partition: int, actions: Sequence[a.Action]) -> None:
        self.seen.extend(actions)


class GatedLog:
    """A log whose appends complete only when the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.records: list[bytes] = []
        self.fail = False

    first_lsn = 1

    @property
    def next_lsn(self) -> int:
        return len(self.records) + 1

    @property
    def durable_lsn(self) -> int:
        return len(self.records)

    async def append(self, payload: bytes) -> int:
        return await self.append_batch([payload])

    async def append_batch(self, payloads: Sequence[bytes]) -> int:
        await self.gate.wait()
        if self.fail:
            raise OSError("disk on fire")
        self.records.extend(payloads)
        return len(self.records)

    def read(self, from_lsn: int) -> Iterator[tuple[int, bytes]]:
        yield from enumerate(self.records[from_lsn - 1:], start=from_lsn)

    async def trim(self, below_lsn: int) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_no_action_before_the_command_is_durable(tmp_path: Path) -> None:
    sink, lg = Sink(), GatedLog()
    proc = PartitionProcessor(0, 1, tmp_path, lg, ManualClock(T0), sink)
    proc.start()
    fut = proc.propose_nowait(invoke(inv_id_on(0, 1)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not fut.done() and sink.seen == [] and proc.state.invocations == {}
    lg.gate.set()
    actions = await fut
    assert any(isinstance(x, a.StartAttempt) for x in actions)
    assert sink.seen == actions and len(lg.records) == 1
    await proc.close(snapshot=False)


async def test_failed_append_applies_nothing_and_fails_the_proposer(tmp_path: Path) -> None:
    sink, lg = Sink(), GatedLog()
    lg.fail = True
    lg.gate.set()
    proc = PartitionProcessor(0, 1, tmp_path, lg, ManualClock(T0), sink)
    proc.start()
    with pytest.raises(Exception, match="disk on fire"):
        await proc.propose(invoke(inv_id_on(0, 1)))
    assert sink.seen == [] and proc.state.invocations == {}
    await proc.close(snapshot=False)


async def test_concurrent_proposals_share_a_batch(tmp_path: Path) -> None:
    lg = GatedLog()
    proc = PartitionProcessor(0, 1, tmp_path, lg, ManualClock(T0), Sink())
    proc.start()
    futs = [proc.propose_nowait(invoke(inv_id_on(0, 1, n=n))) for n in range(50)]
    lg.gate.set()
    await asyncio.gather(*futs)
    assert proc.stats.commands == 50 and proc.stats.batches <= 2
    await proc.close(snapshot=False)


async def test_precheck_keeps_refused_commands_out_of_the_log(tmp_path: Path) -> None:
    lg = GatedLog()
    lg.gate.set()
    proc = PartitionProcessor(0, 1, tmp_path, lg, ManualClock(T0), Sink())
    proc.start()
    with pytest.raises(Exception, match="stale"):
        await proc.propose(invoke(inv_id_on(0, 1)), precheck=lambda s: "stale attempt")
    assert lg.records == []
    await proc.close(snapshot=False)


def canonical_tables(state: PartitionState) -> dict[str, object]:
    """Every table, with every invocation (resident or on disk)."""
    full = copy.copy(state)
    full.invocations = InvocationTable()
    full.invocations.mem.update(state.invocations.everything())
    full.kv = ObjectStates()
    full.kv.mem.update({o: state.kv.peek(o) or {} for o in state.kv.all_objects()})
    tables = state_to_tables(full)
    return {name: sorted(t.to_pylist(), key=repr) for name, t in tables.items()}


async def _open(path: Path, clock: ManualClock, snapshot_every: int = 10_000,
                store: str = "rocksdb") -> tuple[PartitionProcessor, Sink, list[a.Action]]:
    lg = await LocalLog.open(path / "log", fsync=FsyncPolicy.BATCH)
    sink = Sink()
    proc = PartitionProcessor(0, 1, path, lg, clock, sink,
                              ProcessorConfig(snapshot_every=snapshot_every, store=store))
    redo = proc.recover()
    proc.start()
    return proc, sink, redo


async def test_recovery_replays_log_and_redrives_running_work(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock)
    i1, i2 = inv_id_on(0, 1, n=1), inv_id_on(0, 1, n=2)
    await proc.propose(invoke(i1))
    await proc.propose(set_state(i1, 1, b"k", b"v"))
    await proc.propose(invoke(i2))
    await proc.propose(output(i2, 1))
    await proc.propose(c.End(i2, 1))
    before = proc.state
    # A crash: no snapshot, the log stays as it is; the process's locks go with it.
    proc._closing = True
    for t in proc._tasks:
        t.cancel()
    await proc.log.close()
    proc.persistence.close()
    proc2, _, redo = await _open(tmp_path, clock)
    assert proc2.state.applied_lsn == before.applied_lsn == 5
    assert proc2.state.invocations[i2].status == COMPLETED
    assert redo == [a.StartAttempt(i1, 1)]
    await proc2.close()


async def test_snapshots_are_taken_and_the_log_trimmed_below_them(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock, snapshot_every=10, store="snapshot")
    for n in range(25):
        await proc.propose(invoke(inv_id_on(0, 1, n=n)))
    assert proc.stats.snapshots >= 2
    assert latest_snapshot_lsn(tmp_path) == proc.stats.snapshot_lsn
    snap = load_snapshot(tmp_path / "snapshots" / f"{proc.stats.snapshot_lsn:020d}")
    assert len(snap.invocations) == proc.stats.snapshot_lsn
    await proc.close()  # clean shutdown: a final snapshot at the last LSN
    assert latest_snapshot_lsn(tmp_path) == 25
    proc2, _, redo = await _open(tmp_path, clock, store="snapshot")
    assert len(proc2.state.invocations) == 25 and len(redo) == 25
    await proc2.close()


async def test_a_torn_snapshot_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock, store="snapshot")
    for n in range(3):
        await proc.propose(invoke(inv_id_on(0, 1, n=n)))
    proc.snapshot()
    await proc.propose(invoke(inv_id_on(0, 1, n=9)))
    proc.snapshot()
    await proc.close(snapshot=False)
    newest = tmp_path / "snapshots" / f"{4:020d}"
    (newest / "journal.arrow").write_bytes(b"torn")
    proc2, _, _ = await _open(tmp_path, clock, store="snapshot")
    assert len(proc2.state.invocations) == 4  # snapshot 3 + the log tail
    await proc2.close()


# --- the partition store (the default) ---------------------------------------------------------


async def test_the_store_follows_every_batch_and_restarts_without_a_replay(
        tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock)
    i1 = inv_id_on(0, 1, n=1)
    await proc.propose(invoke(i1))
    await proc.propose(set_state(i1, 1, b"k", b"v"))
    await proc.propose(output(i1, 1))
    await proc.propose(c.End(i1, 1))
    assert isinstance(proc.persistence, StorePersistence)
    assert proc.persistence.store is not None
    assert stored.applied_lsn(proc.persistence.store) == 4  # written with each batch
    before = canonical_tables(proc.state)
    await proc.close(snapshot=False)
    proc2, _, redo = await _open(tmp_path, clock)
    assert proc2.state.applied_lsn == 4 and redo == []
    assert canonical_tables(proc2.state) == before
    await proc2.close()


async def test_checkpoints_are_taken_and_the_log_trimmed_below_the_oldest(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock, snapshot_every=10)
    for n in range(35):
        await proc.propose(invoke(inv_id_on(0, 1, n=n)))
    cps = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert [int(x) for x in cps] == [20, 30]  # every 10 commands, the newest two kept
    assert proc.persistence.trim_below() == 21  # the log goes below the oldest checkpoint
    assert proc.log.first_lsn <= 21
    with open_store(tmp_path / "checkpoints" / cps[0]) as cp:  # a whole store at lsn 20
        assert stored.applied_lsn(cp) == 20
        assert len(stored.load(cp, 0, 1).invocations) == 20
    await proc.close()
    proc2, _, redo = await _open(tmp_path, clock)
    assert len(proc2.state.invocations) == 35 and len(redo) == 35
    await proc2.close()


async def test_a_damaged_store_falls_back_to_a_checkpoint_and_the_log(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock, snapshot_every=10)
    for n in range(25):
        await proc.propose(invoke(inv_id_on(0, 1, n=n)))
    await proc.close(snapshot=False)
    # The live store's own files torn (CURRENT, MANIFEST, WAL: new inodes; the SST files are
    # immutable and hard-linked into the checkpoints, so they are shared, not copied).
    for f in (tmp_path / "store").iterdir():
        if f.is_file() and not f.name.endswith(".sst"):
            f.unlink()
            f.write_bytes(b"damaged")
    proc2, _, _ = await _open(tmp_path, clock)
    assert len(proc2.state.invocations) == 25  # checkpoint 20 + the log tail
    assert list(tmp_path.glob("store.damaged-*")), "the damaged store is kept aside"
    await proc2.close()


async def test_a_snapshot_data_dir_migrates_into_the_store(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock, snapshot_every=10, store="snapshot")
    for n in range(25):
        await proc.propose(invoke(inv_id_on(0, 1, n=n)))
    await proc.close(snapshot=False)  # snapshots at 10 and 20, then a log tail
    proc2, _, redo = await _open(tmp_path, clock)  # the default: the store
    assert len(proc2.state.invocations) == 25 and len(redo) == 25
    assert proc2.state.applied_lsn == 25
    await proc2.close()
    proc3, _, _ = await _open(tmp_path, clock)  # now from the store alone
    assert len(proc3.state.invocations) == 25
    await proc3.close()


async def test_timers_fire_from_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    proc, sink, _ = await _open(tmp_path, clock)
    i = inv_id_on(0, 1)
    await proc.propose(invoke(i))
    await proc.propose(sleep(i, 1, 1, clock.now_ms() + 1000))
    await proc.propose(c.Suspend(i, 1, [1], [1]))
    for _ in range(10):
        await asyncio.sleep(0)
    assert a.StartAttempt(i, 2) not in sink.seen
    clock.advance(1000)
    # The timer's command goes through the real log (a writer thread and an fsync): wait for
    # it with a bounded deadline, not a number of loop turns.
    deadline = asyncio.get_running_loop().time() + 10
    while a.StartAttempt(i, 2) not in sink.seen:
        assert asyncio.get_running_loop().time() < deadline, "timer did not fire"
        await asyncio.sleep(0.005)
    await proc.close()


async def test_long_object_and_state_keys_persist(tmp_path: Path) -> None:
    """Keys far over LMDB's 511 bytes (the default engine takes them): written, read back."""
    clock = ManualClock(T0)
    proc, _, _ = await _open(tmp_path, clock)
    i1 = inv_id_on(0, 1, n=1)
    await proc.propose(invoke(i1, service="Obj", key="k" * 3000, service_ty="virtual_object",
                              handler_ty="exclusive"))
    await proc.propose(set_state(i1, 1, b"s" * 5000, b"v"))
    await proc.close(snapshot=False)
    proc2, _, _ = await _open(tmp_path, clock)
    assert proc2.state.kv[("Obj", "k" * 3000)] == {b"s" * 5000: b"v"}
    await proc2.close()
