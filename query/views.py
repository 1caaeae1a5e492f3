"""Arrow views of the partitions' state, kept current incrementally.

Each store (invocations, journal, state, ...) keeps, per partition, a short list of immutable
*nodes*; a node is a set of rows owned by a set of keys (invocation ids, (service, key), ...).
A refresh takes the keys that `apply` marked since the last one (the partition's change feed,
`rstq.core.changes`), rebuilds
the rows of just those keys into one new node, and marks those keys dead in the older nodes.
Small nodes are merged (tiered, so a row is merged O(log n) times).

The refresh runs on the partitions' own thread (the event loop) and does only Python work
proportional to the change: row tuples for touched keys and set operations. Arrow work (rows to
arrays, dropping dead keys, concatenation) is deferred to `Node.batch(cols)`, which the query
thread calls; nodes are immutable and shared by every snapshot that contains them, so that
work is done once. A snapshot is a tuple of nodes per store and partition: consistent (taken
between two applied batches) and never changed afterwards.

What a query does not read, it does not pay for: a refresh rebuilds only the stores its tables
read (the other stores keep their touched keys pending), small nodes build only the columns
asked for (the journal's decoded columns are deferred even in big ones), and the newest node
is kept out of merges, as its keys are the likeliest to change again (an invocation is touched
again when it completes) and dropping them from a small node is cheap.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from rstq.core.changes import ChangeFeed, Keyed
from rstq.core.model import PartitionState
from rstq.query.tables import STORES
from rstq.query.tables.base import Cols, Expand, Row, RowContext, Store

MERGE_RATIO = 2  # merge the newest node into the previous one while it is <= this times bigger
MAX_NODES = 16  # per store and partition
HOT_NODES = 1  # newest nodes kept out of merges


def keystr(key: Hashable) -> str:
    if isinstance(key, str):
        return key
    return "\x00".join(key)  # type: ignore[arg-type]


def courteous() -> None:
    """Let the event loop thread have the interpreter lock if this thread has held it for
    a while: materializing views is background work, and without this the loop waits a
    whole switch interval (5 ms) for each turn while a query builds Arrow arrays."""
    now = time.perf_counter()
    last = _held_since.at
    if last is None or now - last >= COURTESY_S:
        if last is not None:
            os.sched_yield()  # releases the lock: a waiting thread takes it
        _held_since.at = time.perf_counter()


COURTESY_S = 0.001


class _HeldSince(threading.local):
    at: float | None = None


_held_since = _HeldSince()

BIG_NODE = 4096  # nodes of at least this many rows are built whole (then their inputs go)



class Shape:
    """A schema's fields as plain Python (iterating a pa.Schema makes Field objects)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.names: tuple[str, ...] = tuple(schema.names)
        self.types: tuple[Any, ...] = tuple(f.type for f in schema)
        self.all: frozenset[str] = frozenset(self.names)
        self.not_null: frozenset[str] = frozenset(f.name for f in schema if not f.nullable)
        self.index = {n: i for i, n in enumerate(self.names)}


_SHAPES: dict[int, tuple[pa.Schema, Shape]] = {}


def shape(schema: pa.Schema) -> Shape:
    got = _SHAPES.get(id(schema))
    if got is None or got[0] is not schema:
        got = _SHAPES[id(schema)] = (schema, Shape(schema))
    return got[1]


