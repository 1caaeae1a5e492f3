"""The SQL engine: DataFusion over snapshots of the Arrow views, read-only, with limits.

Every query gets its own `SessionContext` (≈0.1 ms) whose `restate.public` schema is a Python
SchemaProvider over one immutable `Snapshot`: all its tables come from the same instant, and a
refresh in the meantime never changes what a running query reads. Table providers (zero-copy
MemTables) are cached per table by node identity, so unchanged tables are reused as they are.

Snapshots are taken on the thread that owns the state (`owner_loop`, the server's event loop);
planning and execution run on the engine's own thread and event loop, with the GIL released
while DataFusion works, so a slow query never stalls invocations. A query past its deadline is
cancelled (its stream dropped); memory is capped per query by a DataFusion memory pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import (
    DataFrame,
    RecordBatchStream,
    RuntimeEnvBuilder,
    SessionConfig,
    SessionContext,
    SQLOptions,
)
from datafusion.catalog import CatalogProvider, SchemaProvider, Table
from rstq.query import errors, pushdown
from rstq.query import tables as t
from rstq.query.api import QueryError, TableDef
from rstq.query.governor import CpuMeter, Governor
from rstq.query.history import HistoryNode
from rstq.query.pushdown import HistoryDataset
from rstq.query.tables.base import Cols, Kind, Select, to_batch
from rstq.query.views import STORE_NAMES, Snapshot

if TYPE_CHECKING:
    from rstq.query.source import Materializer
    from rstq.query.views import ReadNode

T = TypeVar("T")
CATALOG = "restate"
SCHEMA = "public"

def named_tables(query: str | None) -> list[TableDef]:
    """The tables a query may read: those whose name appears in its text (a query can only
    read a table it names). Every other table is an empty stand-in for it."""
    if query is None:
        return list(t.TABLES)
    text = query.lower()
    return [td for td in t.TABLES if td.name in text]


_COUNT_STAR = re.compile(r"\(\s*\*\s*\)")
_WORD = re.compile(r"[a-z_][a-z0-9_$]*")


def words_read(query: str | None) -> frozenset[str] | None:
    """The identifiers in `query`, through which it can name columns; None when it may
    read every column: a wildcard (`*`, `t.*`, but `count(*)` is none), a NATURAL join, or
    an escaped identifier. An over-approximation (any word counts, keywords and strings too),
    so a column a query reads is never left out."""
    if query is None:
        return None
    text = query.lower()
    if "*" in _COUNT_STAR.sub("", text) or "natural" in text or "u&" in text:
        return None
    return frozenset(_WORD.findall(text))


def columns_read(td: TableDef, words: frozenset[str] | None) -> Cols:
    """The columns of `td` a query with `words` may read (None: all)."""
    if words is None:
        return None
    return frozenset(c.name for c in td.columns if c.name in words)


def needed_stores(query: str | None) -> frozenset[str]:
    """The view stores the tables named by `query` read from."""
    reads = (t.READS[td.name] for td in named_tables(query))
    return frozenset(r.store.name for r in reads if r.store is not None)


@dataclass
class Limits:
    timeout_s: float = 30.0
    memory_bytes: int = 512 << 20
    max_concurrent: int = 4
    target_partitions: int = 0  # 0: DataFusion's default (cores)
    # While invocations run, SQL may use this share of the interpreter's time (query/governor.py);
    # 0 or 1: no limit.
    cpu_share: float = 0.05
    cpu_burst_s: float = 0.1
    # While invocations run, keeping the views current may take this share of the time:
    # after a refresh that cost C seconds of CPU, the next waits until C / share have passed
    # (queries arriving meanwhile share it), but never longer than `refresh_interval_s`.
    refresh_share: float = 0.02
    refresh_interval_s: float = 0.5


# --- error mapping ---------------------------------------------------------------------------


def query_error(e: BaseException) -> QueryError:
    """DataFusion's exception as a QueryError with a readable message (query/errors.py)."""
    return errors.query_error(e, (td.name for td in t.TABLES))


# --- catalog over one snapshot ---------------------------------------------------------------


