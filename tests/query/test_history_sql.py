"""SQL over history segments answers exactly as SQL over the same state held in memory.

One partition goes through `StorePersistence` (completed invocations move into segments, the
cache holds none of them), a reference replays the same commands into a plain in-memory
state; every query is run on both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rstq.core import commands as c
from rstq.query import history as qh
from rstq.query.engine import Engine
from rstq.query.source import Materializer, PartitionSource

from tests.core.builders import output, set_state
from tests.core.test_history import Run

QUERIES = [
    "SELECT id, status, target, journal_size, completed_at, completion_result "
    "FROM sys_invocation ORDER BY id",
    "SELECT * FROM sys_invocation_status ORDER BY id",
    "SELECT id, index, entry_type, name, raw, appended_at FROM sys_journal ORDER BY id, index",
    "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status ORDER BY status",
    "SELECT count(*) AS n FROM sys_journal",
    "SELECT * FROM sys_journal_events ORDER BY id",
]


def engine(run: Run, reference: bool) -> Engine:
    mat = Materializer()
    if reference:
        return Engine(lambda _s=None: mat.snapshot([PartitionSource(run.reference)]))
    return Engine(lambda _s=None: mat.snapshot(
        [PartitionSource(run.state, history=run.p.history)]))


def agree(run: Run) -> None:
    ours, ref = engine(run, False), engine(run, True)
    for q in QUERIES:
        assert ours.sql(q).to_pylist() == ref.sql(q).to_pylist(), q


@pytest.fixture
def run(tmp_path: Path) -> Run:
    r = Run(tmp_path, segment_rows=6, cache_size=0)
    r.p.history.encoders.append(qh.encode)
    return r


def test_history_rows_read_like_memory(run: Run) -> None:
    run.complete(6)
    run.move()
    live = run.complete(1, first=50)[0]  # completed after the move: in the hot store
    assert run.p.history.segments and live in run.state.invocations.hot_completed
    agree(run)
    files = list(run.p.history.directory.glob("*.sql-*.arrow"))
    assert len(files) == len(qh.HISTORY_STORES)


def test_purged_and_expired_history_rows_are_gone(run: Run) -> None:
    ids = run.complete(6, retention=5000)
    run.move()
    run(c.Purge(ids[2]))
    agree(run)
    run.now += 5000
    run(c.Cancel(ids[0]))  # a command at a time past every retention
    agree(run)
    assert engine(run, False).sql("SELECT count(*) AS n FROM sys_invocation").to_pylist() \
        == [{"n": 0}]


def test_missing_sql_files_are_rebuilt_from_the_segment(run: Run) -> None:
    run.p.history.encoders.clear()  # a segment written while SQL was off
    run.complete(6)
    run.move()
    agree(run)
    assert list(run.p.history.directory.glob("*.sql-journal.*.arrow"))


def test_state_writes_before_completion_show_in_the_history_journal(run: Run) -> None:
    from tests.core.builders import inv_id_on, invoke

    i = inv_id_on(0, 4, n=77)
    run(invoke(i))
    run(set_state(i, 1, b"k", b"v"))
    run(output(i, 1))
    run(c.End(i, 1))
    run.complete(5)
    run.move()
    agree(run)
