"""What every table module is made of: column helpers, by-name rows, stores and projections.

A table module declares its `TableDef` (columns with their docs) and, when its rows come from
a partition's keyed state, the `Store` that builds them: which `PartitionState` table owns the
rows (its keys are the change feed's keys, `rstq.core.changes.Keyed`) and a builder from one
such key to that key's rows, by column name. Several tables may read one store through a
`Select` (the invocation tables are views over one invocation store).
"""

from __future__ import annotations

import enum
import keyword
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rstq.core.changes import Keyed
from rstq.core.invocations import expired
from rstq.core.model import Invocation, PartitionState
from rstq.query.api import Column, TableDef

U32 = pa.uint32()
U64 = pa.uint64()
STR = pa.large_utf8()
BIN = pa.large_binary()
BOOL = pa.bool_()
TS = pa.timestamp("ms", tz="+00:00")
DUR = pa.duration("ms")
U32_LIST = pa.list_(pa.uint32())
STR_LIST = pa.list_(pa.large_utf8())

Row = tuple[Any, ...]
Cols = frozenset[str] | None  # the columns a reader needs; None: all


def col(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> Column:
    return Column(name, type_, doc, nullable)


PARTITION_KEY = col("partition_key", U64,
                    "Internal: the partition key (u64) of the row; the partition owning the "
                    "key range holds it.")


def row_type(name: str, columns: Sequence[Column]) -> Callable[..., Row]:
    """A row constructor taking the columns by keyword (every column defaults to NULL) and
    returning a plain tuple in the declared column order, which is what the views transpose.
    Generated, as `collections.namedtuple` does, because binding keywords to a compiled
    signature is the cheapest by-name construction in CPython (~3 µs for 60 columns, against
    ~5 µs for a namedtuple and ~12 µs for one plus `_replace`); builders run on the event loop."""
    names = [c.name for c in columns]
    for n in names:
        if not n.isidentifier() or keyword.iskeyword(n):
            raise ValueError(f"{name}: column {n!r} is not a Python identifier")
    params = ", ".join(f"{n}=None" for n in names)
    src = f"def {name}(*, {params}):\n    return ({', '.join(names)},)\n"
    namespace: dict[str, Any] = {}
    exec(src, namespace)  # noqa: S102 - the source is built from our own column names
    make: Callable[..., Row] = namespace[name]
    make.__doc__ = f"A row of {', '.join(names)} (by keyword; omitted: NULL)."
    return make


def utf8(b: bytes | None) -> str | None:
    if b is None:
        return None
    try:
        return b.decode()
    except UnicodeDecodeError:
        return None


def failure_text(f: tuple[int, str] | None) -> str | None:
    return None if f is None else f"[{f[0]}] {f[1]}"


def to_batch(schema: pa.Schema, rows: Sequence[Row]) -> pa.RecordBatch:
    """Rows (tuples in the schema's column order) as one batch."""
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=schema)
    arrays = [pa.array(values, type=f.type)
              for values, f in zip(zip(*rows, strict=True), schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class RowContext:
    """What row builders know besides the state."""

    # An INVOKED invocation is `running` when an attempt runs, else `ready`.
    in_flight: Callable[[str], bool] = lambda _inv_id: False


RowBuilder = Callable[[PartitionState, Any, RowContext], list[Row]]
# (rows, wanted columns) -> ({column: values} with at least the wanted ones, keys)
Expand = Callable[[list[Row], frozenset[str]], tuple[dict[str, list[Any]], list[str]]]


@dataclass(frozen=True)
class Store:
    """Rows kept current from one keyed table of the partition state (`source`): `rows`
    gives the rows one key contributes now (none when it is gone)."""

    name: str
    schema: pa.Schema
    source: Keyed
    rows: RowBuilder
    expand: Expand | None = None  # rows are captured cheaply, expanded off the loop
    deferred: frozenset[str] = frozenset()  # columns built only when read (views.Node)

    def keys(self, state: PartitionState) -> list[Hashable]:
        """Every key of the source table (a full rebuild); for invocations, those not in
        history segments (the engine reads those from the segments' own files)."""
        if self.source == Keyed.INVOCATIONS:
            return list(state.invocations.hot_ids())
        if self.source == Keyed.KV:
            return list(state.kv.all_objects())
        return list(getattr(state, self.source.value))


def hot_invocation(state: Any, inv_id: str) -> Invocation | None:
    """The invocation as the views show it: not when a history segment holds it (read from
    the segment instead), nor once expired (at the partition's time, as apply judges it).
    A plain dict of invocations (history encoding): any."""
    table = state.invocations
    if not hasattr(table, "hot"):
        got: Invocation | None = table.get(inv_id)
        return got
    inv: Invocation | None = table.hot(inv_id)
    if inv is not None and expired(inv, table.now):
        return None
    return inv


class Select:
    """A table read from a store: its columns are store columns `names` (in order), keeping
    the rows where `where` is not NULL."""

    def __init__(self, table: TableDef, names: Sequence[str], where: str | None = None
                 ) -> None:
        self.table, self.names, self.where = table, list(names), where
        self._by_table = dict(zip(table.schema.names, self.names, strict=True))

    def __call__(self, b: pa.RecordBatch) -> pa.RecordBatch:
        if self.where is not None:
            b = b.filter(pc.is_valid(b.column(self.where)))
        return pa.RecordBatch.from_arrays([b.column(n) for n in self.names],
                                          schema=self.table.schema)

    def store_columns(self, cols: Cols) -> Cols:
        """The store columns needed for the table columns `cols`."""
        if cols is None:
            return None
        out = {self._by_table[c] for c in cols}
        if self.where is not None:
            out.add(self.where)
        return frozenset(out)


class Kind(enum.StrEnum):
    STORE = "store"  # rows kept current from a store, per partition
    SMALL = "small"  # made whole with each snapshot (metadata, partitions)
    LIVE = "live"  # made at query time by a plugin (sys_span from the trace store)


@dataclass(frozen=True)
class Table:
    """A table as the engine reads it: from `store` (through `select`, or the store's rows
    as they are), or small, or live."""

    table: TableDef
    kind: Kind
    store: Store | None = None
    select: Select | None = None
