"""Invocation throughput while a client loops heavy SQL queries (issue #5's last target).

32 closed-loop clients call `BenchGreeter/<new key>/greet` on a fresh rstq server for the whole
run; a querier loops four heavy queries (GROUP BY status, count of the journal, count of state,
GROUP BY service) through `POST /query`. Phases alternate: without queries (after `--settle`
seconds, so nothing SQL is left running), then with the querier on (after `--warm` seconds of it, so
the first query's catch-up on the backlog is not counted: the target is about a client that keeps
querying). Prints each phase's invocations/s, queries/s and server CPU (main thread, others)
and the mean drop.

    .venv/bin/python bench/sql_load.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import sys
import time
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]
from invoke import stat_cpu_seconds  # noqa: E402

from tests.support.harness.rstq_server import RstqServer  # noqa: E402
from tests.support.harness.service_proc import ServiceProcess  # noqa: E402

QUERIES = ("SELECT status, count(*) FROM sys_invocation GROUP BY status",
           "SELECT count(*) FROM sys_journal", "SELECT count(*) FROM state",
           "SELECT target_service_name, count(*) FROM sys_invocation GROUP BY 1")


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of the server's main thread and of all its other threads."""
    out = {"main": 0.0, "other": 0.0}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            cpu = stat_cpu_seconds(f"{task}/stat")
        except OSError:  # the thread ended
            continue
        out["main" if task.endswith(f"/{pid}") else "other"] += cpu
    return out


async def snapshot_lsns(session: aiohttp.ClientSession, admin_url: str) -> list[int]:
    """Where each partition's latest snapshot is (a snapshot pass costs the server time)."""
    async with session.post(f"{admin_url}/query", json={
            "query": "SELECT snapshot_lsn FROM sys_partition ORDER BY partition_id"},
            headers={"accept": "application/json"}) as r:
        return [row["snapshot_lsn"] or 0 for row in (await r.json())["rows"]]


async def run(srv: RstqServer, args: argparse.Namespace) -> dict[str, float]:
    calls = queries = 0
    querying = stop = False
    async with aiohttp.ClientSession() as session:
        async def client(k: int) -> None:
            nonlocal calls
            i = 0
            while not stop:
                url = f"{srv.ingress_url}/BenchGreeter/c{k}-{i}/greet"
                async with session.post(url, json="x") as r:
                    await r.read()
                calls, i = calls + 1, i + 1

        async def querier() -> None:
            nonlocal queries
            i = 0
            while not stop:
                if not querying:
                    await asyncio.sleep(0.05)
                    continue
                async with session.post(f"{srv.admin_url}/query",
                                        json={"query": args.query[i % len(args.query)]},
                                        headers={"accept": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200, await r.text()
                queries, i = queries + 1, i + 1

        tasks = [asyncio.ensure_future(client(k)) for k in range(args.clients)]
        tasks.append(asyncio.ensure_future(querier()))
        rates: dict[bool, list[float]] = {False: [], True: []}
        query_rates: list[float] = []
        for _ in range(args.rounds):
            for with_queries in (False, True):
                querying = with_queries
                await asyncio.sleep(args.warm if with_queries else args.settle)
                snaps0 = await snapshot_lsns(session, srv.admin_url)
                c0, q0, cpu0, t0 = calls, queries, cpu_by_thread(srv.proc.pid), time.time()
                await asyncio.sleep(args.measure)
                dt, cpu1 = time.time() - t0, cpu_by_thread(srv.proc.pid)
                snaps1 = await snapshot_lsns(session, srv.admin_url)
                snapshots = sum(a != b for a, b in zip(snaps0, snaps1, strict=True))
                rate = (calls - c0) / dt
                rates[with_queries].append(rate)
                if with_queries:
                    query_rates.append((queries - q0) / dt)
                print(f"{'queries' if with_queries else 'plain  '}  invocations/s {rate:6.0f}"
                      f"  queries/s {(queries - q0) / dt:5.1f}"
                      f"  server cpu main {(cpu1['main'] - cpu0['main']) / dt:.2f}"
                      f" other {(cpu1['other'] - cpu0['other']) / dt:.2f}"
                      f"  partitions snapshotted {snapshots}", flush=True)
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    plain = sum(rates[False]) / len(rates[False])
    loaded = sum(rates[True]) / len(rates[True])
    drop = 100 * (1 - loaded / plain)
    print(f"mean: {plain:.0f} invocations/s plain, {loaded:.0f} with queries: "
          f"drop {drop:.1f}% (target <= 10%)")
    return {"plain": plain, "with_queries": loaded, "drop_percent": drop,
            "queries_per_s": sum(query_rates) / len(query_rates)}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--measure", type=float, default=8.0, help="seconds measured per phase")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds without queries before a plain phase is measured")
    ap.add_argument("--warm", type=float, default=3.0,
                    help="seconds of querying before a query phase is measured")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--query", action="append",
                    help="a query to loop (repeatable; default: the four heavy ones)")
    args = ap.parse_args(argv)
    args.query = args.query or list(QUERIES)
    svc = ServiceProcess("bench.suite_services:app", http2=True).start()
    srv = RstqServer(partitions=args.partitions).start()
    try:
        srv.register(svc.url)
        return asyncio.run(run(srv, args))
    finally:
        srv.stop()
        svc.stop()


if __name__ == "__main__":
    main()
