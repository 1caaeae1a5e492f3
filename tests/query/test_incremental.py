"""Incremental views equal a from-scratch build after any history, and touch only what
changed (counters)."""

from __future__ import annotations

import asyncio
import random

import pyarrow as pa
import pytest
from rstq.core import commands as c
from rstq.core.model import PartitionState
from rstq.query import views
from rstq.query.engine import Engine
from rstq.query.loadgen import Loader
from rstq.query.source import Materializer, PartitionSource
from rstq.query.tables import TABLES

SORT = {"sys_journal": ["id", "index"], "state": ["service_key", "key"],
        "sys_timer": ["timer_id"], "sys_keyed_service_status": ["service_key"]}


def dump(eng: Engine) -> dict[str, pa.Table]:
    out = {}
    for t in TABLES:
        if t.name in ("sys_partition",):
            continue
        order = SORT.get(t.name, ["id"] if "id" in t.schema.names else [t.columns[0].name])
        out[t.name] = eng.sql(f"SELECT * FROM {t.name} ORDER BY "
                              + ", ".join(f'"{c}"' for c in order))
    return out


PROJECTIONS = (
    "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status ORDER BY status",
    "SELECT count(*) AS n FROM sys_journal",
    "SELECT id, index, name, completed FROM sys_journal ORDER BY id, index",
    "SELECT id, index FROM sys_journal WHERE entry_type LIKE 'Command%' ORDER BY id, index",
    "SELECT id, retry_count FROM sys_invocation_state ORDER BY id",
    "SELECT service_key, value_utf8 FROM state ORDER BY service_key, key",
    "SELECT j.id, count(*) AS n FROM sys_journal j JOIN sys_invocation i ON i.id = j.id "
    "WHERE i.status = 'completed' GROUP BY j.id ORDER BY j.id",
)


def lazy_engine(states: list[PartitionState]) -> tuple[Engine, Materializer]:
    """An engine whose queries refresh only the stores (and build only the columns) they
    read, as the server's does."""
    mat = Materializer()
    eng = Engine(lambda stores: mat.snapshot([PartitionSource(s) for s in states],
                                             stores=stores))
    return eng, mat


def fresh_sql(states: list[PartitionState], q: str) -> pa.Table:
    mat = Materializer()
    eng = Engine(lambda _stores: mat.snapshot([PartitionSource(s) for s in states]))
    try:
        return eng.sql(q)
    finally:
        eng.close()


@pytest.mark.parametrize("big_node", [4096, 8])  # 8: merged nodes are built whole, flattened
def test_incremental_equals_fresh(big_node: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "BIG_NODE", big_node)
    rng = random.Random(7)
    states = [PartitionState(i, 4) for i in range(4)]
    ld = Loader(states)
    # Lazy per store: each query of `dump` refreshes only the store its table reads.
    eng, inc = lazy_engine(states)
    done: list[str] = []
    try:
        for _round in range(12):
            for _ in range(rng.randint(1, 40)):
                op = rng.random()
                if op < 0.5:
                    done.append(ld.greet(f"k{rng.randint(0, 30)}", rng.randint(1, 9)))
                elif op < 0.8:
                    done.append(ld.steps(rng.randint(0, 3)))
                elif op < 0.9:
                    ld.greet(f"open{rng.randint(0, 5)}", complete=False)  # inbox, locks
                elif done:
                    inv = done.pop(rng.randrange(len(done)))
                    ld._apply(inv, c.Purge(inv))
            for q in PROJECTIONS:  # queries that build only some columns of small nodes
                assert eng.sql(q).equals(fresh_sql(states, q)), q
            got = dump(eng)  # incremental: refreshes many times over the rounds
            fresh_mat = Materializer()
            fresh = Engine(lambda _stores=None, m=fresh_mat: m.snapshot(
                [PartitionSource(s) for s in states]))
            try:
                want = dump(fresh)
            finally:
                fresh.close()
            for name in want:
                assert got[name].equals(want[name]), name
        assert sum(v.stats.full_rebuilds for v in inc.views) == 4  # once per partition
        assert max(len(v.lanes["journal"].parts) for v in inc.views) <= 16
    finally:
        eng.close()


def test_untouched_partitions_are_not_refreshed() -> None:
    states = [PartitionState(i, 4) for i in range(4)]
    ld = Loader(states)
    for i in range(50):
        ld.greet(f"k{i}")
    versions = [1, 1, 1, 1]
    mat = Materializer()
    eng = Engine(lambda stores: mat.snapshot([PartitionSource(s, versions[i])
                                              for i, s in enumerate(states)], stores=stores))
    try:
        eng.sql("SELECT count(*) FROM state")
        before = [(v.stats.refreshes, v.stats.keys_rebuilt) for v in mat.views]
        built = eng.tables_built
        eng.sql("SELECT count(*) FROM state")
        assert eng.tables_built == built  # same snapshot: table providers reused
        inv = ld.greet("k3", 2)
        p = next(i for i, s in enumerate(states) if inv in s.invocations)
        versions[p] += 1
        assert eng.sql("SELECT value_utf8 FROM state WHERE service_key = 'k3'").to_pylist() \
            == [{"value_utf8": "2"}]
        after = [(v.stats.refreshes, v.stats.keys_rebuilt) for v in mat.views]
        for i in range(4):
            if i == p:
                assert after[i][0] == before[i][0] + 1
                # only the state store: the kv keys the greet touched
                assert 1 <= after[i][1] - before[i][1] <= 2
            else:
                assert after[i] == before[i]
    finally:
        eng.close()


