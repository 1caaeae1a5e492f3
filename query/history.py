"""SQL over history segments: completed invocations scanned as Arrow files, not Python rows.

The partition store moves completed invocations into segment files
(`rstq.core.store.history`). For each segment this module keeps, next to it, one Arrow file
per SQL store that reads invocations (sys_invocation & co., sys_journal,
sys_journal_events): the rows those stores would show, built once when the segment is
written (`encode`, a hook the SQL plugin registers; the move's thread runs it), or on first
read when missing (a segment written while SQL was off). The files are memory-mapped: a scan
of a million completed invocations is an Arrow scan, and memory holds none of it.

A snapshot's lanes then hold, after the views' nodes (live and recently completed
invocations), one `HistoryNode` per segment: its rows less those expired at the snapshot's
time and those tombstoned (purged). Rows are never in both: the views drop an invocation's
hot rows in the same loop turn its segment is recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from rstq.core.changes import Keyed
from rstq.core.invocations import expires_at
from rstq.core.model import Invocation
from rstq.core.store.history import History, Segment, journal_expires_at
from rstq.core.store.keys import inv_raw, inv_str
from rstq.query.pushdown import key_ranges
from rstq.query.tables import STORES
from rstq.query.tables.base import Cols, RowContext, Store, to_batch

log = logging.getLogger(__name__)

FORMAT = "2"  # 2: rows sorted by raw invocation id (partition key first)
_KEY = "__key"  # hidden columns: the invocation id of the row, and when the row expires
_EXPIRES = "__expires_at"
PARTITION_KEY = "partition_key"  # every history store has it
HISTORY_STORES: tuple[Store, ...] = tuple(s for s in STORES if s.source == Keyed.INVOCATIONS)
_CTX = RowContext()
_CHUNK = 256  # invocations turned into rows at a time


def file_for(history_dir: Path, segment_id: str, store: Store) -> Path:
    return history_dir / f"{segment_id}.sql-{store.name}.v{FORMAT}.arrow"


class SqlSink:
    """The SQL rows of one segment, one file per store, built chunk by chunk as the move
    reads the invocations (a `SegmentSink`). Derived data: written without fsync, rebuilt
    from the segment when missing or unreadable."""

    def __init__(self, history_dir: Path, segment_id: str) -> None:
        self.history_dir, self.segment_id = history_dir, segment_id
        self._parts: dict[str, list[pa.RecordBatch]] = {s.name: [] for s in HISTORY_STORES}

    def add(self, invocations: Sequence[Invocation]) -> None:
        for store in HISTORY_STORES:
            self._parts[store.name].append(_batch(store, invocations))

    def finish(self) -> None:
        for store in HISTORY_STORES:
            _write(file_for(self.history_dir, self.segment_id, store),
                   _concat(store, self._parts.pop(store.name)))


def encode(history_dir: Path, segment_id: str) -> SqlSink:
    """The encoder the SQL plugin registers with a partition's history."""
    return SqlSink(history_dir, segment_id)


def _concat(store: Store, parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if not parts:
        return _batch(store, [])
    if len(parts) == 1:
        return parts[0]
    batches = pa.Table.from_batches(parts).combine_chunks().to_batches()
    return batches[0] if batches else parts[0].slice(0, 0)


def _batch(store: Store, invocations: Sequence[Invocation]) -> pa.RecordBatch:
    # In the segment's order (raw id: partition key, then uuid), so a partition key is a
    # binary search (query/pushdown.py).
    invocations = sorted(invocations, key=lambda i: inv_raw(i.invocation_id))
    state: Any = SimpleNamespace(invocations={i.invocation_id: i for i in invocations})
    journal = store.name == "journal"
    rows, keys, expiry = [], [], []
    for inv in invocations:
        got = store.rows(state, inv.invocation_id, _CTX)
        rows.extend(got)
        if store.expand is None:
            keys.extend([inv.invocation_id] * len(got))
            expiry.extend([expires_at(inv)] * len(got))
    if store.expand is not None:
        cols, keys = store.expand(rows, frozenset(store.schema.names))
        by_id = {i.invocation_id: i for i in invocations}
        when = journal_expires_at if journal else expires_at
        expiry = [when(by_id[k]) for k in keys]
        n = len(keys)
        arrays = [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type)
                  for f in store.schema]
        batch = pa.RecordBatch.from_arrays(arrays, schema=store.schema)
    else:
        batch = to_batch(store.schema, rows)
    return batch.append_column(_KEY, pa.array(keys, pa.string())).append_column(
        _EXPIRES, pa.array(expiry, pa.int64()))


def _write(path: Path, batch: pa.RecordBatch) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as w:
        w.write_batch(batch)
    tmp.rename(path)


def _read(path: Path) -> pa.RecordBatch:
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


