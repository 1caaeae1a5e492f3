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
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext, SQLOptions
from datafusion.catalog import CatalogProvider, SchemaProvider, Table
from rstq.query import tables as t
from rstq.query.api import QueryError, TableDef
from rstq.query.views import Node, Snapshot, to_batch

if TYPE_CHECKING:
    from rstq.query.source import Materializer

T = TypeVar("T")
CATALOG = "restate"
SCHEMA = "public"

# --- how each table is read from the stores ----------------------------------------------------

Derive = Callable[[pa.RecordBatch], pa.RecordBatch]


def _select(table: TableDef, names: Sequence[str], where: str | None = None) -> Derive:
    def derive(b: pa.RecordBatch) -> pa.RecordBatch:
        if where is not None:
            b = b.filter(pc.is_valid(b.column(where)))
        return pa.RecordBatch.from_arrays([b.column(n) for n in names], schema=table.schema)

    return derive


def _status_names() -> list[str]:
    return ["_raw_status" if c.name == "status" else c.name
            for c in t.SYS_INVOCATION_STATUS.columns]


SOURCES: dict[str, tuple[str, Derive | None]] = {
    t.SYS_INVOCATION.name: ("invocations", _select(
        t.SYS_INVOCATION, [c.name for c in t.SYS_INVOCATION.columns])),
    t.SYS_INVOCATION_STATUS.name: ("invocations", _select(
        t.SYS_INVOCATION_STATUS, _status_names())),
    t.SYS_INVOCATION_STATE.name: ("invocations", _select(
        t.SYS_INVOCATION_STATE, [c.name for c in t.SYS_INVOCATION_STATE.columns],
        where="in_flight")),
    t.SYS_STATUS.name: ("invocations", _select(t.SYS_STATUS, [
        "target_service_name", "target_handler_name", "id", "status",
        "invoked_by_service_name", "invoked_by_id"])),
    t.SYS_JOURNAL.name: ("journal", None),
    t.STATE.name: ("state", None),
    t.SYS_INBOX.name: ("inbox", None),
    t.SYS_KEYED_SERVICE_STATUS.name: ("locks", None),
    t.SYS_TIMER.name: ("timers", None),
    t.SYS_PROMISE.name: ("promises", None),
    t.SYS_IDEMPOTENCY.name: ("idempotency", None),
}


@dataclass
class Limits:
    timeout_s: float = 30.0
    memory_bytes: int = 512 << 20
    max_concurrent: int = 4
    target_partitions: int = 0  # 0: DataFusion's default (cores)


# --- error mapping ---------------------------------------------------------------------------

_STATES = (
    ("DDL not supported", "25006"), ("DML not supported", "25006"),
    ("Statement not supported", "25006"),
    ("not found", "42P01"), ("No field named", "42703"), ("ParserError", "42601"),
    ("sql parser error", "42601"), ("Invalid function", "42883"),
    ("Resources exhausted", "53200"), ("No value found for placeholder", "08P01"),
    ("Error during planning", "42000"), ("Schema error", "42000"),
)


def query_error(e: BaseException) -> QueryError:
    msg = str(e).strip()
    for needle, state in _STATES:
        if needle in msg:
            if state == "25006":
                return QueryError(f"read-only: only queries are allowed ({msg})", state)
            return QueryError(msg, state)
    return QueryError(msg or type(e).__name__, "XX000")


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


