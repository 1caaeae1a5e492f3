"""`POST /query` on the admin API, compatible with Restate 1.7's.

Body `{"query": "<SQL>"}`. The answer is an Arrow IPC stream
(`application/vnd.apache.arrow.stream`) unless the request accepts `application/json`, then
`{"rows": [{column: value, ...}, ...]}` (a NULL value's key left out, as Restate's serializer does
it: the `restate` CLI reads absent keys as defaults but refuses `null` for e.g. a boolean) with
timestamps as RFC 3339 (`…Z`), durations as ISO 8601
(`PT86400S`) and bytes as hex, as Restate renders them. A query that fails answers 500
`{"message": "Datafusion error: …", "sqlstate": …}` (Restate's status and shape; `sqlstate` is
ours); a malformed request answers 400 `{"message": …}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import weakref
from collections.abc import Callable, Collection
from typing import Any

import pyarrow as pa
from aiohttp import web
from rstq.query.api import QueryError, QueryObserver
from rstq.query.engine import Engine, Limits
from rstq.query.source import Materializer, ServerSource, server_in_flight, server_sources
from rstq.query.tables import TABLES

log = logging.getLogger(__name__)
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_engines: weakref.WeakKeyDictionary[ServerSource, Engine] = weakref.WeakKeyDictionary()


def engine_for(server: ServerSource, limits: Limits | None = None) -> Engine:
    """The server's query engine: one per server, created on first use, which must be on the
    server's event loop (snapshots are taken there); then `sql()` works from any thread."""
    eng = _engines.get(server)
    if eng is None:
        mat = Materializer(server_in_flight(server))
        meta = server.meta

        def snapshot(stores: Collection[str] | None) -> Any:
            return mat.snapshot(server_sources(server), meta.schema if meta else None, stores)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("create the engine on the server's event loop first "
                               "(engine_for(server) from a coroutine); afterwards any "
                               "thread may use it") from None
        eng = Engine(snapshot, loop, limits)
        eng.materializer = mat
        eng.governor.busy = server_busy(server)
        eng.prepare = lambda stores: mat.catch_up(server_sources(server), stores=stores)
        _engines[server] = eng
    return eng


BUSY_WINDOW_S = 0.5


def server_busy(server: ServerSource, clock: Callable[[], float] = time.monotonic
                ) -> Callable[[], bool]:
    """True while the partitions applied something in the last `BUSY_WINDOW_S`: then SQL
    gets its CPU share only; on an idle server queries run unthrottled."""
    seen: list[tuple[int, ...]] = [()]
    changed_at = [-BUSY_WINDOW_S]

    def busy() -> bool:
        now = clock()
        lsns = tuple(p.state.applied_lsn for p in server.processors)
        if lsns != seen[0]:
            seen[0], changed_at[0] = lsns, now
        return now - changed_at[0] < BUSY_WINDOW_S

    return busy


def json_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(timespec="milliseconds") + "Z"
    if isinstance(v, dt.timedelta):
        secs = v.total_seconds()
        return f"PT{secs:g}S" if secs != int(secs) else f"PT{int(secs)}S"
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return v


def rows_json(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: json_value(v) for k, v in row.items()} for row in table.to_pylist()]


def json_body(table: pa.Table) -> bytes:
    rows = [{k: json_value(v) for k, v in row.items() if v is not None}
            for row in table.to_pylist()]
    return json.dumps({"rows": rows}, separators=(",", ":"),
                      ensure_ascii=False).encode()


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _error(status: int, message: str, sqlstate: str | None = None) -> web.Response:
    doc: dict[str, Any] = {"message": message}
    if sqlstate is not None:
        doc["sqlstate"] = sqlstate
    return web.json_response(doc, status=status)


def make_handler(server: ServerSource, on_query: QueryObserver | None = None) -> Any:
    """`on_query`: told of each query run (its time and outcome), not of malformed requests."""

    async def query(request: web.Request) -> web.Response:
        try:
            doc = json.loads(await request.read() or b"null")
        except ValueError as e:
            return _error(400, f"Failed to parse the request body as JSON: {e}")
        if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
            return _error(400, 'Expected a JSON body {"query": "<SQL>"}')
        accept = request.headers.get("accept", "")
        as_json = "application/json" in accept and ARROW_STREAM not in accept
        t0 = time.perf_counter()
        ok = False
        try:
            # Encoded on the query thread: a large answer must not hold the event loop.
            body = await engine_for(server).run_async(
                doc["query"], json_body if as_json else arrow_stream)
            ok = True
        except QueryError as e:
            return _error(500, f"Datafusion error: {e}", e.sqlstate)
        finally:
            if on_query is not None:
                on_query(time.perf_counter() - t0, ok)
        if as_json:
            return web.Response(body=body, content_type="application/json")
        return web.Response(body=body, content_type=ARROW_STREAM)

    return query


def add_routes(app: web.Application, server: ServerSource,
               on_query: QueryObserver | None = None) -> None:
    """`POST /query` (also `/v4/query`, the path Restate's CLI uses: core.admin adds the
    version prefixes to every admin route)."""
    handler = make_handler(server, on_query)
    app.router.add_post("/query", handler)

    tasks: set[asyncio.Task[None]] = set()

    async def warm(_app: web.Application) -> None:
        # Build the views in the background now, not in the first user's query.
        task = asyncio.get_running_loop().create_task(_warm(server))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def close(_app: web.Application) -> None:
        for task in list(tasks):
            task.cancel()
        eng = _engines.pop(server, None)
        if eng is not None:
            eng.close()

    app.on_startup.append(warm)
    app.on_cleanup.append(close)


WARM_QUERY = "SELECT count(*) FROM " + ", ".join(
    f"(SELECT count(*) FROM {t.name}) t{i}" for i, t in enumerate(TABLES))


DRAIN_INTERVAL_S = 1.0


async def _warm(server: ServerSource) -> None:
    await asyncio.sleep(0.05)  # let startup finish first
    eng = engine_for(server)
    try:
        await eng.sql_async(WARM_QUERY)
    except Exception:  # never fatal: the first query would build the views anyway
        log.exception("warming the SQL views failed")
    # Keep what `apply` touched bounded between queries (PartitionViews.drain).
    while eng.materializer is not None:
        await asyncio.sleep(DRAIN_INTERVAL_S)
        eng.materializer.drain(server_sources(server))
