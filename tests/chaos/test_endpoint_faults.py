"""Service endpoint faults: a zombie attempt fenced by its epoch, 503 + Retry-After, and the
service process crashing (SIGKILL) again and again mid-handler under the mixed load.

Garbage frames, truncated frames, 5xx, hangs and journal mismatches are covered one by one in
tests/core/test_bad_services.py, a single crash mid-ctx.run in tests/crash.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.harness import chaos
from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(chaos.scale(120, 1800))]


@pytest.fixture(scope="module")
def zombie_env() -> Iterator[tuple[RstqServer, HypercornProcess]]:
    hc = HypercornProcess("tests.support.apps.zombie_endpoint:app").start()
    srv = RstqServer(extra_args=["--loop", "asyncio"]).start()
    try:
        srv.register(hc.url + "/rr", use_http_11=True)
        srv.register(hc.url + "/h2")
        yield srv, hc
    finally:
        srv.cleanup()
        hc.kill()


@pytest.mark.parametrize("service", ["ZombieRR", "ZombieH2"])
async def test_zombie_attempt_is_fenced(zombie_env: tuple[RstqServer, HypercornProcess],
                                        service: str) -> None:
    srv, hc = zombie_env
    key = f"k-{service}"
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{srv.ingress_url}/{service}/{key}/set")
        assert (r.status_code, r.json()) == (200, "live"), r.text
        inv_id = r.headers["x-restate-id"]

        async def zombie_done() -> bool:
            stats = (await client.get(hc.url + "/stats")).json()
            return bool(stats["zombie_sent"].get(inv_id, 0) >= 1)

        await chaos.wait_for("the zombie to send its frames", zombie_done, 10)
        q = await client.post(srv.admin_url + "/query", headers={"accept": "application/json"},
                              json={"query": "SELECT key, value_utf8 FROM state WHERE "
                                             f"service_name = '{service}' AND "
                                             f"service_key = '{key}'"})
        assert q.status_code == 200, q.text
        assert q.json()["rows"] == [{"key": "owner", "value_utf8": '"live"'}]
        q = await client.post(srv.admin_url + "/query", headers={"accept": "application/json"},
                              json={"query": "SELECT entry_json FROM sys_journal WHERE "
                                             f"id = '{inv_id}'"})
        journal = " ".join(row["entry_json"] or "" for row in q.json()["rows"])
        assert q.json()["rows"], q.text
        assert "zombie" not in journal
    chaos.add("endpoint_faults", "zombie_attempts_fenced")


@pytest.mark.parametrize("service", ["ZombieRR", "ZombieH2"])
async def test_503_retry_after_is_honoured(zombie_env: tuple[RstqServer, HypercornProcess],
                                           service: str) -> None:
    """The policy says retry after 20 ms; Retry-After: 1 says a second: a second it is."""
    srv, hc = zombie_env
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{srv.ingress_url}/{service}/rk/busy")
        assert (r.status_code, r.json()) == (200, "ok"), r.text
        starts = (await client.get(hc.url + "/stats")).json()["attempts"][r.headers["x-restate-id"]]
    assert len(starts) == 3
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(0.95 <= g < 5 for g in gaps), gaps
    chaos.add("endpoint_faults", "retry_after_503s", 2)


async def test_service_crashes_under_mixed_load(tmp_path: Path) -> None:
    rnd = random.Random(31)
    crashes = chaos.scale(2, 25)
    hc = HypercornProcess(chaos.APP).start()
    srv = RstqServer(data_dir=tmp_path / "data", extra_args=["--loop", "asyncio"]).start()
    load = chaos.MixedLoad(lambda: srv.ingress_url, tmp_path / "work", chaos.scale(40, 600),
                           seed=31)
    t0 = time.monotonic()
    try:
        srv.register(hc.url)
        async with httpx.AsyncClient() as client:
            run = asyncio.create_task(load.run(client))
            for _ in range(crashes):
                await asyncio.sleep(rnd.uniform(0.1, 0.8))  # a random moment of the load
                hc.kill()
                hc = hc.replacement().start()
            await asyncio.wait_for(run, chaos.scale(90, 900))
            checked = await load.check_final(client, timeout=chaos.scale(60, 300))
        srv.kill()
        records = chaos.verify_logs(srv.data_dir)
    finally:
        srv.cleanup()
        hc.kill()
    chaos.record("service_crashes", crashes=crashes, requests_checked=checked,
                 log_records_verified=records, ctx_run_reexecutions=load.step_reruns,
                 losses=0, duplicates=0, seconds=round(time.monotonic() - t0, 1))
