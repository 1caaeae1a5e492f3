"""Scans of history segments that read only what a query can match.

A table over invocations (sys_invocation & co., sys_journal, sys_journal_events) is, to
DataFusion, the union of its hot rows (a MemTable over the views) and a `HistoryDataset` over
the partition's history segments (`rstq.query.history`). DataFusion 55 hands a
`pyarrow.dataset.Dataset` the query's projection and filters (as exact filters: the dataset
applies them, pyarrow's scanner does) and calls, while it makes the physical plan,
`get_fragments(filter)` and then each fragment's `scanner(schema, columns=, filter=,
batch_size=)`; it only needs those methods, so a Python subclass serves (a duck-typed contract:
tests/query/test_pushdown.py pins it).

What prunes: the partition keys a matching row can have. A segment's rows (and their SQL files,
`history.encode`) are sorted by raw invocation id, whose first 8 bytes are the partition key,
so one key is a binary search per segment. The keys come from the query's optimized logical
plan, read before execution (`scan_keys`): `id = 'inv_…'`, `partition_key = N`, and
`target_service_name = S AND target_service_key = K` (the key's partition key), combined through
AND/OR/IN. A `LIMIT` without `ORDER BY` stops early by itself: a lane reads its segments one at
a time, lazily, and DataFusion stops pulling once it has the rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from rstq.core.ids import IdError, partition_key_of
from rstq.core.partitioning import partition_key_for

if TYPE_CHECKING:
    from datafusion import Expr, LogicalPlan
    from rstq.query.history import HistoryNode
    from rstq.query.tables.base import Select

PREFIX = "__history_"  # the name a history scan has in plans
stats = {"segments_read": 0}  # segments scans have read (a statistic: tests use it)
Keys = frozenset[int] | None  # partition keys a matching row can have; None: any

_ID = "id"
_PK = "partition_key"
_NAME, _KEY = "target_service_name", "target_service_key"


# --- what a query's filters allow ------------------------------------------------------------


@dataclass(frozen=True)
class _Bound:
    """What an expression (true for a row) says about that row: the partition keys, service
    names and service keys it can have (None: unconstrained). An over-approximation."""

    pks: Keys = None
    names: frozenset[str] | None = None
    keys: frozenset[str] | None = None

    def both(self, o: _Bound) -> _Bound:
        return _Bound(_meet(self.pks, o.pks), _meet(self.names, o.names),
                      _meet(self.keys, o.keys))

    def either(self, o: _Bound) -> _Bound:
        return _Bound(_join(self.pks, o.pks), _join(self.names, o.names),
                      _join(self.keys, o.keys))

    def partition_keys(self) -> Keys:
        pks = self.pks
        if self.names is not None and self.keys is not None:
            pks = _meet(pks, frozenset(partition_key_for(n, k)
                                       for n, k in itertools.product(self.names, self.keys)))
        return pks


def _meet(a: frozenset[Any] | None, b: frozenset[Any] | None) -> frozenset[Any] | None:
    return b if a is None else a if b is None else a & b


def _join(a: frozenset[Any] | None, b: frozenset[Any] | None) -> frozenset[Any] | None:
    return None if a is None or b is None else a | b


_ANY = _Bound()


def _literal(e: Expr) -> object:
    if type(e.to_variant()).__name__ != "Literal":
        return _ANY
    value = e.python_value()
    return value.as_py() if isinstance(value, pa.Scalar) else value


def _column(e: Expr) -> str | None:
    v = e.to_variant()
    return v.name() if type(v).__name__ == "Column" else None


def _equals(column: str, values: Iterable[object]) -> _Bound:
    vals = list(values)
    ints = [v for v in vals if isinstance(v, int)]
    if column == _PK and len(ints) == len(vals):
        return _Bound(pks=frozenset(ints))
    if not all(isinstance(v, str) for v in vals):
        return _ANY
    if column == _ID:
        pks = set()
        for v in vals:
            try:
                pks.add(partition_key_of(str(v)))
            except IdError:
                pass  # not an invocation id: no row has it
        return _Bound(pks=frozenset(pks))
    if column == _NAME:
        return _Bound(names=frozenset(str(v) for v in vals))
    if column == _KEY:
        return _Bound(keys=frozenset(str(v) for v in vals))
    return _ANY


def bound(e: Expr) -> _Bound:
    """What `e` being true says about a row's partition key (and service name and key)."""
    v = e.to_variant()
    kind = type(v).__name__
    if kind == "BinaryExpr":
        op = v.op()
        if op == "AND":
            return bound(v.left()).both(bound(v.right()))
        if op == "OR":
            return bound(v.left()).either(bound(v.right()))
        if op == "=":
            for c, lit in ((v.left(), v.right()), (v.right(), v.left())):
                name, value = _column(c), _literal(lit)
                if name is not None and value is not _ANY and value is not None:
                    return _equals(name, [value])
    elif kind == "InList" and not v.negated():
        name = _column(v.expr())
        values = [_literal(x) for x in v.list()]
        if name is not None and not any(x is _ANY or x is None for x in values):
            return _equals(name, values)
    return _ANY