class _Schema(SchemaProvider):
    def __init__(self, tables: dict[str, Table]) -> None:
        self._tables = tables
        self._names = list(tables)

    @property  # a list property, or information_schema loses the tables (sql-stack.md)
    def table_names(self) -> list[str]:  # type: ignore[override]
        return self._names

    def table(self, name: str) -> Table | None:
        return self._tables.get(name)

    def table_exist(self, name: str) -> bool:
        return name in self._tables


class _Catalog(CatalogProvider):
    def __init__(self, schemas: dict[str, SchemaProvider]) -> None:
        self._schemas = schemas

    def schema_names(self) -> set[str]:
        return set(self._schemas)

    def schema(self, name: str) -> SchemaProvider | None:  # type: ignore[override]
        return self._schemas.get(name)


class _Loop:
    """A daemon thread running an event loop for planning and executing queries."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rstq-query",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@dataclass
class _Slot:
    stores: set[str]
    future: asyncio.Future[Snapshot]


class Engine:
    """`QueryEngine` over snapshots from `snapshot` (called on `owner_loop`'s thread)."""

    def __init__(self, snapshot: Callable[[Collection[str] | None], Snapshot],
                 owner_loop: asyncio.AbstractEventLoop | None = None,
                 limits: Limits | None = None) -> None:
        self._snapshot = snapshot
        self.owner_loop = owner_loop
        self.limits = limits or Limits()
        self._qloop: _Loop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._builder: SessionContext | None = None
        # (table, columns) -> (what it was built from, the provider)
        self._cache: dict[tuple[str, Cols],
                          tuple[tuple[tuple[ReadNode, ...], ...] | pa.RecordBatch, Table]] = {}
        self._empties: dict[str, Table] = {}
        # (table, columns) -> (hot provider, history nodes) -> (union view, its history set)
        self._unions: dict[tuple[str, Cols], tuple[tuple[Table, tuple[tuple[ReadNode, ...],
                                                                       ...]],
                                                    tuple[Table, HistoryDataset]]] = {}
        self._lock = threading.Lock()
        # Hooks for other layers (e.g. pg_catalog for the Postgres wire server).
        self.extra_schemas: dict[str, Callable[[], SchemaProvider]] = {}
        # Tables read at query time, outside the partition snapshots (e.g. sys_span).
        self.live_tables: dict[str, Callable[[], pa.Table]] = {}
        # Awaited on the owner loop before a snapshot: brings the views (of the given stores,
        # None: all) up to date in slices.
        self.prepare: Callable[[Collection[str] | None], Awaitable[None]] | None = None
        self.context_hooks: list[Callable[[SessionContext], None]] = []
        self.materializer: Materializer | None = None  # set when it reads a server
        # Never throttles until someone says when the server is busy (query/http.py does).
        self.governor = Governor(self.limits.cpu_share, self.limits.cpu_burst_s,
                                 busy=lambda: False)
        self.queries = 0
        self.tables_built = 0
        self._slot: _Slot | None = None  # the next snapshot, shared by queries waiting for it
        self._slot_tasks: set[asyncio.Task[None]] = set()
        self._refreshed_at = 0.0
        self._refresh_cpu = 0.0  # CPU seconds the last refresh took (event loop + Arrow)
        self._materialize_cpu = 0.0  # ... of which the last query's Arrow building

    # --- QueryEngine -----------------------------------------------------------------------

    def tables(self) -> Sequence[TableDef]:
        return t.TABLES

    def sql(self, query: str, params: Sequence[object] | None = None,
            timeout_s: float | None = None) -> pa.Table:
        """Run one read-only statement, from any thread; `$1`-style parameters."""
        while (wait := self.governor.delay()) > 0:
            self.governor.waited(wait)
            time.sleep(wait)
        snap = self.take_snapshot(needed_stores(query))
        return self._qthread().submit(self._run(snap, query, params, timeout_s, _same_table)
                                      ).result()

    async def sql_async(self, query: str, params: Sequence[object] | None = None,
                        timeout_s: float | None = None) -> pa.Table:
        """The same, awaited on the owner loop: the snapshot is taken right here."""
        return await self.run_async(query, _same_table, params, timeout_s)

    async def run_async(self, query: str, encode: Callable[[pa.Table], T],
                        params: Sequence[object] | None = None,
                        timeout_s: float | None = None) -> T:
        """`sql_async`, then `encode(result)` on the query thread (off the event loop)."""
        while (wait := self.governor.delay()) > 0:
            self.governor.waited(wait)
            await asyncio.sleep(wait)
        snap = await self.fresh_snapshot(needed_stores(query))
        fut = self._qthread().submit(self._run(snap, query, params, timeout_s, encode))
        return await asyncio.wrap_future(fut)

    def charge(self, cpu_s: float) -> None:
        """Count interpreter time spent on a query elsewhere (e.g. wire encoding)."""
        self.governor.charge(cpu_s)

    def take_snapshot(self, stores: Collection[str] | None = None) -> Snapshot:
        """A snapshot in which `stores` (None: all) are current, from any thread."""
        loop = self.owner_loop
        if loop is None or not loop.is_running() or _on_loop(loop):
            return self._snapshot(stores)
        return asyncio.run_coroutine_threadsafe(self.fresh_snapshot(stores), loop).result()

    async def fresh_snapshot(self, stores: Collection[str] | None = None) -> Snapshot:
        """A snapshot taken after this call began, with `stores` (None: all) current; call on
        the owner loop. While the server is busy, refreshes take at most
        `Limits.refresh_share` of the time (the next waits for the last one's cost / share,
        at most `refresh_interval_s`) and the queries that arrive in between share the next:
        each refresh has a fixed cost, which a client looping queries would otherwise pay per
        query. A query after a few writes waits little; under heavy load up to the cap."""
        wanted = set(STORE_NAMES if stores is None else stores)
        slot = self._slot
        if slot is None:
            wait = max(0.0, self._refreshed_at + self._refresh_gap() - time.monotonic())
            slot = self._slot = _Slot(wanted, asyncio.get_running_loop().create_future())
            task = asyncio.get_running_loop().create_task(self._take_slot(slot, wait))
            self._slot_tasks.add(task)
            task.add_done_callback(self._slot_tasks.discard)
        else:
            slot.stores |= wanted
        return await asyncio.shield(slot.future)

    def _refresh_gap(self) -> float:
        """How long after the last refresh the next may start (0 on an idle server)."""
        lim = self.limits
        if lim.refresh_share <= 0 or not self.governor.busy():
            return 0.0
        return min(lim.refresh_interval_s, self._refresh_cpu / lim.refresh_share)

    async def _take_slot(self, slot: _Slot, wait: float) -> None:
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            mat = self.materializer
            cpu0 = mat.cpu_s if mat is not None else 0.0
            if self.prepare is not None:
                await self.prepare(frozenset(slot.stores))
            # Queries that joined during `prepare` are covered: the snapshot comes after.
            self._slot = None
            snap = self._snapshot(frozenset(slot.stores))
            self._refreshed_at = time.monotonic()
            # What this refresh cost on the event loop, plus what the last query's Arrow
            # building cost on the query thread (this one's is not known yet: about the same).
            self._refresh_cpu = (mat.cpu_s - cpu0 if mat is not None else 0.0) + \
                self._materialize_cpu
            slot.future.set_result(snap)
        except BaseException as e:
            if self._slot is slot:
                self._slot = None
            if not slot.future.done():
                slot.future.set_exception(e)
            if not isinstance(e, Exception):
                raise

    def close(self) -> None:
        with self._lock:
            if self._qloop is not None:
                self._qloop.close()
                self._qloop = None

    # --- execution -------------------------------------------------------------------------

    def _qthread(self) -> _Loop:
        with self._lock:
            if self._qloop is None:
                self._qloop = _Loop()
            return self._qloop

    async def _run(self, snap: Snapshot, query: str, params: Sequence[object] | None,
                   timeout_s: float | None, encode: Callable[[pa.Table], T]) -> T:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limits.max_concurrent)
        timeout = timeout_s if timeout_s is not None else self.limits.timeout_s
        # The interpreter time the query itself holds on this thread: charged to the governor.
        # Bringing the views up to date (in `context`) is not: it is the price of freshness,
        # bounded by the write rate and `refresh_share`, and a query must pay it to run.
        cpu = CpuMeter()
        async with self._sem:
            self.queries += 1
            try:
                with CpuMeter() as built:
                    ctx, history = self._context(snap, query)
                self._materialize_cpu = built.total
                with cpu:
                    values = ({str(i + 1): v for i, v in enumerate(params)} if params else None)
                    df = ctx.sql(query, options=_READ_ONLY, param_values=values)
                    schema = df.schema()
                    stream = _execute(df, history)
                batches: list[pa.RecordBatch] = []
                async with asyncio.timeout(timeout):
                    async for b in stream:
                        with cpu:
                            batches.append(b.to_pyarrow())
                with cpu:
                    return encode(pa.Table.from_batches(batches, schema=schema))
            except TimeoutError:
                raise QueryError(f"query cancelled after its time limit of {timeout:g} s",
                                 "57014") from None
            except QueryError:
                raise
            except Exception as e:
                raise query_error(e) from None
            finally:
                self.governor.charge(cpu.total)

    def context(self, snap: Snapshot, query: str | None = None) -> SessionContext:
        """A fresh session over `snap` (call on the query thread). Only the tables `query`
        names are materialized; the others are empty stand-ins with the right schema (enough
        for information_schema), as a query can only read a table it names."""
        return self._context(snap, query)[0]

    def _context(self, snap: Snapshot, query: str | None
                 ) -> tuple[SessionContext, list[HistoryDataset]]:
        """`context`, and the history datasets its tables scan."""
        lim = self.limits
        cfg = (SessionConfig()
               .with_information_schema(True)
               .with_create_default_catalog_and_schema(False)
               .with_default_catalog_and_schema(CATALOG, SCHEMA))
        if lim.target_partitions:
            cfg = cfg.with_target_partitions(lim.target_partitions)
        rt = RuntimeEnvBuilder().with_greedy_memory_pool(lim.memory_bytes) \
            .with_disk_manager_disabled()
        ctx = SessionContext(cfg, rt)
        history: list[HistoryDataset] = []
        schemas: dict[str, SchemaProvider] = {
            SCHEMA: _Schema(self._tables(snap, query, history))}
        for name, make in self.extra_schemas.items():
            schemas[name] = make()
        ctx.register_catalog_provider(CATALOG, _Catalog(schemas))
        for hook in self.context_hooks:
            hook(ctx)
        return ctx, history

    def _tables(self, snap: Snapshot, query: str | None,
                history: list[HistoryDataset]) -> dict[str, Table]:
        out: dict[str, Table] = {}
        named = {td.name for td in named_tables(query)}
        words = words_read(query)
        for td in t.TABLES:
            if td.name not in named:
                out[td.name] = self._empty(td)
                continue
            kind = t.READS[td.name].kind
            live = self.live_tables.get(td.name)
            if kind == Kind.LIVE and live is None:
                out[td.name] = self._empty(td)  # its plugin is not there (e.g. no tracing)
                continue
            if live is not None:
                # Truncating casts: span clocks are ns, our timestamp columns ms.
                table = live()
                arrays = [pc.cast(table.column(f.name), f.type, safe=False) for f in td.schema]
                batches = pa.Table.from_arrays(arrays, schema=td.schema).to_batches()
                out[td.name] = self._provider(td.name, [batches or [to_batch(td.schema, [])]])
                continue
            if kind == Kind.SMALL:
                small = snap.small[td.name]
                out[td.name] = self._table(td, small, [[small]])
                continue
            out[td.name] = self._store_table(snap, td, columns_read(td, words), history)
        return out

    def _store_table(self, snap: Snapshot, td: TableDef, cols: Cols,
                     history: list[HistoryDataset]) -> Table:
        """The table over the views' nodes; with history segments, the union of that and a
        `HistoryDataset` over them, which scans only what the query's filters can match."""
        read = t.READS[td.name]
        assert read.store is not None
        nodes = snap.stores[read.store.name]
        segs = tuple(tuple(n for n in lane if isinstance(n, HistoryNode)) for lane in nodes)
        if not any(segs):
            return self._table(td, nodes, (nodes, read.select, cols))
        hot = tuple(tuple(n for n in lane if not isinstance(n, HistoryNode)) for lane in nodes)
        hot_table = self._table(td, hot, (hot, read.select, cols))
        slot = (td.name, cols)
        cached = self._unions.get(slot)
        if cached is not None and cached[0][0] is hot_table and _same(cached[0][1], segs):
            view, dataset = cached[1]
        else:
            dataset = HistoryDataset(td.name, td.schema, segs, read.select)
            view = self._union(td.name, hot_table, dataset)
            self._unions[slot] = ((hot_table, segs), (view, dataset))
        history.append(dataset)
        return view

    def _union(self, name: str, hot: Table, dataset: HistoryDataset) -> Table:
        if self._builder is None:
            self._builder = SessionContext()
        b = self._builder
        hot_name, seg_name = f"__hot_{name}", pushdown.PREFIX + name
        b.register_table(hot_name, hot)
        b.register_table(seg_name, Table(dataset))
        try:
            view = b.table(hot_name).union(b.table(seg_name)).into_view()
        finally:
            b.deregister_table(hot_name)
            b.deregister_table(seg_name)
        return view if isinstance(view, Table) else Table(view)

    def _table(self, td: TableDef, key: tuple[tuple[ReadNode, ...], ...] | pa.RecordBatch,
               parts: list[list[pa.RecordBatch]] | tuple[tuple[tuple[ReadNode, ...], ...],
                                                       Select | None, Cols]) -> Table:
        slot = (td.name, parts[2] if isinstance(parts, tuple) else None)
        cached = self._cache.get(slot)
        if cached is not None and _same(cached[0], key):
            return cached[1]
        if isinstance(parts, tuple):
            parts = _parts(td, *parts)
        table = self._provider(td.name, parts)
        self._cache[slot] = (key, table)
        self.tables_built += 1
        return table


    def _empty(self, td: TableDef) -> Table:
        table = self._empties.get(td.name)
        if table is None:
            table = self._empties[td.name] = self._provider(td.name, [[to_batch(td.schema, [])]])
        return table

    def _provider(self, name: str, parts: list[list[pa.RecordBatch]]) -> Table:
        if self._builder is None:
            self._builder = SessionContext()
        self._builder.register_record_batches(name, parts)
        table = self._builder.table_provider(name)
        self._builder.deregister_table(name)
        return table