async def test_catch_up_builds_in_slices_and_equals_a_full_build() -> None:
    states = [PartitionState(i, 2) for i in range(2)]
    ld = Loader(states)
    for i in range(300):
        ld.greet(f"k{i}", 1)
    sliced = Materializer()
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.ensure_future(count_turns())
    await sliced.catch_up([PartitionSource(s) for s in states], budget=25)
    counter.cancel()
    assert turns > 10  # the event loop ran between the slices
    assert not any(v.behind() for v in sliced.views)
    eng = Engine(lambda _stores=None: sliced.snapshot([PartitionSource(s) for s in states]))
    fresh_mat = Materializer()
    fresh = Engine(lambda _stores=None: fresh_mat.snapshot([PartitionSource(s) for s in states]))
    try:
        got, want = dump(eng), dump(fresh)
        for name in want:
            assert got[name].equals(want[name]), name
    finally:
        eng.close()
        fresh.close()


def test_a_query_rebuilds_only_the_stores_it_reads() -> None:
    states = [PartitionState(0, 1)]
    ld = Loader(states)
    mat = Materializer()
    eng = Engine(lambda stores: mat.snapshot([PartitionSource(states[0])], stores=stores))
    try:
        eng.sql("SELECT count(*) FROM state")
        pv = mat.views[0]
        for i in range(20):
            ld.greet(f"k{i}", 1)
        assert eng.sql("SELECT count(*) AS n FROM state").to_pylist() == [{"n": 20}]
        assert pv.lanes["journal"].size == 0 and pv.lanes["invocations"].size == 0
        assert len(pv.pending["invocations"]) == 20  # waiting for a query that reads them
        n = eng.sql("SELECT count(*) AS n FROM sys_invocation").to_pylist()[0]["n"]
        assert n == 20 and not pv.pending["invocations"]
        assert len(pv.pending["journal"]) == 20  # sys_invocation does not read the journal
    finally:
        eng.close()


def test_pending_keys_of_an_unqueried_store_stay_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Invocations created and deleted while nobody queries the journal do not pile up."""
    monkeypatch.setattr(views, "PENDING_TRIM", 50)
    states = [PartitionState(0, 1)]
    ld = Loader(states)
    mat = Materializer()
    src = [PartitionSource(states[0])]
    mat.snapshot(src, stores={"state"})
    for i in range(500):
        inv = ld.greet(f"k{i % 7}", 1)
        ld._apply(inv, c.Purge(inv))
        mat.drain(src)
    pv = mat.views[0]
    assert len(pv.pending["journal"]) <= 2 * 50 + 10
    assert pv.stats.pending_trimmed > 400
    eng = Engine(lambda stores: mat.snapshot(src, stores=stores))
    fresh = Materializer()
    want = Engine(lambda _stores: fresh.snapshot(src))
    try:
        for table in ("sys_journal", "sys_invocation", "state"):
            q = f"SELECT count(*) AS n FROM {table}"
            assert eng.sql(q).equals(want.sql(q)), table
    finally:
        eng.close()
        want.close()


def test_random_projections_equal_a_full_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Column-lazy nodes (small and big) answer any column subset as a whole build does."""
    monkeypatch.setattr(views, "BIG_NODE", 16)
    rng = random.Random(11)
    states = [PartitionState(i, 2) for i in range(2)]
    ld = Loader(states)
    eng, _mat = lazy_engine(states)
    tables = [t for t in TABLES if t.name not in ("sys_partition", "sys_service",
                                                  "sys_deployment", "sys_span")]
    try:
        for _round in range(6):
            for _ in range(rng.randint(5, 30)):
                if rng.random() < 0.6:
                    ld.greet(f"k{rng.randint(0, 40)}", rng.randint(1, 9),
                             complete=rng.random() < 0.8)
                else:
                    ld.steps(rng.randint(0, 3))
            for table in tables:
                names = [c.name for c in table.columns]
                cols = rng.sample(names, rng.randint(1, min(4, len(names))))
                q = (f"SELECT {', '.join(map(_quote, cols))} FROM {table.name} "
                     f"ORDER BY {', '.join(map(_quote, cols))}")
                assert eng.sql(q).equals(fresh_sql(states, q)), q
    finally:
        eng.close()


def _quote(name: str) -> str:
    return f'"{name}"'
