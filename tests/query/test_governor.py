"""The SQL CPU share (query/governor.py), refresh coalescing and column pruning, with injected
clocks: no sleeps that hope."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest
from rstq.core.model import PartitionState
from rstq.query.engine import Engine, Limits, columns_read, words_read
from rstq.query.governor import Governor
from rstq.query.loadgen import Loader
from rstq.query.source import Materializer, PartitionSource
from rstq.query.tables import BY_NAME
from rstq.query.views import Snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_server_never_throttles() -> None:
    clock = Clock()
    gov = Governor(0.05, burst_s=0.1, busy=lambda: False, clock=clock)
    gov.charge(5.0)
    assert gov.delay() == 0.0


def test_busy_server_gives_sql_its_share() -> None:
    clock = Clock()
    gov = Governor(0.05, burst_s=0.1, busy=lambda: True, clock=clock)
    assert gov.delay() == 0.0  # the burst: an occasional query never waits
    gov.charge(0.3)  # 0.2 s over the burst
    assert gov.delay() == pytest.approx(0.2 / 0.05)
    clock.now += 2.0  # half way: 0.1 s of CPU earned back
    assert gov.delay() == pytest.approx(2.0)
    clock.now += 2.0
    assert gov.delay() == 0.0
    clock.now += 100.0  # the bucket holds no more than the burst
    gov.charge(0.1)
    assert gov.delay() == 0.0
    gov.charge(0.01)
    assert gov.delay() > 0


def test_share_of_one_or_zero_disables() -> None:
    for share in (0.0, 1.0):
        gov = Governor(share, busy=lambda: True)
        gov.charge(10.0)
        assert gov.delay() == 0.0


@pytest.mark.parametrize(("query", "table", "cols"), [
    ("SELECT count(*) FROM sys_journal", "sys_journal", frozenset()),
    ("SELECT COUNT( * ) FROM sys_journal", "sys_journal", frozenset()),
    ("SELECT * FROM sys_journal", "sys_journal", None),
    ("SELECT j.* FROM sys_journal j", "sys_journal", None),
    ("SELECT count(*) FROM sys_journal NATURAL JOIN sys_invocation", "sys_journal", None),
    ('SELECT "name", index FROM sys_journal', "sys_journal", frozenset({"name", "index"})),
    ("SELECT status, count(*) FROM sys_invocation GROUP BY 1", "sys_invocation",
     frozenset({"status"})),
    ("SELECT 2 * retry_count FROM sys_invocation", "sys_invocation", None),  # `*`: all
])
def test_columns_read_over_approximates(query: str, table: str, cols: frozenset[str] | None
                                        ) -> None:
    assert columns_read(BY_NAME[table], words_read(query)) == cols


def _engine(states: list[PartitionState], interval: float, busy: bool
            ) -> tuple[Engine, Materializer, list[int]]:
    mat = Materializer()
    taken: list[int] = []

    def snapshot(stores: Collection[str] | None) -> Snapshot:
        snap = mat.snapshot([PartitionSource(s) for s in states], stores=stores)
        taken.append(snap.generation)
        return snap

    eng = Engine(snapshot, asyncio.get_running_loop(), Limits(refresh_interval_s=interval))
    eng.governor.busy = lambda: busy
    return eng, mat, taken


async def test_queries_arriving_together_share_one_refresh() -> None:
    states = [PartitionState(0, 1)]
    ld = Loader(states)
    ld.greet("a", 1)
    eng, _mat, taken = _engine(states, interval=0.05, busy=True)
    try:
        first = await eng.sql_async("SELECT count(*) AS n FROM state")
        assert first.to_pylist() == [{"n": 1}]
        ld.greet("b", 1)  # applied before the next queries start: they must see it
        results = await asyncio.gather(*(eng.sql_async("SELECT count(*) AS n FROM state")
                                         for _ in range(5)))
        assert all(r.to_pylist() == [{"n": 2}] for r in results)
        assert len(taken) == 2  # one refresh for the five
    finally:
        eng.close()


async def test_an_idle_server_refreshes_for_every_query() -> None:
    states = [PartitionState(0, 1)]
    ld = Loader(states)
    eng, _mat, taken = _engine(states, interval=3600.0, busy=False)
    try:
        for i in range(3):
            ld.greet(f"k{i}", 1)
            got = await eng.sql_async("SELECT count(*) AS n FROM state")
            assert got.to_pylist() == [{"n": i + 1}]
        assert len(taken) == 3  # no waiting for the interval when nothing else runs
    finally:
        eng.close()


def test_refresh_gap_follows_the_cost_of_the_last_refresh() -> None:
    eng = Engine(lambda _stores: Snapshot(0, {}, {}),
                 limits=Limits(refresh_share=0.05, refresh_interval_s=0.5))
    eng.governor.busy = lambda: True
    eng._refresh_cpu = 0.001  # a few writes since the last query: a short wait
    assert eng._refresh_gap() == pytest.approx(0.02)
    eng._refresh_cpu = 0.2  # heavy load: capped
    assert eng._refresh_gap() == 0.5
    eng.governor.busy = lambda: False  # idle: no wait at all
    assert eng._refresh_gap() == 0.0
