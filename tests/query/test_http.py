"""POST /query on a real Server with the official restate-sdk services: freshness (read your
writes through ingress), JSON and Arrow answers, read-only refusal, bad SQL, incrementality."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from rstq.core.server import Server
from rstq.query import engine_for

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_http import admin_url, ingress_url, running_server

SDK_APP = "tests.support.apps.sdk_basic_services:app"
ARROW = "application/vnd.apache.arrow.stream"

Env = tuple[Server, httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture(scope="module")
def sdk() -> Iterator[HypercornProcess]:
    with HypercornProcess(SDK_APP) as hc:
        yield hc


@pytest.fixture
async def env(tmp_path: Path, sdk: HypercornProcess) -> AsyncIterator[Env]:
    async with running_server(tmp_path, fake_invoker=False) as (server, _):
        async with httpx.AsyncClient(base_url=admin_url(server), timeout=30) as admin, \
                httpx.AsyncClient(base_url=ingress_url(server), timeout=30) as ingress:
            r = await admin.post("/deployments", json={"uri": sdk.url})
            assert r.status_code == 201, r.text
            yield server, admin, ingress


async def rows(admin: httpx.AsyncClient, sql: str) -> list[dict[str, Any]]:
    r = await admin.post("/query", json={"query": sql}, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


async def test_read_your_writes_after_ingress(env: Env) -> None:
    _, admin, ingress = env
    for i in range(1, 4):
        r = await ingress.post("/Counter/alice/add", json=i)
        assert r.status_code == 200, r.text
        # the call returned: the next query sees its state and its completed status
        got = await rows(admin, "SELECT value_utf8 FROM state WHERE service_name = 'Counter' "
                                "AND service_key = 'alice' AND key = 'n'")
        assert got == [{"value_utf8": str(i * (i + 1) // 2)}]
    inv = await rows(admin, "SELECT target, status, invoked_by, completion_result, "
                            "journal_size > 0 AS j FROM sys_invocation ORDER BY created_at")
    assert inv == [{"target": "Counter/alice/add", "status": "completed", "invoked_by": "ingress",
                    "completion_result": "success", "j": True}] * 3
    services = await rows(admin, "SELECT name, ty FROM sys_service ORDER BY name")
    assert {"name": "Counter", "ty": "virtual_object"} in services
    dep = await rows(admin, "SELECT endpoint, services FROM sys_deployment")
    assert "Counter" in dep[0]["services"]
    j = await rows(admin, "SELECT entry_type, entry_json, created_at FROM sys_journal "
                          "JOIN sys_invocation USING (id) ORDER BY created_at, index LIMIT 1")
    assert j[0]["entry_type"] == "Command: Input" and j[0]["created_at"].endswith("Z")
    part = await rows(admin, "SELECT sum(invocations) AS n, min(durable_lsn) >= 0 AS ok "
                             "FROM sys_partition")
    assert part == [{"n": 3, "ok": True}]


async def test_arrow_answer_and_errors(env: Env) -> None:
    server, admin, ingress = env
    assert (await ingress.post("/Greeter/greet", json="bob")).status_code == 200
    r = await admin.post("/query", json={"query": "SELECT id, status, created_at FROM "
                                                  "sys_invocation"})
    assert r.status_code == 200 and r.headers["content-type"].startswith(ARROW)
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.num_rows == 1 and table.schema.field("created_at").type == \
        pa.timestamp("ms", tz="+00:00")
    for sql, state in [("DELETE FROM state", "25006"), ("CREATE TABLE x AS SELECT 1", "25006"),
                       ("SET datafusion.execution.batch_size = 1", "25006"),
                       ("SELEC 1", "42601"), ("SELECT * FROM nope", "42P01")]:
        r = await admin.post("/query", json={"query": sql})
        assert r.status_code == 500, (sql, r.text)
        assert r.json()["sqlstate"] == state and r.json()["message"], r.json()
    r = await admin.post("/query", json={"sql": "SELECT 1"})
    assert r.status_code == 400
    # the server is still fine
    assert await rows(admin, "SELECT count(*) AS n FROM sys_invocation") == [{"n": 1}]
    assert (await ingress.post("/Greeter/greet", json="eve")).status_code == 200


async def test_time_limit(env: Env) -> None:
    server, admin, _ = env
    eng = engine_for(server)
    sql = "SELECT count(*) FROM range(300000) a, range(300000) b WHERE a.value + b.value < 0"
    with pytest.raises(Exception) as e:
        await eng.sql_async(sql, timeout_s=0.3)
    assert getattr(e.value, "sqlstate", None) == "57014"
    assert (await rows(admin, "SELECT 1 AS x")) == [{"x": 1}]


async def test_refresh_is_incremental(env: Env) -> None:
    server, admin, ingress = env
    for k in ("a", "b", "c", "d", "e", "f"):
        assert (await ingress.post(f"/Counter/{k}/add", json=1)).status_code == 200
    await rows(admin, "SELECT count(*) FROM state")
    mat = engine_for(server).materializer
    assert mat is not None
    before = [(v.stats.refreshes, v.stats.full_rebuilds, v.stats.keys_rebuilt)
              for v in mat.views]
    await rows(admin, "SELECT count(*) FROM state")  # nothing happened in between
    assert [(v.stats.refreshes, v.stats.full_rebuilds, v.stats.keys_rebuilt)
            for v in mat.views] == before
    assert (await ingress.post("/Counter/a/add", json=1)).status_code == 200
    got = await rows(admin, "SELECT value_utf8 FROM state WHERE service_key = 'a'")
    assert got == [{"value_utf8": "2"}]
    after = [(v.stats.refreshes, v.stats.full_rebuilds, v.stats.keys_rebuilt)
             for v in mat.views]
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert len(changed) == 1, (before, after)  # only the partition of Counter/a
    i = changed[0]
    assert after[i][1] == before[i][1]  # no full rebuild
    assert after[i][2] - before[i][2] <= 8  # a few keys: the invocation, its state, lock...
    await asyncio.sleep(0)
