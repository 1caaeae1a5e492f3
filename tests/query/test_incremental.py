"""Incremental views equal a from-scratch build after any history, and touch only what
changed (counters)."""

from __future__ import annotations

import asyncio
import random

import pyarrow as pa
from rstq.core import commands as c
from rstq.core.model import PartitionState
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


def test_incremental_equals_fresh() -> None:
    rng = random.Random(7)
    states = [PartitionState(i, 4) for i in range(4)]
    ld = Loader(states)
    inc = Materializer()
    eng = Engine(lambda: inc.snapshot([PartitionSource(s) for s in states]))
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
            got = dump(eng)  # incremental: refreshes many times over the rounds
            fresh_mat = Materializer()
            fresh = Engine(lambda m=fresh_mat: m.snapshot([PartitionSource(s) for s in states]))
            try:
                want = dump(fresh)
            finally:
                fresh.close()
            for name in want:
                assert got[name].equals(want[name]), name
        views = inc.views
        assert sum(v.stats.full_rebuilds for v in views) == 4  # once per partition
        assert max(len(v.lanes["journal"].parts) for v in views) <= 16
    finally:
        eng.close()


def test_untouched_partitions_are_not_refreshed() -> None:
    states = [PartitionState(i, 4) for i in range(4)]
    ld = Loader(states)
    for i in range(50):
        ld.greet(f"k{i}")
    versions = [1, 1, 1, 1]
    mat = Materializer()
    eng = Engine(lambda: mat.snapshot([PartitionSource(s, versions[i])
                                       for i, s in enumerate(states)]))
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
                # the invocation (2 stores), kv, lock and the timer ids apply looked up
                assert after[i][1] - before[i][1] <= 10
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
    assert not any(v.behind for v in sliced.views)
    eng = Engine(lambda: sliced.snapshot([PartitionSource(s) for s in states]))
    fresh_mat = Materializer()
    fresh = Engine(lambda: fresh_mat.snapshot([PartitionSource(s) for s in states]))
    try:
        got, want = dump(eng), dump(fresh)
        for name in want:
            assert got[name].equals(want[name]), name
    finally:
        eng.close()
        fresh.close()
