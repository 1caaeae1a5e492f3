"""Hypothesis stateful tests of the state machine.

Random but plausible workloads (invocations of services, objects and workflows; state writes,
sleeps, calls, runs, suspensions, failures, timers, cancel/kill/purge/pause/resume) are applied
to a partition while every command's log payload is recorded. Then:
(a) replaying the recorded log into a fresh state yields identical tables, and
(b) a snapshot taken mid-run (through the Arrow snapshot codec) plus a replay of the tail
    yields the same tables as the full replay;
(c) every command's change feed (`state.changes`) names every key of the keyed tables whose
    value the command changed, added or removed (the SQL views rebuild only those);
(d) the partition store, written after every command from that feed, holds the same tables
    as the state (loaded back every few steps and at the end).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Hashable
from typing import Any

import hypothesis.strategies as st
import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.changes import Keyed
from rstq.core.model import COMPLETED, INVOKED, PartitionState
from rstq.core.partitioning import partition_key_for, partition_of
from rstq.core.snapshot import state_to_tables, tables_to_state
from rstq.core.store import open_store
from rstq.core.store import state as stored
from rstq.protocol import messages as pm

from .builders import T0, entry, inv_id_on, invoke, output, run_cmd, run_done, set_state, sleep

PARTS = 2  # partition 0 of 2: some calls leave through the outbox


def _keys_on_partition_0(service: str) -> list[str]:
    keys = (f"k{i}" for i in range(1000))
    return [k for k in keys if partition_of(partition_key_for(service, k), PARTS) == 0][:2]


OBJ_KEYS = _keys_on_partition_0("Obj")
WF_KEYS = _keys_on_partition_0("Wf")


def dump(state: PartitionState) -> dict[str, pa.Table]:
    return state_to_tables(state)


def assert_same(x: PartitionState, y: PartitionState) -> None:
    dx, dy = dump(x), dump(y)
    assert dx.keys() == dy.keys()
    for name in dx:
        assert dx[name].equals(dy[name]), f"table {name} differs"


def canonical(state: PartitionState) -> PartitionState:
    """The state with its tables in key order: the store returns rows sorted by key, where a
    replay rebuilds the dicts in insertion order (an order nothing depends on)."""
    out = copy.copy(state)
    for t in ("invocations", "locks", "inboxes", "inbox_seqs", "timers", "outbox", "inbound_seq",
              "promises", "idempotency"):
        setattr(out, t, dict(sorted(getattr(state, t).items())))
    out.kv = {k: dict(sorted(v.items())) for k, v in sorted(state.kv.items())}
    return out


def changed_keys(before: dict[Any, Any], after: dict[Any, Any]) -> set[Hashable]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def replay(log: list[bytes], start: PartitionState | None = None, from_lsn: int = 1,
           ) -> PartitionState:
    state = start if start is not None else PartitionState(0, PARTS)
    for lsn, payload in enumerate(log[from_lsn - 1:], start=from_lsn):
        apply(state, c.decode(payload), lsn)
    return state


class Workload(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = PartitionState(0, PARTS)
        self.feed = self.state.changes.subscribe()
        self.store_dir = tempfile.mkdtemp(prefix="rstq-prop-store-")
        self.store = open_store(self.store_dir)
        self.writer = stored.StateWriter(self.store, self.state)
        self.store_feed = self.state.changes.subscribe()
        self.log: list[bytes] = []
        self.now = T0
        self.n = 0
        self.snapshot: tuple[int, dict[str, pa.Table]] | None = None

    # --- plumbing ------------------------------------------------------------------------------

    def do(self, cmd: c.Command) -> None:
        self.now += 7
        payload = c.encode(self.now, cmd)
        self.log.append(payload)
        before = {t: copy.deepcopy(getattr(self.state, t.value)) for t in Keyed}
        self.feed.take()
        apply(self.state, c.decode(payload), len(self.log))
        marked = self.feed.take()
        self.writer.write(self.state, self.store_feed.take())
        for t in Keyed:
            unmarked = changed_keys(before[t], getattr(self.state, t.value)) - marked[t]
            assert not unmarked, f"{type(cmd).__name__} changed {t} {unmarked} unmarked"

    def fresh_id(self, service: str, key: str | None, partition: int = 0) -> str:
        self.n += 1
        return inv_id_on(partition, PARTS, service, key, self.n)

    def running(self) -> list[str]:
        return sorted(i for i, v in self.state.invocations.items() if v.status == INVOKED)

    def live(self) -> list[str]:
        return sorted(i for i, v in self.state.invocations.items() if v.status != COMPLETED)

    # --- rules ---------------------------------------------------------------------------------

    @rule(kind=st.sampled_from(["service", "object", "shared", "delayed", "workflow"]),
          k=st.integers(0, 1))
    def invoke_one(self, kind: str, k: int) -> None:
        if kind == "service":
            self.do(invoke(self.fresh_id("Svc", None)))
        elif kind == "delayed":
            self.do(invoke(self.fresh_id("Svc", None), execute_at_ms=self.now + 50))
        elif kind == "workflow":
            key = WF_KEYS[k]
            self.do(invoke(self.fresh_id("Wf", key), service="Wf", key=key,
                           service_ty="workflow", handler_ty="workflow"))
        else:
            key = OBJ_KEYS[k]
            self.do(invoke(self.fresh_id("Obj", key), service="Obj", key=key,
                           service_ty="virtual_object",
                           handler_ty="shared" if kind == "shared" else "exclusive"))

    @precondition(lambda self: self.running())
    @rule(pick=st.integers(0, 1000), what=st.sampled_from(
        ["set", "clear", "sleep", "run", "lazy", "call_local", "call_remote", "promise",
         "end", "fail_retry", "fail_pause", "fail_kill", "suspend", "suspend_cancel"]),
        value=st.binary(max_size=8))
    def attempt_does(self, pick: int, what: str, value: bytes) -> None:
        inv_id = self.running()[pick % len(self.running())]
        inv = self.state.invocations[inv_id]
        ep = inv.epoch
        cid = len(inv.journal) + 1
        if what == "set":
            self.do(set_state(inv_id, ep, b"k" + value[:1], value))
        elif what == "clear":
            self.do(entry(inv_id, ep, pm.ClearStateCommandMessage(key=b"k" + value[:1])))
        elif what == "sleep":
            self.do(sleep(inv_id, ep, cid, self.now + 30))
        elif what == "run":
            self.do(run_cmd(inv_id, ep, cid))
            self.do(run_done(inv_id, ep, cid, value))
        elif what == "lazy":
            self.do(entry(inv_id, ep, pm.GetLazyStateKeysCommandMessage(result_completion_id=cid)))
        elif what in ("call_local", "call_remote"):
            callee = self.fresh_id("Svc", None, 0 if what == "call_local" else 1)
            msg = pm.CallCommandMessage(service_name="Svc", handler_name="run", parameter=value,
                                        invocation_id_notification_idx=cid,
                                        result_completion_id=cid + 1)
            self.do(entry(inv_id, ep, msg, callee_id=callee, callee_service_ty="service"))
        elif what == "promise":
            if inv.service_ty == "workflow":
                self.do(entry(inv_id, ep, pm.CompletePromiseCommandMessage(
                    key="p", completion_value=pm.Value(content=value), result_completion_id=cid)))
                self.do(entry(inv_id, ep, pm.GetPromiseCommandMessage(
                    key="p", result_completion_id=cid + 1)))
        elif what == "end":
            self.do(output(inv_id, ep, value))
            self.do(c.End(inv_id, ep))
        elif what.startswith("fail_"):
            then = what.removeprefix("fail_")
            self.do(c.AttemptFailed(inv_id, ep, 500, "boom", then=c.AttemptOutcome(then),
                                    retry_at_ms=self.now + 20))
        elif what == "suspend":
            waiting = sorted({x for x in range(1, cid + 2)} - inv.completed_ids)[:2]
            self.do(c.Suspend(inv_id, ep, waiting, [1]))
        else:
            self.do(c.Suspend(inv_id, ep, [], [1]))
            self.do(c.Cancel(inv_id))

    @precondition(lambda self: self.state.timers)
    @rule(pick=st.integers(0, 1000))
    def fire_timer(self, pick: int) -> None:
        timers = sorted(self.state.timers)
        tid = timers[pick % len(timers)]
        self.now = max(self.now, self.state.timers[tid].fire_at)
        self.do(c.TimerFired(tid))

    @precondition(lambda self: self.state.invocations)
    @rule(pick=st.integers(0, 1000),
          op=st.sampled_from(["cancel", "kill", "purge", "pause", "resume"]))
    def operator(self, pick: int, op: str) -> None:
        ids = sorted(self.state.invocations)
        inv_id = ids[pick % len(ids)]
        cls = {"cancel": c.Cancel, "kill": c.Kill, "purge": c.Purge, "pause": c.Pause,
               "resume": c.Resume}[op]
        self.do(cls(inv_id))

    @precondition(lambda self: self.state.outbox)
    @rule()
    def ack_outbox(self) -> None:
        self.do(c.OutboxAck(min(self.state.outbox)))

    @rule(k=st.integers(0, 1), v=st.binary(max_size=4))
    def admin_state(self, k: int, v: bytes) -> None:
        self.do(c.StateMutation("Obj", OBJ_KEYS[k], sets=[(b"admin", v)]))

    @rule()
    def take_snapshot(self) -> None:
        self.snapshot = (len(self.log), dump(self.state))

    # --- properties ----------------------------------------------------------------------------

    @invariant()
    def replay_is_identical(self) -> None:
        if len(self.log) % 5 == 0:  # every few steps: a full replay is O(log)
            assert_same(self.state, replay(self.log))

    @invariant()
    def store_holds_the_state(self) -> None:
        if len(self.log) % 3 == 0:
            assert_same(canonical(stored.load(self.store, 0, PARTS)), canonical(self.state))

    def teardown(self) -> None:
        try:
            assert_same(canonical(stored.load(self.store, 0, PARTS)), canonical(self.state))
        finally:
            self.store.close()
            shutil.rmtree(self.store_dir, ignore_errors=True)
        full = replay(self.log)
        assert_same(self.state, full)
        assert_same(full, replay(self.log))
        if self.snapshot is not None:
            lsn, tables = self.snapshot
            restored = tables_to_state(tables)
            assert restored.applied_lsn == lsn
            assert_same(replay(self.log, restored, lsn + 1), full)


Workload.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWorkload = Workload.TestCase
