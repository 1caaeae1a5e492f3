"""Where snapshots come from: the partitions (and the schema) of a server, or bare states.

`Materializer.snapshot(...)` must run on the thread that owns the states (the server's event
loop): it reads them between two applied batches. It returns the previous `Snapshot` object
when nothing changed, so idle queries cost nothing here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
from rstq.core.model import PartitionState
from rstq.query import tables as t
from rstq.query.governor import CpuMeter
from rstq.query.history import HistoryNodes
from rstq.query.tables import STORES, sys_deployment, sys_partition, sys_service
from rstq.query.tables.base import RowContext
from rstq.query.views import PartitionViews, Snapshot

if TYPE_CHECKING:
    from rstq.core.ports import SchemaSource
    from rstq.core.processor import PartitionProcessor
    from rstq.core.schema import Schema
    from rstq.core.store.history import History


@dataclass(frozen=True)
class PartitionSource:
    """One partition as the query layer reads it."""

    state: PartitionState
    version: int | None = None  # None: unknown, always look for changes
    durable_lsn: int | None = None
    first_lsn: int | None = None
    snapshot_lsn: int | None = None
    history: History | None = None  # completed invocations in segment files (a store)


class Materializer:
    def __init__(self, in_flight: Callable[[str], bool] | None = None) -> None:
        # An INVOKED invocation is `running` when an attempt runs, else `ready`.
        self.rows = RowContext(in_flight) if in_flight is not None else RowContext()
        self.views: list[PartitionViews] = []
        self.history: list[HistoryNodes] = []
        self._snapshot: Snapshot | None = None
        self._schema_key: tuple[int, int] | None = None
        self._schema_tables: dict[str, pa.RecordBatch] = {}
        self._partition_key: tuple[object, ...] | None = None
        self.generation = 0
        self.cpu_s = 0.0  # interpreter time spent refreshing the views (a statistic)

    def _views(self, n: int) -> list[PartitionViews]:
        while len(self.views) < n:
            self.views.append(PartitionViews(len(self.views)))
            self.history.append(HistoryNodes())
        return self.views[:n]

    async def catch_up(self, parts: Sequence[PartitionSource], budget: int = 2000,
                       stores: Collection[str] | None = None) -> None:
        """Rebuild what changed in `stores` (default: all) in slices of `budget` keys,
        yielding to the event loop between slices, so a large first build (or a burst of
        changes) does not stall invocations. Call right before `snapshot`, which then has
        little left to do."""
        views = self._views(len(parts))
        while True:
            busy = False
            for pv, src in zip(views, parts, strict=True):
                if src.state is not pv.state or pv.behind(stores):
                    with CpuMeter() as cpu:
                        pv.refresh(src.state, src.version, self.rows, budget, stores)
                    self.cpu_s += cpu.total
                    busy = busy or pv.behind(stores)
                    await asyncio.sleep(0)
            if not busy:
                return

    def drain(self, parts: Sequence[PartitionSource]) -> None:
        """Collect what `apply` touched since the last query (bounded, see PartitionViews)."""
        for pv, src in zip(self.views, parts, strict=False):
            pv.drain(src.state)

    def snapshot(self, parts: Sequence[PartitionSource], schema: Schema | None = None,
                 stores: Collection[str] | None = None) -> Snapshot:
        """A consistent snapshot in which `stores` (default: all) are current; the other
        stores may be older (a query only reads the stores its tables name)."""
        with CpuMeter() as cpu:
            snap = self._take(parts, schema, stores)
        self.cpu_s += cpu.total
        return snap

    def _take(self, parts: Sequence[PartitionSource], schema: Schema | None,
              stores: Collection[str] | None) -> Snapshot:
        views = self._views(len(parts))
        for pv, src in zip(views, parts, strict=True):
            pv.refresh(src.state, src.version, self.rows, stores=stores)
        changed = False
        skey = (id(schema), schema.version) if schema is not None else (0, 0)
        if skey != self._schema_key:
            self._schema_key = skey
            self._schema_tables = schema_tables(schema)
            changed = True
        pkey = tuple((s.state.applied_lsn, s.durable_lsn, s.first_lsn, s.snapshot_lsn,
                      len(s.state.invocations), pv.epoch, HistoryNodes.key(s.history))
                     for s, pv in zip(parts, views, strict=True))
        if pkey != self._partition_key:
            self._partition_key = pkey
            changed = True
        if not changed and self._snapshot is not None:
            return self._snapshot
        self.generation += 1
        small = dict(self._schema_tables)
        small[t.SYS_PARTITION.name] = sys_partition.batch(parts, [v.version for v in views])
        all_stores = {s.name: tuple(pv.lanes[s.name].nodes + h.nodes(src.history, s, _now(src))
                                    for pv, h, src in zip(views, self.history, parts,
                                                          strict=False))
                      for s in STORES}
        self._snapshot = Snapshot(self.generation, all_stores, small)
        return self._snapshot


def _now(src: PartitionSource) -> int:
    """The partition's time (its last command's): what expiry is judged by, as in apply."""
    return getattr(src.state.invocations, "now", 0)


def schema_tables(schema: Schema | None) -> dict[str, pa.RecordBatch]:
    return {t.SYS_SERVICE.name: sys_service.batch(schema),
            t.SYS_DEPLOYMENT.name: sys_deployment.batch(schema)}


class ServerSource(Protocol):
    """What the query layer reads of a running server (`rstq.core.server.Server` is one): its
    partition processors, the metadata (None before start), and whether an invoker runs
    attempts (an `attempt_handler`)."""

    @property
    def processors(self) -> Sequence[PartitionProcessor]: ...

    @property
    def meta(self) -> SchemaSource | None: ...

    @property
    def attempt_handler(self) -> Callable[..., None] | None: ...


def server_sources(server: ServerSource) -> list[PartitionSource]:
    return [PartitionSource(p.state, p.version, p.log.durable_lsn, p.log.first_lsn,
                            p.stats.snapshot_lsn, getattr(p.persistence, "history", None))
            for p in server.processors]


def server_in_flight(server: ServerSource) -> Callable[[str], bool]:
    """With an invoker, an INVOKED invocation's attempt starts as soon as it is applied."""

    def in_flight(_inv_id: str) -> bool:
        return server.attempt_handler is not None

    return in_flight
