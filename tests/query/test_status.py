"""Computed status for every lifecycle state, and the keyed tables, from real apply() runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.model import PartitionState
from rstq.protocol import messages as pm
from rstq.query.engine import Engine
from rstq.query.source import Materializer, PartitionSource

from tests.core.builders import T0, entry, inv_id_on, invoke, output, set_state, sleep


class World:
    def __init__(self) -> None:
        self.state = PartitionState(0, 1)
        self.ts = T0
        self.in_flight: set[str] = set()
        self.mat = Materializer(lambda i: i in self.in_flight)
        self.engine = Engine(lambda _stores=None: self.mat.snapshot([PartitionSource(self.state)]))

    def do(self, *cmds: c.Command) -> None:
        for cmd in cmds:
            self.ts += 10
            apply(self.state, c.Envelope(self.ts, cmd), None)

    def one(self, sql: str) -> dict[str, object]:
        rows = self.engine.sql(sql).to_pylist()
        assert len(rows) == 1, rows
        return rows[0]

    def status(self, inv: str) -> object:
        return self.one(f"SELECT status FROM sys_invocation WHERE id = '{inv}'")["status"]


@pytest.fixture
def w() -> Iterator[World]:
    world = World()
    yield world
    world.engine.close()


def test_lifecycle(w: World) -> None:
    a = inv_id_on(0, 1, "Obj", "k")
    b = inv_id_on(0, 1, n=7)  # a second invocation on the same key
    w.do(invoke(a, "Obj", "run", "k", "virtual_object", "exclusive"))
    assert w.status(a) == "ready"  # invoked, no attempt running
    w.in_flight.add(a)
    w.do(set_state(a, 1, b"count", b"1"))
    assert w.status(a) == "running"
    w.do(invoke(b, "Obj", "run", "k", "virtual_object", "exclusive"))
    assert w.status(b) == "pending"
    assert w.one("SELECT * FROM sys_inbox")["id"] == b
    assert w.one("SELECT * FROM sys_keyed_service_status")["invocation_id"] == a
    assert w.one(f"SELECT status FROM sys_invocation_status WHERE id = '{b}'")["status"] \
        == "inboxed"
    w.in_flight.discard(a)
    w.do(c.AttemptFailed(a, 1, 500, "boom", then="retry", retry_at_ms=w.ts + 60_000))
    row = w.one(f"SELECT status, retry_count, last_failure, last_failure_error_code, "
                f"next_retry_at FROM sys_invocation WHERE id = '{a}'")
    assert row["status"] == "backing-off" and row["retry_count"] == 1
    assert row["last_failure"] == "boom" and row["last_failure_error_code"] == "500"
    assert w.one("SELECT count(*) AS n FROM sys_timer WHERE kind = 'retry'")["n"] == 1
    assert w.one(f"SELECT in_flight FROM sys_invocation_state WHERE id = '{a}'")["in_flight"] \
        is False
    w.do(c.Resume(a))  # epoch 2
    w.do(sleep(a, 2, 1, w.ts + 3_600_000), c.Suspend(a, 2, waiting_completions=[1]))
    assert w.status(a) == "suspended"
    row = w.one(f"SELECT suspended_waiting_for_completions AS s FROM sys_invocation "
                f"WHERE id = '{a}'")
    assert row["s"] == [1]
    j = w.engine.sql(f"SELECT index, entry_type, completed, sleep_wakeup_at FROM sys_journal "
                     f"WHERE id = '{a}' ORDER BY index").to_pylist()
    assert [r["entry_type"] for r in j] == ["Command: Input", "Command: SetState",
                                           "Command: Sleep"]
    assert j[2]["completed"] is False and j[2]["sleep_wakeup_at"] is not None
    w.do(c.Pause(a))
    assert w.status(a) == "paused"
    w.do(c.Resume(a), output(a, 3), c.End(a, 3))
    assert w.status(a) == "completed"
    row = w.one(f"SELECT completion_result, completed_at IS NOT NULL AS done, retry_count "
                f"FROM sys_invocation WHERE id = '{a}'")
    assert row == {"completion_result": "success", "done": True, "retry_count": None}
    # the lock went to b, which left the inbox
    assert w.engine.sql("SELECT * FROM sys_inbox").num_rows == 0
    assert w.one("SELECT invocation_id FROM sys_keyed_service_status")["invocation_id"] == b
    st = w.one("SELECT service_name, service_key, key, value_utf8, value, value_length "
               "FROM state")
    assert st == {"service_name": "Obj", "service_key": "k", "key": "count", "value_utf8": "1",
                  "value": b"1", "value_length": 1}


def test_scheduled_and_failure(w: World) -> None:
    d = inv_id_on(0, 1, n=3)
    w.do(invoke(d, execute_at_ms=T0 + 600_000, idempotency_key="idem-1"))
    assert w.status(d) == "scheduled"
    row = w.one(f"SELECT scheduled_start_at, idempotency_key FROM sys_invocation "
                f"WHERE id = '{d}'")
    assert row["idempotency_key"] == "idem-1" and row["scheduled_start_at"] is not None
    assert w.one("SELECT invocation_id FROM sys_idempotency")["invocation_id"] == d
    w.do(c.TimerFired(f"invoke:{d}"))
    assert w.status(d) == "ready"
    w.do(output(d, 1, failure=(500, "nope")), c.End(d, 1))
    row = w.one(f"SELECT status, completion_result, completion_failure FROM sys_invocation "
                f"WHERE id = '{d}'")
    assert row == {"status": "completed", "completion_result": "failure",
                   "completion_failure": "[500] nope"}
    compact = w.one(f"SELECT * FROM sys_status WHERE id = '{d}'")
    assert compact == {"service": "Svc", "method": "run", "id": d, "status": "completed",
                       "invoked_by_service": None, "invoked_by_id": None}


def test_promises(w: World) -> None:
    wf = inv_id_on(0, 1, n=9)
    w.do(invoke(wf, "Wf", "run", "w1", "workflow", "workflow"))
    w.do(entry(wf, 1, pm.GetPromiseCommandMessage(key="p", result_completion_id=1)))
    row = w.one("SELECT service_name, service_key, key, completed FROM sys_promise")
    assert row == {"service_name": "Wf", "service_key": "w1", "key": "p", "completed": False}
    w.do(entry(wf, 1, pm.CompletePromiseCommandMessage(
        key="p", completion_value=pm.Value(content=b'"v"'), result_completion_id=2)))
    row = w.one("SELECT completed, completion_success_value_utf8 AS v FROM sys_promise")
    assert row == {"completed": True, "v": '"v"'}
    j = w.engine.sql("SELECT promise_name, completed FROM sys_journal WHERE promise_name = 'p' "
                     "ORDER BY index").to_pylist()
    assert j == [{"promise_name": "p", "completed": True}, {"promise_name": "p",
                                                            "completed": True}]