def _parts(td: TableDef, nodes: tuple[tuple[ReadNode, ...], ...], derive: Select | None,
           cols: Cols = None) -> list[list[pa.RecordBatch]]:
    """The table's batches per partition, with (at least) the columns `cols` filled in."""
    out: list[list[pa.RecordBatch]] = []
    for lane in nodes:
        batches = []
        for node in lane:
            b = (node.derived(td.name, derive, derive.store_columns(cols))
                 if derive is not None else node.batch(cols))
            if b.num_rows:
                batches.append(b)
        if batches:
            out.append(batches)
    return out or [[to_batch(td.schema, [])]]


def _same(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(
            len(x) == len(y) and all(p is q for p, q in zip(x, y, strict=True))
            for x, y in zip(a, b, strict=True))
    return a is b


def _execute(df: DataFrame, history: Sequence[HistoryDataset]) -> RecordBatchStream:
    """Start `df`; first tell each history dataset the partition keys its scans can match
    (from the optimized plan). The datasets read them while the physical plan is made,
    within this call, on the engine's one query thread: no other query sees them."""
    if not history:
        return df.execute_stream()
    try:
        keys = pushdown.scan_keys(df.optimized_logical_plan())
    except Exception:  # noqa: BLE001 - no pruning then; the query itself reports errors
        keys = {}
    for d in history:
        d.keys = keys.get(pushdown.PREFIX + d.name)
    try:
        return df.execute_stream()
    finally:
        for d in history:
            d.keys = None


def _same_table(table: pa.Table) -> pa.Table:
    return table


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False) \
    .with_allow_statements(False)
