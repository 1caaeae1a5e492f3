"""Synthetic history applied straight to partition states (benchmarks and tests).

Goes through `core.apply` like the processor does, but without the log or HTTP, so a large
history (e.g. Restate's benchmark shape: 100k objects with state, ~140k invocations, ~650k
journal rows) loads in seconds. Payloads are real protocol messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.ids import new_invocation_id
from rstq.core.model import PartitionState
from rstq.core.partitioning import partition_key_for, partition_of
from rstq.protocol import ids as pids
from rstq.protocol import messages as pm

T0 = 1_760_000_000_000


def _entry(inv: str, epoch: int, msg: pm.Message) -> c.AppendEntry:
    return c.AppendEntry(inv, epoch, msg.TYPE, msg.encode())


class Loader:
    """Applies invocations to `states` (one per partition), each to its owning partition."""

    def __init__(self, states: Sequence[PartitionState], start_ms: int = T0) -> None:
        self.states = states
        self.ts = start_ms
        self.lsn = [s.applied_lsn for s in states]
        self.n = 0

    def _apply(self, inv_id: str, cmd: c.Command) -> None:
        pk = pids.InvocationId.parse(inv_id).partition_key
        p = partition_of(int(pk), len(self.states))
        self.lsn[p] += 1
        self.ts += 1
        apply(self.states[p], c.Envelope(self.ts, cmd), self.lsn[p])

    def greet(self, key: str, count: int = 1, complete: bool = True) -> str:
        """Greeter/<key>/greet: reads and sets state `count`, returns a greeting."""
        self.n += 1
        inv = str(pids.InvocationId(partition_key_for("Greeter", key),
                                    (self.ts << 64) + self.n))
        self._apply(inv, c.Invoke(inv, "Greeter", "greet", key, c.ServiceTy.VIRTUAL_OBJECT,
                                  c.HandlerTy.EXCLUSIVE, b'"hi"', deployment_id="dp_bench",
                                  protocol_version=6))
        self._apply(inv, _entry(inv, 1, pm.GetEagerStateCommandMessage(
            key=b"count", void=pm.Void())))
        self._apply(inv, _entry(inv, 1, pm.SetStateCommandMessage(
            key=b"count", value=pm.Value(content=str(count).encode()))))
        if complete:
            self._apply(inv, _entry(inv, 1, pm.OutputCommandMessage(
                value=pm.Value(content=f'"hello {key}"'.encode()))))
            self._apply(inv, c.End(inv, 1))
        return inv

    def steps(self, runs: int = 2, complete: bool = True) -> str:
        """Steps/run: `runs` ctx.run steps, each with its completion."""
        inv = new_invocation_id("Steps", None, self.ts)
        self._apply(inv, c.Invoke(inv, "Steps", "run", "", c.ServiceTy.SERVICE,
                                  c.HandlerTy.NONE, b"{}", deployment_id="dp_bench",
                                  protocol_version=6))
        for i in range(runs):
            self._apply(inv, _entry(inv, 1, pm.RunCommandMessage(result_completion_id=i + 1,
                                                                 name=f"step-{i}")))
            self._apply(inv, _entry(inv, 1, pm.RunCompletionNotificationMessage(
                completion_id=i + 1, value=pm.Value(content=b'"done"'))))
        if complete:
            self._apply(inv, _entry(inv, 1, pm.OutputCommandMessage(value=pm.Value(
                content=b'"ok"'))))
            self._apply(inv, c.End(inv, 1))
        return inv


def restate_bench_shape(states: Sequence[PartitionState], keys: int = 100_000,
                        steps: int = 42_000) -> Loader:
    """Restate's measured data: `keys` Greeter keys with one state row each (4 journal entries
    per greet) and `steps` 2-step Steps invocations (6 entries each): 142k invocations and
    652k journal rows at the defaults."""
    ld = Loader(states)
    for i in range(keys):
        ld.greet(f"u{i}")
        if i < steps:
            ld.steps(2)
    return ld
