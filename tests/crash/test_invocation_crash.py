"""Crash tests of whole invocations: SIGKILL the rstq server under load, SIGKILL the service
in the middle of a handler. Nothing acknowledged is lost; nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer

APP = "tests.support.apps.crash_services:app"
pytestmark = pytest.mark.slow


@pytest.fixture
def service() -> Iterator[HypercornProcess]:
    with HypercornProcess(APP) as hc:
        yield hc


async def _send_until_acked(client: httpx.AsyncClient, srv: RstqServer, key: str, req: str,
                            acked: set[str], stop: asyncio.Event) -> None:
    """One logical request: retried with the same idempotency key until acknowledged."""
    while req not in acked:
        if stop.is_set():
            await asyncio.sleep(0.01)
            continue
        try:
            r = await client.post(f"{srv.ingress_url}/Tally/{key}/add", json=1,
                                  headers={"idempotency-key": req}, timeout=15)
        except httpx.HTTPError:
            await asyncio.sleep(0.05)  # server down: the test restarts it
            continue
        if r.status_code == 200:
            acked.add(req)
        else:
            await asyncio.sleep(0.05)


async def test_kill_server_under_keyed_load_loses_and_duplicates_nothing(
        service: HypercornProcess, tmp_path: Path) -> None:
    rnd = random.Random(20261125)
    keys = [f"k{i}" for i in range(6)]
    requests = [(keys[i % len(keys)], f"req-{i}") for i in range(240)]
    srv = RstqServer(data_dir=tmp_path / "data")
    srv.start()
    srv.register(service.url)
    acked: set[str] = set()
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as client:
            sem = asyncio.Semaphore(16)

            async def one(key: str, req: str) -> None:
                async with sem:
                    await _send_until_acked(client, srv, key, req, acked, stop)

            load = asyncio.gather(*(one(k, r) for k, r in requests))
            for _round in range(3):
                target = len(acked) + rnd.randint(15, 40)
                while len(acked) < min(target, len(requests)) and not load.done():
                    await asyncio.sleep(0.01)
                stop.set()
                srv.kill()
                stop.clear()
                await asyncio.to_thread(srv.start)
            await asyncio.wait_for(load, 120)
            # Everything was acknowledged exactly once per idempotency key: counters agree.
            for key in keys:
                expected = sum(1 for k, _ in requests if k == key)
                r = await client.get(f"{srv.ingress_url}/Tally/{key}/get", timeout=15)
                assert r.status_code == 200, r.text
                assert r.json() == expected, f"{key}: {r.json()} != {expected}"
            # And a late retry of an acknowledged request is still deduplicated.
            k, req = requests[0]
            r = await client.post(f"{srv.ingress_url}/Tally/{k}/add", json=1,
                                  headers={"idempotency-key": req}, timeout=15)
            assert r.status_code == 200
            r = await client.get(f"{srv.ingress_url}/Tally/{k}/get", timeout=15)
            assert r.json() == sum(1 for kk, _ in requests if kk == k)
    finally:
        srv.cleanup()


@pytest.mark.parametrize("http11", [False, True], ids=["bidi", "request_response"])
async def test_kill_service_mid_handler_resumes_without_rerunning_journaled_steps(
        tmp_path: Path, http11: bool) -> None:
    marker = tmp_path / "marker.txt"
    hc = HypercornProcess(APP).start()
    srv = RstqServer(data_dir=tmp_path / "data")
    srv.start()
    try:
        srv.register(hc.url, use_http_11=http11)
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{srv.ingress_url}/Steps/run3/send", json=str(marker))
            assert r.status_code == 202, r.text
            inv_id = r.json()["invocationId"]
            for _ in range(1000):  # wait until step 2 runs (step 1 is journaled by then)
                if marker.exists() and "step2" in marker.read_text():
                    break
                await asyncio.sleep(0.01)
            assert marker.read_text().split() == ["step1", "step2"]
            hc.kill()
            Path(str(marker) + ".go").touch()
            hc = hc.replacement().start()
            r = await client.get(f"{srv.ingress_url}/restate/invocation/{inv_id}/attach",
                                 timeout=60)
            assert r.status_code == 200, r.text
            assert r.json() == "abc"
        # step1 ran once (its result was journaled); step2 ran again after the kill.
        assert marker.read_text().split() == ["step1", "step2", "step2", "step3"]
    finally:
        srv.cleanup()
        hc.stop()