class Node:
    """Rows of one store; materialized to Arrow on first use, column by column, and cached.

    A reader asks for the columns it needs (`batch(cols)`); the others come back as NULL
    stand-ins. Small nodes (the newest changes, rebuilt on every refresh) thus never pay for
    columns nobody reads; a node of `BIG_NODE` rows or more is built whole, and then lets its
    inputs (Python rows, or the nodes it filters or concatenates) go."""

    __slots__ = ("_base", "_batches", "_cols", "_dead", "_deferred", "_derived", "_expand",
                 "_keyarr", "_keys", "_lock", "_mask", "_parts", "_rows", "_shape", "full",
                 "schema", "size")

    def __init__(self, schema: pa.Schema, size: int) -> None:
        self.schema = schema
        self._shape = shape(schema)
        self.size = size  # rows (an estimate until built: dead keys may own several)
        self.full = False
        self._rows: list[Row] | None = None
        self._keys: list[str] | None = None
        self._expand: Expand | None = None
        self._deferred: frozenset[str] = frozenset()
        self._base: Node | None = None
        self._dead: frozenset[str] = frozenset()
        self._mask: pa.Array[Any] | None = None
        self._parts: list[Node] | None = None
        self._cols: dict[str, pa.Array[Any]] = {}
        self._batches: dict[Cols, pa.RecordBatch] = {}
        self._keyarr: pa.Array[Any] | None = None
        self._derived: dict[tuple[str, Cols], pa.RecordBatch] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_rows(cls, schema: pa.Schema, rows: list[Row], keys: list[str],
                expand: Expand | None = None, deferred: frozenset[str] = frozenset()
                ) -> Node:
        """`expand`, when given, turns `rows` into (columns, keys) at materialization; the
        `deferred` columns (costly to expand) are built only when a reader asks for them,
        also in big nodes, which keep the rows they need (one per key) until then."""
        n = cls(schema, len(keys))
        n._rows, n._keys, n._expand, n._deferred = rows, keys, expand, deferred
        return n

    def without(self, dead: Iterable[str]) -> Node:
        if self._base is not None and not self.full:  # collapse filter chains
            n = Node(self.schema, self._base.size)
            n._base, n._dead = self._base, self._dead.union(dead)
        else:
            n = Node(self.schema, self.size)
            n._base, n._dead = self, frozenset(dead)
        n._expand, n._deferred = self._expand, self._deferred
        return n

    @classmethod
    def concat(cls, parts: list[Node]) -> Node:
        n = cls(parts[0].schema, sum(p.size for p in parts))
        n._parts = parts
        n._expand, n._deferred = parts[0]._expand, parts[0]._deferred
        return n

    def source(self) -> tuple[list[str], list[Row]] | None:
        """The Python rows behind this node's rows, in order, with the key of each; None
        once some node below has let its rows go (it was built whole)."""
        with self._lock:
            return self._source()

    def _source(self) -> tuple[list[str], list[Row]] | None:
        if self._rows is not None:
            if self._keys is not None:
                return self._keys, self._rows
            return [row[0] for row in self._rows], self._rows
        if self._base is not None:
            base = self._base.source()
            if base is None:
                return None
            dead = self._dead
            live = [(k, row) for k, row in zip(*base, strict=True) if k not in dead]
            return [k for k, _ in live], [row for _, row in live]
        if self._parts is None:
            return None
        keys: list[str] = []
        rows: list[Row] = []
        for p in self._parts:
            src = p.source()
            if src is None:
                return None
            keys.extend(src[0])
            rows.extend(src[1])
        return keys, rows

    def _children(self) -> list[Node]:
        if self._base is not None:
            return [self._base]
        return self._parts or []

    def has(self, names: Iterable[str]) -> bool:
        """Whether the columns `names` are built here or below without Python rows to
        convert (then reading them costs filters and copies at most)."""
        with self._lock:
            if self.full or all(n in self._cols for n in names):
                return True
            if self._rows is not None:
                return False
            children = self._children()
            return bool(children) and all(c.has(names) for c in children)

    def _flatten(self) -> bool:
        """Become a rows node over the Python rows below (same order): building many
        columns of a big node from them converts each row once, where going through the
        nodes below would filter and concatenate every column at each level."""
        src = self._source()
        if src is None:
            return False
        self._keys, self._rows = src
        self._base = self._parts = None
        self._mask = None
        return True

    def batch(self, cols: Cols = None) -> pa.RecordBatch:
        """All rows, with `cols` (None: every column) filled in, the others NULL."""
        with self._lock:
            self._ensure(cols)
            if self.full:
                cols = None
            out = self._batches.get(cols)
            if out is None:
                assert self._keyarr is not None
                n = len(self._keyarr)
                sh = self._shape
                arrays = [self._cols.get(name) for name in sh.names]
                out = self._batches[cols] = pa.RecordBatch.from_arrays(
                    [a if a is not None else pa.nulls(n, ty) for a, ty in
                     zip(arrays, sh.types, strict=True)], schema=self.schema)
            return out

    def keyarr(self) -> pa.Array[Any]:
        with self._lock:
            self._ensure(frozenset())
            assert self._keyarr is not None
            return self._keyarr

    def derived(self, name: str, fn: Callable[[pa.RecordBatch], pa.RecordBatch],
                cols: Cols = None) -> pa.RecordBatch:
        out = self._derived.get((name, cols))
        if out is None:
            out = self._derived[(name, cols)] = fn(self.batch(cols))
        return out

    def _columns(self, names: list[str]) -> list[pa.Array[Any]]:
        with self._lock:
            self._ensure(frozenset(names))
            return [self._cols[n] for n in names]

    def _ensure(self, cols: Cols) -> None:
        """Build the missing columns of `cols` (and the keys); call with the lock held."""
        if self.full:
            return
        sh = self._shape
        big = self.size >= BIG_NODE
        if cols is None:
            cols = sh.all
        elif big:
            cols = sh.all.difference(self._deferred).union(cols)
        # NOT NULL columns cannot have NULL stand-ins: always built.
        missing = [n for n in sh.names if (n in cols or n in sh.not_null)
                   and n not in self._cols]
        if self._keyarr is not None and not missing:
            return
        if self._rows is None and len(missing) > len(sh.names) // 4 and \
                not any(child.has(missing) for child in self._children()):
            self._flatten()  # nothing below has them: convert the Python rows once
        if self._rows is not None:
            self._from_rows(missing)
        elif self._base is not None:
            base = self._base
            if self._mask is None:
                base_keys = base.keyarr()
                dead = pa.array(list(self._dead), pa.large_utf8())
                self._mask = pc.invert(pc.is_in(base_keys, value_set=dead))
                self._keyarr = base_keys.filter(self._mask)
            if missing:
                for name, col in zip(missing, base._columns(missing), strict=True):
                    courteous()
                    self._cols[name] = col.filter(self._mask)
        else:
            assert self._parts is not None
            if self._keyarr is None:
                self._keyarr = pa.concat_arrays([p.keyarr() for p in self._parts])
            if missing:
                per_part = [p._columns(missing) for p in self._parts]
                for i, name in enumerate(missing):
                    courteous()
                    self._cols[name] = pa.concat_arrays([cols[i] for cols in per_part])
        assert self._keyarr is not None
        self.size = len(self._keyarr)
        if len(self._cols) == len(sh.names):
            self.full = True  # let the inputs go
            self._rows = self._keys = self._base = self._parts = None
            self._expand = None
            self._mask = None
            self._batches.clear()
        elif big and self._rows is None and len(self._cols) + len(self._deferred) >= \
                len(sh.names):
            # Settled: keep just the rows the deferred columns need; let the nodes go.
            self._flatten()

    def _from_rows(self, missing: list[str]) -> None:
        assert self._rows is not None
        keys: list[str] | None
        sh = self._shape
        if self._expand is not None:
            cols, keys = self._expand(self._rows, frozenset(missing))
            for name, ty in zip(sh.names, sh.types, strict=True):
                col = cols.get(name)
                if col is not None and name not in self._cols:
                    courteous()
                    self._cols[name] = pa.array(col, type=ty)
        else:
            keys = self._keys
            if len(missing) > len(sh.names) // 4:  # most: transpose once, in C
                for name, ty, values in zip(sh.names, sh.types, zip(*self._rows, strict=True),
                                            strict=True):
                    if name in missing:
                        courteous()
                        self._cols[name] = pa.array(values, type=ty)
            else:
                for name in missing:
                    courteous()
                    i = sh.index[name]
                    self._cols[name] = pa.array([row[i] for row in self._rows], type=sh.types[i])
        if self._keyarr is None:
            assert keys is not None
            self._keyarr = pa.array(keys, pa.large_utf8())


