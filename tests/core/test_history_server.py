"""History on disk through a running server: ingress, SQL and restart see every completed
invocation wherever it lives (resident, hot store, history segment)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from rstq.core.persistence import StorePersistence

from tests.support.harness.rstq_http import (
    admin_url,
    ingress_url,
    register_manifest,
    running_server,
)

N = 40


async def sql(server: object, query: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(admin_url(server) + "/query",  # type: ignore[arg-type]
                              headers={"accept": "application/json"}, json={"query": query})
    assert r.status_code == 200, r.text
    rows: list[dict[str, object]] = r.json()["rows"]
    return rows


async def moves_done(server: object) -> int:
    for _ in range(200):  # a move's file is written in a thread: wait for the commits
        procs = server.processors  # type: ignore[attr-defined]
        if not any(p._move is not None for p in procs):
            break
        await asyncio.sleep(0.02)
    return sum(p.persistence.moves for p in procs if isinstance(p.persistence, StorePersistence))


async def test_history_through_the_server(tmp_path: Path) -> None:
    ids: list[str] = []
    async with running_server(tmp_path, segment_rows=4, cache_size=1) as (server, fake):
        await register_manifest(server)
        fake.output = b'"hi"'
        async with httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as ingress:
            for n in range(N):
                r = await ingress.post("/Greeter/greet", json=f"n{n}")
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-restate-id"])
            assert await moves_done(server) >= 4
            for proc in server.processors:  # memory: live work and the cache only
                assert len(proc.state.invocations.mem) <= 2
            rows = await sql(server, "SELECT count(*) AS n, count(DISTINCT id) AS d "
                                     "FROM sys_invocation WHERE status = 'completed'")
            assert rows == [{"n": N, "d": N}]
            j = await sql(server, "SELECT count(*) AS n FROM sys_journal")
            assert j[0]["n"] >= N
            first = ids[0]
            one = await sql(server, f"SELECT id, status FROM sys_invocation WHERE id = '{first}'")
            assert one == [{"id": first, "status": "completed"}]
            r = await ingress.get(f"/restate/invocation/{first}/output")
            assert r.status_code == 200 and r.json() == "hi", r.text
    async with running_server(tmp_path, segment_rows=4, cache_size=1) as (server, _):
        for proc in server.processors:  # restart: nothing completed is loaded
            assert not any(i.status == "completed" for i in proc.state.invocations.mem.values())
        rows = await sql(server, "SELECT count(*) AS n FROM sys_invocation")
        assert rows == [{"n": N}]
        async with httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as ingress:
            for inv_id in (ids[0], ids[-1]):
                r = await ingress.get(f"/restate/invocation/{inv_id}/output")
                assert r.status_code == 200 and r.json() == "hi", r.text
