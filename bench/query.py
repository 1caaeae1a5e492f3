"""SQL query latency over POST /query, on Restate's benchmark shape, against rstq (and
optionally restate-server on the same data).

    .venv/bin/python bench/query.py [--keys 100000] [--steps 42000] [--runs 7]
                                    [--restate http://127.0.0.1:9070]

rstq: an in-process server (admin listener only) whose partitions get the history applied
straight to their state through core.apply (no log, no HTTP): 100k Greeter keys with one state
row each, 142k invocations, 652k journal rows by default. Each query is timed as a client sees
it: POST /query with `accept: application/json`, wall time incl. HTTP and JSON. With
--restate, the same queries run against that admin URL (load it first with bench/invoke.py);
restate-server 1.7.12 measured 55, 40, 235 and 280 ms for the first four
(shared/reference/restate-sql-tables.md, section 3).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from invoke import post_query  # bench/ is on sys.path when run as bench/query.py
from rstq.app import AppConfig, build
from rstq.core.log.api import FsyncPolicy
from rstq.core.server import ServerConfig
from rstq.query.loadgen import Loader, restate_bench_shape

QUERIES = [
    ("count(*) state", "SELECT count(*) FROM state", 5),
    ("point lookup by service+key",
     "SELECT * FROM state WHERE service_name = 'Greeter' AND service_key = 'u12345'", 5),
    ("GROUP BY status on sys_invocation",
     "SELECT status, count(*) FROM sys_invocation GROUP BY status", 25),
    ("count(*) sys_journal", "SELECT count(*) FROM sys_journal", 25),
    ("count(*) sys_invocation_status", "SELECT count(*) FROM sys_invocation_status", None),
    ("sys_invocation WHERE status <> 'completed'",
     "SELECT id, status FROM sys_invocation WHERE status <> 'completed'", None),
    ("invocation listing LIMIT 20",
     "SELECT target_service_name, target_handler_name, id, status, invoked_by "
     "FROM sys_invocation LIMIT 20", None),
]
RESTATE_MS = {0: 55, 1: 40, 2: 235, 3: 280}


def post(url: str, sql: str) -> tuple[float, Any]:
    return post_query(url, sql, timeout=120)


def measure(url: str, runs: int) -> list[tuple[list[float], Any]]:
    out = []
    for _, sql, _ in QUERIES:
        post(url, sql)  # warm (plans, derived views)
        times, rows = [], None
        for _ in range(runs):
            ms, rows = post(url, sql)
            times.append(ms)
        out.append((times, rows))
    return out


class InProcess:
    """A Server on its own thread and loop, for the client to call over HTTP."""

    def __init__(self, partitions: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.dir = tempfile.mkdtemp(prefix="rstq-bench-query-")
        cfg = ServerConfig(data_dir=Path(self.dir), partitions=partitions, fsync=FsyncPolicy.NONE,
                           ingress_bind=None, admin_bind="127.0.0.1:0",
                           snapshot_every=10**9)
        self.server = build(cfg, AppConfig(pgwire_bind=None)).server
        self.call(self.server.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def on_loop(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()
        return self.call(run())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.admin_port}"

    def bump(self) -> None:
        for p in self.server.processors:
            p.version += 1

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=42_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--restate", default=None, help="admin URL of a loaded restate-server")
    args = ap.parse_args()

    srv = InProcess(args.partitions)
    states = [p.state for p in srv.server.processors]
    t0 = time.perf_counter()
    srv.on_loop(lambda: restate_bench_shape(states, args.keys, args.steps))
    srv.bump()
    load_s = time.perf_counter() - t0
    ms, rows = post(srv.url, "SELECT (SELECT count(*) FROM state) AS s, "
                             "(SELECT count(*) FROM sys_invocation) AS i, "
                             "(SELECT count(*) FROM sys_journal) AS j")
    print(f"rstq: loaded {rows[0]} in {load_s:.1f} s through core.apply; first query "
          f"(builds the Arrow views) {ms:.0f} ms")
    results = measure(srv.url, args.runs)

    # incremental: 200 more invocations (new keys and updates), then one query
    def more() -> None:
        ld = Loader(states, start_ms=2_000_000_000_000)
        for i in range(100):
            ld.greet(f"u{i * 997}", count=2)
            ld.greet(f"new{i}")
    srv.on_loop(more)
    srv.bump()
    inc_ms, inc_rows = post(srv.url, "SELECT count(*) AS n FROM state")
    mat = srv.on_loop(lambda: __import__("rstq.query.http", fromlist=["x"])
                      .engine_for(srv.server).materializer)
    keys = sum(v.stats.keys_rebuilt for v in mat.views)
    print(f"after 200 more invocations: next query {inc_ms:.1f} ms "
          f"(state rows {inc_rows[0]['n']}; keys rebuilt so far {keys}, "
          f"full rebuilds {sum(v.stats.full_rebuilds for v in mat.views)})")
    srv.stop()

    theirs = measure(args.restate, args.runs) if args.restate else None
    print()
    head = f"{'query':45} {'rstq median ms':>15} {'target':>7}  {'runs':30}"
    if theirs:
        head += f" {'restate median ms':>18}"
    else:
        head += f" {'restate 1.7 (ref)':>18}"
    print(head)
    for i, ((name, _, target), (times, _)) in enumerate(zip(QUERIES, results, strict=True)):
        med = statistics.median(times)
        tgt = f"<= {target}" if target else ""
        runs = ", ".join(f"{t:.1f}" for t in times)
        line = f"{name:45} {med:15.1f} {tgt:>7}  {runs[:30]:30}"
        if theirs:
            line += f" {statistics.median(theirs[i][0]):18.1f}"
        elif i in RESTATE_MS:
            line += f" {RESTATE_MS[i]:18}"
        print(line)


if __name__ == "__main__":
    main()
