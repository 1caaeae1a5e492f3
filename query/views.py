"""Arrow views of the partitions' state, kept current incrementally.

Each store (invocations, journal, state, ...) keeps, per partition, a short list of immutable
*nodes*; a node is a set of rows owned by a set of keys (invocation ids, (service, key), ...).
A refresh takes the keys that `apply` touched since the last one (query/changes.py), rebuilds
the rows of just those keys into one new node, and marks those keys dead in the older nodes.
Small nodes are merged (tiered, so a row is merged O(log n) times).

The refresh runs on the partitions' own thread (the event loop) and does only Python work
proportional to the change: row tuples for touched keys and set operations. Arrow work (rows to
arrays, dropping dead keys, concatenation) is deferred to `Node.batch()`, which the query
thread calls; nodes are immutable and shared by every snapshot that contains them, so that
work is done once. A snapshot is a tuple of nodes per store and partition: consistent (taken
between two applied batches) and never changed afterwards.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rstq.core.model import PartitionState
from rstq.query import rows as r
from rstq.query import tables as t
from rstq.query.changes import TRACKED_FIELDS, track, tracked

MERGE_RATIO = 2  # merge the newest node into the previous one while it is <= this times bigger
MAX_NODES = 16  # per store and partition


def keystr(key: Hashable) -> str:
    if isinstance(key, str):
        return key
    return "\x00".join(key)  # type: ignore[arg-type]


class Node:
    """Rows of one store; materialized to a RecordBatch on first use, then cached."""

    __slots__ = ("_base", "_batch", "_dead", "_derived", "_expand", "_keyarr", "_keys", "_lock",
                 "_parts", "_rows", "schema")

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._rows: list[r.Row] | None = None
        self._keys: list[str] | None = None
        self._expand: Expand | None = None
        self._base: Node | None = None
        self._dead: frozenset[str] = frozenset()
        self._parts: list[Node] | None = None
        self._batch: pa.RecordBatch | None = None
        self._keyarr: pa.Array[Any] | None = None
        self._derived: dict[str, pa.RecordBatch] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_rows(cls, schema: pa.Schema, rows: list[r.Row], keys: list[str],
                expand: Expand | None = None) -> Node:
        """`expand`, when given, turns `rows` into (rows, keys) at materialization."""
        n = cls(schema)
        n._rows, n._keys, n._expand = rows, keys, expand
        return n

    def without(self, dead: Iterable[str]) -> Node:
        n = Node(self.schema)
        if self._base is not None and self._batch is None:  # collapse filter chains
            n._base, n._dead = self._base, self._dead.union(dead)
        else:
            n._base, n._dead = self, frozenset(dead)
        return n

    @classmethod
    def concat(cls, parts: list[Node]) -> Node:
        n = cls(parts[0].schema)
        n._parts = parts
        return n

    @property
    def materialized(self) -> bool:
        return self._batch is not None

    def batch(self) -> pa.RecordBatch:
        self._materialize()
        assert self._batch is not None
        return self._batch

    def keyarr(self) -> pa.Array[Any]:
        self._materialize()
        assert self._keyarr is not None
        return self._keyarr

    def derived(self, name: str, fn: Callable[[pa.RecordBatch], pa.RecordBatch]
                ) -> pa.RecordBatch:
        out = self._derived.get(name)
        if out is None:
            out = self._derived[name] = fn(self.batch())
        return out

    def _materialize(self) -> None:
        if self._batch is not None:
            return
        with self._lock:
            if self._batch is not None:
                return
            keyarr: pa.Array[Any]
            if self._rows is not None:
                keys = self._keys
                if self._expand is not None:
                    cols, keys = self._expand(self._rows)
                    batch = columns_to_batch(self.schema, cols)
                else:
                    batch = to_batch(self.schema, self._rows)
                assert keys is not None
                keyarr = pa.array(keys, pa.large_utf8())
            elif self._base is not None:
                base, base_keys = self._base.batch(), self._base.keyarr()
                dead = pa.array(list(self._dead), pa.large_utf8())
                mask = pc.invert(pc.is_in(base_keys, value_set=dead))
                batch, keyarr = base.filter(mask), base_keys.filter(mask)
            else:
                assert self._parts is not None
                batch = pa.concat_batches([p.batch() for p in self._parts])  # type: ignore[attr-defined]
                keyarr = pa.concat_arrays([p.keyarr() for p in self._parts])
            self._keyarr, self._batch = keyarr, batch
            self._rows = self._keys = self._base = self._parts = None  # let inputs go
            self._expand = None


def to_batch(schema: pa.Schema, rows: Sequence[r.Row]) -> pa.RecordBatch:
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=schema)
    return columns_to_batch(schema, list(zip(*rows, strict=True)))


def columns_to_batch(schema: pa.Schema, cols: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    arrays = [pa.array(col, type=f.type) for col, f in zip(cols, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


Expand = Callable[[list[r.Row]], tuple[list[list[Any]], list[str]]]


class Lane:
    """One store's nodes in one partition, with the live keys of each (writer side only)."""

    def __init__(self, schema: pa.Schema, expand: Expand | None = None) -> None:
        self.schema = schema
        self.expand = expand
        self.parts: list[tuple[Node, set[str]]] = []

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(n for n, _ in self.parts)

    def update(self, changed: dict[str, list[r.Row]]) -> None:
        if not changed:
            return
        dirty = set(changed)
        parts: list[tuple[Node, set[str]]] = []
        for node, keys in self.parts:
            hit = keys & dirty if len(keys) > len(dirty) else dirty & keys
            if hit:
                keys -= hit
                if not keys:
                    continue
                node = node.without(hit)
            parts.append((node, keys))
        rows: list[r.Row] = []
        rkeys: list[str] = []
        live: set[str] = set()
        for k, kr in changed.items():
            if kr:
                rows.extend(kr)
                rkeys.extend([k] * len(kr))
                live.add(k)
        if rows:
            parts.append((Node.of_rows(self.schema, rows, rkeys, self.expand), live))
        self.parts = _compact(parts)