def scan_keys(plan: LogicalPlan) -> dict[str, Keys]:
    """Per history scan in `plan` (by table name): the partition keys its rows can have.
    A table scanned several times gets the union (None if any scan is unconstrained)."""
    out: dict[str, Keys] = {}
    stack = [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.inputs())
        v = node.to_variant()
        if type(v).__name__ != "TableScan":
            continue
        name = v.table_name()
        if not name.startswith(PREFIX):
            continue
        b = _ANY
        for f in v.filters():
            b = b.both(bound(f))
        keys = b.partition_keys()
        out[name] = _join(out[name], keys) if name in out else keys
    return out


# --- the dataset -----------------------------------------------------------------------------


class HistoryDataset(ds.Dataset):
    """A table's rows in history segments, one fragment per partition (lane). `keys` is set
    by the engine before each execution (on its one query thread) and read by
    `get_fragments`. Only the methods DataFusion calls are implemented."""

    def __init__(self, name: str, schema: pa.Schema,
                 lanes: Sequence[Sequence[HistoryNode]], select: Select | None) -> None:
        # The base class is abstract (its __init__ refuses): it is never initialized, and
        # none of its own methods may be called (they would read a null dataset).
        self.name = name
        self._schema = schema
        self.lanes = [list(lane) for lane in lanes if lane]
        self.select = select
        self.keys: Keys = None

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def scanner(self, columns: list[str] | None = None,  # type: ignore[override]
                filter: pc.Expression | None = None, **_: object) -> ds.Scanner:
        # DataFusion asks the dataset's scanner only for the projected schema.
        empty = pa.Table.from_batches([], schema=self._schema)
        return ds.dataset(empty).scanner(columns=columns, filter=filter)

    def get_fragments(self, filter: pc.Expression | None = None) -> list[_Fragment]:
        keys = self.keys
        out = []
        for lane in self.lanes:
            nodes = [n for n in lane if keys is None or n.may_hold(keys)]
            if nodes:
                out.append(_Fragment(self, nodes, keys))
        return out


class _Fragment:
    def __init__(self, dataset: HistoryDataset, nodes: list[HistoryNode], keys: Keys) -> None:
        self.dataset, self.nodes, self.keys = dataset, nodes, keys

    def scanner(self, schema: pa.Schema | None = None, columns: list[str] | None = None,
                filter: pc.Expression | None = None, batch_size: int = 8192,
                **_: object) -> _Scan:
        return _Scan(self, columns, filter, batch_size)


class _Scan:
    """One lane's segments, read one at a time (lazily: a LIMIT stops early)."""

    def __init__(self, frag: _Fragment, columns: list[str] | None,
                 filter: pc.Expression | None, batch_size: int) -> None:
        self.frag, self.columns, self.filter, self.batch_size = frag, columns, filter, batch_size
        schema = frag.dataset.schema
        self.projected_schema = schema if columns is None else pa.schema(
            [schema.field(c) for c in columns])

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        d = self.frag.dataset
        for node in self.frag.nodes:
            stats["segments_read"] += 1
            b = node.rows(self.frag.keys)
            if not b.num_rows:
                continue
            if d.select is not None:
                b = d.select(b)
            table = pa.Table.from_batches([b])
            yield from ds.dataset(table).scanner(
                columns=self.columns, filter=self.filter, batch_size=self.batch_size,
                use_threads=False).to_batches()


def key_ranges(pk: pa.Array[Any], keys: frozenset[int]) -> list[tuple[int, int]]:
    """The row ranges of sorted partition keys `pk` that hold one of `keys`."""
    values = pk.to_numpy(zero_copy_only=False)
    want = np.array(sorted(keys), dtype=np.uint64)
    lo = np.searchsorted(values, want, side="left")
    hi = np.searchsorted(values, want, side="right")
    return [(int(a), int(b)) for a, b in zip(lo, hi, strict=True) if b > a]