class Lane:
    """One store's nodes in one partition, with the live keys of each (writer side only)."""

    def __init__(self, schema: pa.Schema, expand: Expand | None = None,
                 deferred: frozenset[str] = frozenset()) -> None:
        self.schema = schema
        self.expand = expand
        self.deferred = deferred
        self.parts: list[tuple[Node, set[str]]] = []

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(n for n, _ in self.parts)

    @property
    def size(self) -> int:
        """Live keys shown."""
        return sum(len(keys) for _, keys in self.parts)

    def shown_keys(self) -> set[str]:
        return set().union(*(keys for _, keys in self.parts))

    def update(self, changed: dict[str, list[Row]]) -> None:
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
        rows: list[Row] = []
        rkeys: list[str] = []
        live: set[str] = set()
        for k, kr in changed.items():
            if kr:
                rows.extend(kr)
                rkeys.extend([k] * len(kr))
                live.add(k)
        if rows:
            parts.append((Node.of_rows(self.schema, rows, rkeys, self.expand, self.deferred),
                          live))
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

    # The newest node stays apart: its keys are the likeliest to change again soon (an
    # invocation is touched again when it completes), and dropping them from a small node
    # costs little, from a merged big one a copy of all its rows.
    while (n := len(parts) - HOT_NODES) >= 2 and \
            len(parts[n - 2][1]) <= MERGE_RATIO * len(parts[n - 1][1]):
        merge(n - 2)
    while len(parts) > MAX_NODES:
        last = max(len(parts) - HOT_NODES, 2) - 1
        sizes = [len(parts[i][1]) + len(parts[i + 1][1]) for i in range(last)]
        merge(sizes.index(min(sizes)))
    return parts


@dataclass
class ViewStats:
    refreshes: int = 0
    full_rebuilds: int = 0
    keys_rebuilt: int = 0
    rows_built: int = 0
    pending_trimmed: int = 0


STORE_NAMES = frozenset(s.name for s in STORES)
# The stores whose rows each keyed table of the state owns (the change feed's tables).
_BY_SOURCE: dict[Keyed, tuple[Store, ...]] = {
    k: tuple(s for s in STORES if s.source == k) for k in Keyed}


