"""Scans of history segments read only what a query's filters can match, and answer as a
full scan would.

The pruning rests on DataFusion 55 calling a Python `pyarrow.dataset.Dataset` subclass
(`get_fragments(filter)`, each fragment's `scanner(schema, columns=, filter=, batch_size=)`)
with the query's filters pushed down as exact ones, and on the optimized logical plan's
TableScan exposing those filters: the first tests pin that contract.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from datafusion import SessionContext
from datafusion.catalog import Table
from rstq.core import commands as c
from rstq.core.partitioning import partition_key_for, partition_of
from rstq.query import history as qh
from rstq.query import pushdown
from rstq.query.engine import Engine

from tests.core.builders import inv_id_on, invoke, output
from tests.core.test_history import DAY, P, Run
from tests.query.test_history_sql import engine


class _Spy(pushdown.HistoryDataset):
    """A dataset over plain tables that records what DataFusion asks of it."""

    def __init__(self, tables: list[pa.Table]) -> None:
        super().__init__("spy", tables[0].schema, [], None)
        self.tables = tables
        self.calls: list[tuple[str, object]] = []

    def get_fragments(self, filter: object = None) -> list[object]:  # type: ignore[override]
        self.calls.append(("get_fragments", str(filter)))
        return [_SpyFragment(self, t) for t in self.tables]


class _SpyFragment:
    def __init__(self, spy: _Spy, table: pa.Table) -> None:
        self.spy, self.table = spy, table

    def scanner(self, schema: pa.Schema, columns: list[str] | None = None,
                filter: object = None, batch_size: int = 0) -> object:
        import pyarrow.dataset as ds

        self.spy.calls.append(("scanner", (columns, str(filter), batch_size > 0)))
        return ds.dataset(self.table).scanner(columns=columns, filter=filter)


def test_datafusion_pushes_projection_and_exact_filters_into_a_python_dataset() -> None:
    spy = _Spy([pa.table({"id": ["a", "b"], "n": [1, 2]}), pa.table({"id": ["c"], "n": [3]})])
    ctx = SessionContext()
    ctx.register_table("t", Table(spy))
    assert ctx.sql("SELECT n FROM t WHERE id = 'c'").to_pylist() == [{"n": 3}]
    assert spy.calls[0] == ("get_fragments", '(id == "c")')
    assert spy.calls[1:] and all(call == ("scanner", (["n"], '(id == "c")', True))
                                 for call in spy.calls[1:])
    plan = ctx.sql("SELECT n FROM t WHERE id = 'c'").optimized_logical_plan()
    scans = [p for p in _nodes(plan) if type(p.to_variant()).__name__ == "TableScan"]
    # Exact ("full") filters: DataFusion does not filter again, so the dataset must.
    assert "full_filters" in plan.display_indent() and len(scans[0].to_variant().filters()) == 1


def _nodes(plan: object) -> list[object]:
    out, stack = [], [plan]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(p.inputs())  # type: ignore[attr-defined]
    return out


def _keys(sql: str) -> pushdown.Keys:
    """The partition keys `scan_keys` finds for table x in `sql`."""
    ctx = SessionContext()
    schema = pa.schema([("id", pa.large_utf8()), ("partition_key", pa.uint64()),
                        ("target_service_name", pa.large_utf8()),
                        ("target_service_key", pa.large_utf8()), ("n", pa.int64())])
    ctx.register_table(pushdown.PREFIX + "x", Table(_Spy([schema.empty_table()])))
    return pushdown.scan_keys(ctx.sql(sql.replace(" x", f" {pushdown.PREFIX}x"))
                              .optimized_logical_plan())[pushdown.PREFIX + "x"]


def test_partition_keys_from_filters() -> None:
    a, b = inv_id_on(0, P, n=5), inv_id_on(0, P, n=9)
    assert _keys(f"SELECT * FROM x WHERE id = '{a}'") == {5}
    assert _keys(f"SELECT * FROM x WHERE id = '{a}' OR id = '{b}'") == {5, 9}
    assert _keys(f"SELECT * FROM x WHERE id IN ('{a}', '{b}') AND n > 1") == {5, 9}
    assert _keys(f"SELECT * FROM x WHERE n > 1 AND '{b}' = id") == {9}
    assert _keys("SELECT * FROM x WHERE partition_key = 7") == {7}
    assert _keys(f"SELECT * FROM x WHERE id = '{a}' AND partition_key = 7") == set()
    assert _keys("SELECT * FROM x WHERE id = 'not an id'") == set()
    assert _keys("SELECT * FROM x WHERE target_service_name = 'Obj' "
                 "AND target_service_key IN ('k1', 'k2')") == {
        partition_key_for("Obj", "k1"), partition_key_for("Obj", "k2")}
    # What does not constrain the key: no pruning.
    assert _keys("SELECT * FROM x WHERE target_service_key = 'k1'") is None
    assert _keys(f"SELECT * FROM x WHERE id = '{a}' OR n = 3") is None
    assert _keys(f"SELECT * FROM x WHERE id NOT IN ('{a}', '{b}')") is None
    assert _keys("SELECT * FROM x WHERE id LIKE 'inv_%'") is None
    assert _keys("SELECT * FROM x") is None


@pytest.fixture
def run(tmp_path: Path) -> Run:
    r = Run(tmp_path, segment_rows=6, cache_size=0)
    r.p.history.encoders.append(qh.encode)
    return r


def _segments(run: Run, n: int) -> list[list[str]]:
    """`n` segments of 6 completed invocations each (partition keys 0.., in order)."""
    out = []
    for s in range(n):
        out.append(run.complete(6, first=6 * s))
        run.move()
    return out


def _read(eng: Engine, sql: str) -> tuple[list[dict[str, object]], int]:
    before = pushdown.stats["segments_read"]
    rows = eng.sql(sql).to_pylist()
    return rows, pushdown.stats["segments_read"] - before


def test_point_lookups_read_one_segment_and_agree(run: Run) -> None:
    segs = _segments(run, 4)
    ours, ref = engine(run, False), engine(run, True)
    target = segs[2][3]
    for sql in [
        f"SELECT id, status, completion_result FROM sys_invocation WHERE id = '{target}'",
        f"SELECT * FROM sys_invocation_status WHERE id = '{target}'",
        f"SELECT id, index, entry_type FROM sys_journal WHERE id = '{target}' ORDER BY index",
    ]:
        rows, read = _read(ours, sql)
        assert rows == ref.sql(sql).to_pylist() and rows, sql
        assert read == 1, sql
    events = f"SELECT * FROM sys_journal_events WHERE id = '{target}'"  # none: no events
    rows, read = _read(ours, events)
    assert rows == ref.sql(events).to_pylist() and read <= 1
    both = f"SELECT id FROM sys_invocation WHERE id IN ('{segs[0][0]}', '{segs[3][5]}') ORDER BY id"
    rows, read = _read(ours, both)
    assert rows == ref.sql(both).to_pylist() and len(rows) == 2 and read == 2
    rows, read = _read(ours, "SELECT count(*) AS n FROM sys_invocation")
    assert rows == [{"n": 24}] and read == 4  # no filter: every segment
    rows, read = _read(ours, "SELECT id FROM sys_invocation WHERE id = 'inv_nope'")
    assert rows == [] and read == 0


def test_a_keyed_lookup_reads_the_key_s_segment(run: Run) -> None:
    _segments(run, 2)
    keyed = []
    mine = [k for k in (f"key{n}" for n in range(200))
            if partition_of(partition_key_for("Obj", k), P) == 0][:3]
    for n, key in enumerate(mine):
        i = inv_id_on(0, P, service="Obj", key=key, n=100 + n)
        keyed.append((i, key))
        run(invoke(i, service="Obj", key=key, service_ty="virtual_object",
                   completion_retention_ms=DAY, journal_retention_ms=DAY))
        run(output(i, 1, b'"ok"'))
        run(c.End(i, 1))
    run.complete(6 - len(keyed), first=500)
    run.move()
    ours, ref = engine(run, False), engine(run, True)
    key = keyed[0][1]
    sql = ("SELECT id, target FROM sys_invocation WHERE target_service_name = 'Obj' "
           f"AND target_service_key = '{key}'")
    rows, read = _read(ours, sql)
    assert rows == ref.sql(sql).to_pylist() == [{"id": keyed[0][0], "target": f"Obj/{key}/run"}]
    assert read == 1


def test_limit_without_order_stops_early(run: Run) -> None:
    _segments(run, 5)
    rows, read = _read(engine(run, False), "SELECT id FROM sys_invocation LIMIT 2")
    assert len(rows) == 2 and read <= 2  # one lane: its first segment has the rows


def test_expired_and_purged_rows_stay_out_of_pruned_scans(run: Run) -> None:
    segs = _segments(run, 2)
    gone = segs[1][2]
    run(c.Purge(gone))
    ours, ref = engine(run, False), engine(run, True)
    sql = f"SELECT id FROM sys_invocation WHERE id IN ('{gone}', '{segs[1][3]}')"
    assert ours.sql(sql).to_pylist() == ref.sql(sql).to_pylist() == [{"id": segs[1][3]}]
