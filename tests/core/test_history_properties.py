"""The state machine's random workloads (test_apply_properties) on a partition whose history
is on disk: tiny caches (nothing completed stays resident), history moves into segments at
random points, restarts in between. After every command, every invocation and object reads
back exactly as in a plain in-memory replay of the same log."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, rule
from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.model import PartitionState
from rstq.core.persistence import StorePersistence

from .test_apply_properties import PARTS, Workload, assert_same, canonical


class DiskWorkload(Workload):
    def __init__(self) -> None:
        super().__init__()
        self.store.close()
        shutil.rmtree(self.store_dir, ignore_errors=True)
        self.dir = Path(tempfile.mkdtemp(prefix="rstq-prop-history-"))
        self.p = StorePersistence(self.dir, segment_rows=2, cache_size=0)
        self.state = self.p.recover(0, PARTS, 0)
        self.state.kv.cache_size = 0
        self.ref = PartitionState(0, PARTS)

    def do(self, cmd: c.Command) -> None:
        self.now += 7
        payload = c.encode(self.now, cmd)
        self.log.append(payload)
        apply(self.state, c.decode(payload), len(self.log))
        apply(self.ref, c.decode(payload), len(self.log))
        self.p.applied(self.state)

    @rule()
    def move_history(self) -> None:
        move = self.p.start_move(self.state)
        if move is not None:
            self.p.build_move(move)
            self.p.commit_move(move, self.state)

    @rule()
    def restart(self) -> None:
        self.p.close()
        self.p = StorePersistence(self.dir, segment_rows=2, cache_size=0)
        self.state = self.p.recover(0, PARTS, len(self.log))
        self.state.kv.cache_size = 0

    @rule()
    def take_snapshot(self) -> None:
        pass  # (snapshots of the whole state are the in-memory format's)

    def materialized(self) -> PartitionState:
        out = canonical(self.state)
        table = self.state.invocations
        out.invocations = {i: inv for i, inv in sorted(table.everything().items())
                           if table.get(i) is not None}
        out.kv = {o: dict(sorted((self.state.kv.peek(o) or {}).items()))
                  for o in sorted(self.state.kv.all_objects())}
        return out

    def reference(self) -> PartitionState:
        out = canonical(self.ref)
        out.invocations = {i: inv for i, inv in out.invocations.items()
                           if self.ref.invocations.get(i) is not None}
        return out

    @invariant()
    def replay_is_identical(self) -> None:
        pass

    @invariant()
    def store_holds_the_state(self) -> None:
        assert_same(self.materialized(), self.reference())

    def teardown(self) -> None:
        try:
            assert_same(self.materialized(), self.reference())
        finally:
            self.p.close()
            shutil.rmtree(self.dir, ignore_errors=True)


DiskWorkload.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDiskWorkload = DiskWorkload.TestCase