def _lane(store: Store) -> Lane:
    return Lane(store.schema, store.expand, store.deferred)
PENDING_TRIM = 4096  # trim a store's pending keys past this many (and past 2x its live keys)


class PartitionViews:
    """The stores of one partition, refreshed from its `PartitionState`.

    Stores are refreshed lazily and separately: a query rebuilds only the stores its tables
    read, and the keys touched meanwhile wait in a per-store `pending` set. Keys that
    vanished before any query saw them are trimmed from it (`drain`), so it stays bounded
    by the size of the tables even when one store is never queried."""

    def __init__(self, partition_id: int) -> None:
        self.partition_id = partition_id
        self.state: PartitionState | None = None
        self.version: int | None = None
        self.lanes = {s.name: _lane(s) for s in STORES}
        self.stats = ViewStats()
        self.epoch = 0  # bumped whenever a lane changes: snapshots compare it
        # Keys seen changed but not rebuilt yet, per store.
        self.pending: dict[str, set[Any]] = {s.name: set() for s in STORES}
        self._feed: ChangeFeed | None = None  # this reader's cut of state.changes

    def behind(self, stores: Iterable[str] | None = None) -> bool:
        names = STORE_NAMES if stores is None else stores
        return any(self.pending[n] for n in names)

    def drain(self, state: PartitionState) -> None:
        """Move the keys `apply` marked into the stores' pending sets (call on the state's
        thread). Cheap; the server calls it periodically so the change feed never piles up."""
        if state is not self.state:
            return
        assert self._feed is not None
        for table, keys in self._feed.take().items():
            if keys:
                for store in _BY_SOURCE[table]:
                    self.pending[store.name] |= keys
        for store in STORES:
            pend = self.pending[store.name]
            if len(pend) > PENDING_TRIM:
                self._trim(state, store, pend)

    def _trim(self, state: PartitionState, store: Store, pend: set[Any]) -> None:
        """Forget pending keys that are neither in the state nor shown by the views."""
        lane = self.lanes[store.name]
        live = getattr(state, store.source.value).keys()
        if len(pend) <= 2 * (len(live) + lane.size):
            return
        before = len(pend)
        gone = [k for k in pend if k not in live]
        if gone:
            shown = lane.shown_keys()
            pend.difference_update([k for k in gone if keystr(k) not in shown])
        self.stats.pending_trimmed += before - len(pend)

    def refresh(self, state: PartitionState, version: int | None,
                ctx: RowContext, budget: int | None = None,
                stores: Iterable[str] | None = None) -> bool:
        """Bring `stores` (default: all) up to date with `state`; False when none changed.

        With a `budget`, rebuild at most that many keys per store and keep the rest pending:
        the first build over a large history then runs in slices between which the event
        loop serves invocations (`Materializer.catch_up`)."""
        names = STORE_NAMES if stores is None else frozenset(stores)
        if (state is self.state and version is not None and version == self.version
                and not self.behind(names)):
            return False
        self.stats.refreshes += 1
        if state is not self.state:  # first time, or the processor loaded a snapshot
            if self.state is not None and self._feed is not None:
                self.state.changes.unsubscribe(self._feed)
            self._feed = state.changes.subscribe()  # from now on; everything is rebuilt now
            self.lanes = {s.name: _lane(s) for s in STORES}
            self.pending = {s.name: set(s.keys(state)) for s in STORES}
            self.stats.full_rebuilds += 1
            self.state = state
            self.epoch += 1
        else:
            self.drain(state)
        self.version = version
        changed = False
        for store in STORES:
            if store.name not in names:
                continue
            keys = self.pending[store.name]
            if not keys:
                continue
            if budget is not None and len(keys) > budget:
                chunk = set(itertools.islice(keys, budget))
                keys -= chunk
            else:
                chunk, self.pending[store.name] = keys, set()
            rows = {keystr(k): store.rows(state, k, ctx) for k in chunk}
            self.stats.keys_rebuilt += len(rows)
            self.stats.rows_built += sum(len(v) for v in rows.values())
            self.lanes[store.name].update(rows)
            changed = True
        if changed:
            self.epoch += 1
        return changed


if TYPE_CHECKING:
    from rstq.query.history import HistoryNode

    ReadNode: TypeAlias = Node | HistoryNode  # what a lane holds: view nodes, then history segments


@dataclass(frozen=True)
class Snapshot:
    """Everything a query sees: per store, per partition, the nodes (the views', then the
    history segments'); plus the small tables."""

    generation: int
    stores: dict[str, tuple[tuple[ReadNode, ...], ...]]
    small: dict[str, pa.RecordBatch]