def _compact(parts: list[tuple[Node, set[str]]]) -> list[tuple[Node, set[str]]]:
    def merge(i: int) -> None:
        (a, ka), (b, kb) = parts[i], parts[i + 1]
        if len(ka) >= len(kb):
            ka |= kb
            keys = ka
        else:
            kb |= ka
            keys = kb
        parts[i: i + 2] = [(Node.concat([a, b]), keys)]

    while len(parts) >= 2 and len(parts[-2][1]) <= MERGE_RATIO * len(parts[-1][1]):
        merge(len(parts) - 2)
    while len(parts) > MAX_NODES:
        sizes = [len(parts[i][1]) + len(parts[i + 1][1]) for i in range(len(parts) - 1)]
        merge(sizes.index(min(sizes)))
    return parts


@dataclass(frozen=True)
class Store:
    name: str
    schema: pa.Schema
    source: str  # the tracked PartitionState field whose keys own the rows
    expand: Expand | None = None  # rows are captured cheaply, expanded off the loop

    def lane(self) -> Lane:
        return Lane(self.schema, self.expand)


STORES = (
    Store("invocations", t.INVOCATION_STORE.schema, "invocations"),
    Store("journal", t.SYS_JOURNAL.schema, "invocations", r.journal_rows),
    Store("state", t.STATE.schema, "kv"),
    Store("inbox", t.SYS_INBOX.schema, "inboxes"),
    Store("locks", t.SYS_KEYED_SERVICE_STATUS.schema, "locks"),
    Store("timers", t.SYS_TIMER.schema, "timers"),
    Store("promises", t.SYS_PROMISE.schema, "promises"),
    Store("idempotency", t.SYS_IDEMPOTENCY.schema, "idempotency"),
)


@dataclass
class ViewStats:
    refreshes: int = 0
    full_rebuilds: int = 0
    keys_rebuilt: int = 0
    rows_built: int = 0


class PartitionViews:
    """The stores of one partition, refreshed from its `PartitionState`."""

    def __init__(self, partition_id: int) -> None:
        self.partition_id = partition_id
        self.state: PartitionState | None = None
        self.version: int | None = None
        self.lanes = {s.name: s.lane() for s in STORES}
        self.stats = ViewStats()
        # Keys seen changed but not rebuilt yet (a budgeted refresh leaves the rest here).
        self.pending: dict[str, set[Any]] = {f: set() for f in TRACKED_FIELDS}

    @property
    def behind(self) -> bool:
        return any(self.pending.values())

    def refresh(self, state: PartitionState, version: int | None,
                in_flight: Callable[[str], bool], budget: int | None = None) -> bool:
        """Bring the stores up to date with `state`; False when nothing could have changed.

        With a `budget`, rebuild at most that many keys per table and keep the rest pending:
        the first build over a large history then runs in slices between which the event
        loop serves invocations (`Materializer.catch_up`)."""
        if (state is self.state and version is not None and version == self.version
                and not self.behind):
            return False
        self.stats.refreshes += 1
        if state is not self.state:  # first time, or the processor loaded a snapshot
            track(state)
            self.lanes = {s.name: s.lane() for s in STORES}
            self.pending = {f: set(dict.keys(tracked(state, f))) for f in TRACKED_FIELDS}
            for f in TRACKED_FIELDS:
                tracked(state, f).take()
            self.stats.full_rebuilds += 1
        else:
            for f in TRACKED_FIELDS:
                self.pending[f] |= tracked(state, f).take()
        touched: dict[str, set[Any]] = {}
        for f in TRACKED_FIELDS:
            keys = self.pending[f]
            if budget is not None and len(keys) > budget:
                chunk = set(itertools.islice(keys, budget))
                keys -= chunk
                touched[f] = chunk
            else:
                touched[f], self.pending[f] = keys, set()
        self.state, self.version = state, version
        changed = False
        for store in STORES:
            keys = touched[store.source]
            if not keys:
                continue
            rows = {keystr(k): self._rows(store.name, state, k, in_flight) for k in keys}
            self.stats.keys_rebuilt += len(rows)
            self.stats.rows_built += sum(len(v) for v in rows.values())
            self.lanes[store.name].update(rows)
            changed = True
        return changed

    def _rows(self, store: str, state: PartitionState, key: Any,
              in_flight: Callable[[str], bool]) -> list[r.Row]:
        if store == "invocations":
            inv = dict.get(state.invocations, key)
            return [] if inv is None else [r.invocation_row(inv, in_flight(key))]
        if store == "journal":
            return r.journal_proto(dict.get(state.invocations, key))
        builder = _BUILDERS[store]
        return builder(state, key)


_BUILDERS: dict[str, r.RowBuilder] = {
    "state": r.kv_rows,
    "inbox": r.inbox_rows,
    "locks": r.lock_rows,
    "timers": r.timer_rows,
    "promises": r.promise_rows,
    "idempotency": r.idempotency_rows,
}


@dataclass(frozen=True)
class Snapshot:
    """Everything a query sees: per store, per partition, the nodes; plus the small tables."""

    generation: int
    stores: dict[str, tuple[tuple[Node, ...], ...]]
    small: dict[str, pa.RecordBatch]
    taken_at_versions: tuple[int | None, ...] = field(default=())