class Engine:
    """`QueryEngine` over snapshots from `snapshot` (called on `owner_loop`'s thread)."""

    def __init__(self, snapshot: Callable[[], Snapshot],
                 owner_loop: asyncio.AbstractEventLoop | None = None,
                 limits: Limits | None = None) -> None:
        self._snapshot = snapshot
        self.owner_loop = owner_loop
        self.limits = limits or Limits()
        self._qloop: _Loop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._builder: SessionContext | None = None
        self._cache: dict[str, tuple[tuple[tuple[Node, ...], ...] | pa.RecordBatch, Table]] = {}
        self._empties: dict[str, Table] = {}
        self._lock = threading.Lock()
        # Hooks for other layers (e.g. pg_catalog for the Postgres wire server).
        self.extra_schemas: dict[str, Callable[[], SchemaProvider]] = {}
        # Tables read at query time, outside the partition snapshots (e.g. sys_span).
        self.live_tables: dict[str, Callable[[], pa.Table]] = {}
        # Awaited on the owner loop before a snapshot: brings the views up to date in slices.
        self.prepare: Callable[[], Awaitable[None]] | None = None
        self.context_hooks: list[Callable[[SessionContext], None]] = []
        self.materializer: Materializer | None = None  # set when it reads a server
        self.queries = 0
        self.tables_built = 0

    # --- QueryEngine -----------------------------------------------------------------------

    def tables(self) -> Sequence[TableDef]:
        return t.TABLES

    def sql(self, query: str, params: Sequence[object] | None = None,
            timeout_s: float | None = None) -> pa.Table:
        """Run one read-only statement, from any thread; `$1`-style parameters."""
        snap = self.take_snapshot()
        return self._qthread().submit(self._run(snap, query, params, timeout_s)).result()

    async def sql_async(self, query: str, params: Sequence[object] | None = None,
                        timeout_s: float | None = None) -> pa.Table:
        """The same, awaited on the owner loop: the snapshot is taken right here."""
        if self.prepare is not None:
            await self.prepare()
        snap = self.take_snapshot()
        fut = self._qthread().submit(self._run(snap, query, params, timeout_s))
        return await asyncio.wrap_future(fut)

    def take_snapshot(self) -> Snapshot:
        loop = self.owner_loop
        if loop is None or not loop.is_running() or _on_loop(loop):
            return self._snapshot()

        async def take() -> Snapshot:
            if self.prepare is not None:
                await self.prepare()
            return self._snapshot()

        return asyncio.run_coroutine_threadsafe(take(), loop).result()

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
                   timeout_s: float | None) -> pa.Table:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limits.max_concurrent)
        timeout = timeout_s if timeout_s is not None else self.limits.timeout_s
        async with self._sem:
            self.queries += 1
            try:
                ctx = self.context(snap, query)
                values = ({str(i + 1): v for i, v in enumerate(params)} if params else None)
                df = ctx.sql(query, options=_READ_ONLY, param_values=values)
                schema = df.schema()
                stream = df.execute_stream()
                batches: list[pa.RecordBatch] = []
                async with asyncio.timeout(timeout):
                    async for b in stream:
                        batches.append(b.to_pyarrow())
            except TimeoutError:
                raise QueryError(f"query cancelled after its time limit of {timeout:g} s",
                                 "57014") from None
            except QueryError:
                raise
            except Exception as e:
                raise query_error(e) from None
            return pa.Table.from_batches(batches, schema=schema)

    def context(self, snap: Snapshot, query: str | None = None) -> SessionContext:
        """A fresh session over `snap` (call on the query thread). Only the tables `query`
        names are materialized; the others are empty stand-ins with the right schema (enough
        for information_schema), as a query can only read a table it names."""
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
        schemas: dict[str, SchemaProvider] = {SCHEMA: _Schema(self._tables(snap, query))}
        for name, make in self.extra_schemas.items():
            schemas[name] = make()
        ctx.register_catalog_provider(CATALOG, _Catalog(schemas))
        for hook in self.context_hooks:
            hook(ctx)
        return ctx

    def _tables(self, snap: Snapshot, query: str | None) -> dict[str, Table]:
        out: dict[str, Table] = {}
        text = query.lower() if query is not None else None
        for td in t.TABLES:
            if text is not None and td.name not in text:
                out[td.name] = self._empty(td)
                continue
            live = self.live_tables.get(td.name)
            if live is not None:
                # Truncating casts: span clocks are ns, our timestamp columns ms.
                table = live()
                cols = [pc.cast(table.column(f.name), f.type, safe=False) for f in td.schema]
                batches = pa.Table.from_arrays(cols, schema=td.schema).to_batches()
                out[td.name] = self._provider(td.name, [batches or [to_batch(td.schema, [])]])
                continue
            small = snap.small.get(td.name)
            if small is not None:
                out[td.name] = self._table(td, small, [[small]])
                continue
            store, derive = SOURCES[td.name]
            nodes = snap.stores[store]
            out[td.name] = self._table(td, nodes, (nodes, derive))
        return out

    def _table(self, td: TableDef, key: tuple[tuple[Node, ...], ...] | pa.RecordBatch,
               parts: list[list[pa.RecordBatch]] | tuple[tuple[tuple[Node, ...], ...],
                                                       Derive | None]) -> Table:
        cached = self._cache.get(td.name)
        if cached is not None and _same(cached[0], key):
            return cached[1]
        if isinstance(parts, tuple):
            parts = _parts(td, *parts)
        table = self._provider(td.name, parts)
        self._cache[td.name] = (key, table)
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


def _parts(td: TableDef, nodes: tuple[tuple[Node, ...], ...], derive: Derive | None
           ) -> list[list[pa.RecordBatch]]:
    out: list[list[pa.RecordBatch]] = []
    for lane in nodes:
        batches = []
        for node in lane:
            b = node.derived(td.name, derive) if derive is not None else node.batch()
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


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False) \
    .with_allow_statements(False)