class HistoryNode:
    """One segment's rows of one store, as the engine reads a view node (`batch`,
    `derived`): loaded (memory-mapped, built if missing) on first read, on the query thread."""

    def __init__(self, history_dir: Path, segment: Segment, store: Store, now_ms: int,
                 void: frozenset[str]) -> None:
        self.path = file_for(history_dir, segment.meta.segment_id, store)
        self.segment = segment
        self.store = store
        self.schema = store.schema
        self.now_ms = now_ms
        self.void = void  # purged invocation ids
        self._lock = threading.Lock()
        self._full: pa.RecordBatch | None = None
        self._sorted = False
        self._pk_range: tuple[int, int] | None = None
        self._batch: pa.RecordBatch | None = None
        self._derived: dict[tuple[str, Cols], pa.RecordBatch] = {}

    def _file(self) -> pa.RecordBatch:
        """Every row of the file, expired or not (memory-mapped; built if missing)."""
        with self._lock:
            if self._full is None:
                try:
                    full = _read(self.path)
                except (OSError, pa.ArrowInvalid):
                    full = self._rebuild()
                pk = full.column(PARTITION_KEY)
                self._sorted = len(pk) < 2 or pc.all(pc.greater_equal(
                    pk.slice(1), pk.slice(0, len(pk) - 1))).as_py() is True
                self._pk_range = ((pk[0].as_py(), pk[-1].as_py()) if self._sorted and len(pk)
                                  else (pc.min(pk).as_py(), pc.max(pk).as_py()) if len(pk)
                                  else None)
                self._full = full
            return self._full

    def _keep(self, rows: pa.RecordBatch) -> pa.RecordBatch:
        """`rows` less those expired or purged, with the store's columns."""
        keep = pc.greater(rows.column(_EXPIRES), pa.scalar(self.now_ms, pa.int64()))
        if self.void:
            keep = pc.and_(keep, pc.invert(pc.is_in(
                rows.column(_KEY), value_set=pa.array(sorted(self.void), pa.string()))))
        kept = rows.filter(keep) if not pc.all(keep).as_py() else rows
        return pa.RecordBatch.from_arrays([kept.column(f.name) for f in self.schema],
                                          schema=self.schema)

    def _load(self) -> pa.RecordBatch:
        full = self._file()
        with self._lock:
            if self._batch is None:
                self._batch = self._keep(full)
            return self._batch

    def may_hold(self, keys: frozenset[int]) -> bool:
        """Whether a row of one of these partition keys can be in the segment."""
        self._file()
        if self._pk_range is None:
            return False
        lo, hi = self._pk_range
        return any(lo <= k <= hi for k in keys)

    def rows(self, keys: frozenset[int] | None) -> pa.RecordBatch:
        """The valid rows, only those of partition keys `keys` if given."""
        if keys is None:
            return self._load()
        full = self._file()
        if self._sorted:
            parts = [full.slice(a, b - a) for a, b in key_ranges(full.column(PARTITION_KEY),
                                                                 keys)]
            if not parts:
                return self._keep(full.slice(0, 0))
            some = parts[0] if len(parts) == 1 else pa.Table.from_batches(
                parts).combine_chunks().to_batches()[0]
        else:
            some = full.filter(pc.is_in(full.column(PARTITION_KEY),
                                        value_set=pa.array(sorted(keys), pa.uint64())))
        return self._keep(some)

    def _rebuild(self) -> pa.RecordBatch:
        seg = self.segment
        n = seg.table.num_rows
        batch = _concat(self.store, [
            _batch(self.store, [seg.invocation(i) for i in range(a, min(n, a + _CHUNK))])
            for a in range(0, n, _CHUNK)])
        try:
            _write(self.path, batch)
        except OSError as e:  # read-only, full: serve from memory this time
            log.warning("history SQL file %s not written: %s", self.path, e)
        return batch

    def batch(self, cols: Cols = None) -> pa.RecordBatch:
        return self._load()

    def derived(self, name: str, fn: Callable[[pa.RecordBatch], pa.RecordBatch],
                cols: Cols = None) -> pa.RecordBatch:
        out = self._derived.get((name, cols))
        if out is None:
            out = self._derived[(name, cols)] = fn(self._load())
        return out


class HistoryNodes:
    """Per partition: the current `HistoryNode`s of each store, reused while valid (same
    segment, same tombstones, no row expired since)."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, str], tuple[tuple[int, int], HistoryNode]] = {}

    @staticmethod
    def key(history: History | None) -> int:
        """Changes whenever the segments or tombstones do. (Rows expire at the partition's
        time, which moves only with an applied command: the snapshot key has its LSN.)"""
        return 0 if history is None else history.version

    def nodes(self, history: History | None, store: Store, now: int,
              ) -> tuple[HistoryNode, ...]:
        """The store's nodes, rows expired at `now` (the partition's time) left out."""
        if history is None or store not in HISTORY_STORES:
            return ()
        out = []
        live = set()
        for sid, seg in sorted(list(history.segments.items())):
            live.add((store.name, sid))
            void = history.tombstones.get(sid, set())
            expiring = seg.meta.min_expires_at <= now
            stamp = (len(void), now if expiring else 0)
            got = self._nodes.get((store.name, sid))
            if got is None or got[0] != stamp or got[1].segment is not seg:
                node = HistoryNode(history.directory, seg, store, now,
                                   frozenset(inv_str(r) for r in void))
                got = self._nodes[(store.name, sid)] = (stamp, node)
            out.append(got[1])
        for k in [k for k in self._nodes if k[0] == store.name and k not in live]:
            del self._nodes[k]
        return tuple(out)
