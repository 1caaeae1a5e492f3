"""Processes paused (SIGSTOP/SIGCONT) longer than the inactivity timeout, and a faulty network
between server and service (tests/support/net/tcp_proxy.py: delays, black holes, resets), under
the mixed load of tests/support/harness/chaos.py. Afterwards: counters exact, everything
completed, no journaled ctx.run executed again, all logs verify.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.harness import chaos
from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer
from tests.support.net.tcp_proxy import FaultyProxy

PAUSES = chaos.scale(1, 12)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(chaos.scale(150, 1800))]


async def _pause(pid: int, seconds: float) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)  # the fault itself: a pause of this length
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_sigstop_server_and_service(tmp_path: Path) -> None:
    rnd = random.Random(17)
    hc = HypercornProcess(chaos.APP).start()
    srv = RstqServer(data_dir=tmp_path / "data", extra_args=["--loop", "asyncio"]).start()
    n = chaos.scale(50, 600)
    load = chaos.MixedLoad(lambda: srv.ingress_url, tmp_path / "work", n, seed=17)
    t0 = time.monotonic()
    paused = {"server": 0, "service": 0}
    try:
        srv.register(hc.url)
        async with httpx.AsyncClient() as client:
            run = asyncio.create_task(load.run(client))
            for i in range(PAUSES * 2):
                which = "server" if i % 2 == 0 else "service"
                await asyncio.sleep(rnd.uniform(0.1, 0.6))  # a random moment of the load
                pid = srv.proc.pid if which == "server" else hc.proc.pid  # type: ignore[union-attr]
                await _pause(pid, rnd.uniform(1.5, 2.5))  # > the 1 s inactivity timeout
                paused[which] += 1
            await asyncio.wait_for(run, chaos.scale(90, 900))
            checked = await load.check_final(client, timeout=chaos.scale(60, 300))
        srv.kill()
        records = chaos.verify_logs(srv.data_dir)
    finally:
        srv.cleanup()
        hc.kill()
    chaos.record("sigstop", server_pauses=paused["server"], service_pauses=paused["service"],
                 requests_checked=checked, log_records_verified=records, losses=0,
                 duplicates=0, seconds=round(time.monotonic() - t0, 1))


@pytest.mark.parametrize("http11", [
    False, pytest.param(True, marks=pytest.mark.skipif(not chaos.LONG, reason="long run"))],
    ids=["bidi", "request_response"])
async def test_faulty_network_between_server_and_service(tmp_path: Path, http11: bool) -> None:
    hc = HypercornProcess(chaos.APP).start()
    proxy = FaultyProxy(hc.port, seed=23 + http11).start()
    srv = RstqServer(data_dir=tmp_path / "data", extra_args=["--loop", "asyncio"]).start()
    n = chaos.scale(40, 500)
    load = chaos.MixedLoad(lambda: srv.ingress_url, tmp_path / "work", n, seed=23 + http11)
    t0 = time.monotonic()
    try:
        srv.register(proxy.url, use_http_11=http11)
        proxy.set_faults(delay=0.05, drop=0.004, reset=0.01, max_delay=0.3)
        async with httpx.AsyncClient() as client:
            await asyncio.wait_for(load.run(client), chaos.scale(100, 900))
            checked = await load.check_final(client, timeout=chaos.scale(90, 600))
        srv.kill()
        records = chaos.verify_logs(srv.data_dir)
    finally:
        srv.cleanup()
        proxy.stop()
        hc.kill()
    name = f"faulty_network_{'rr' if http11 else 'bidi'}"
    chaos.record(name, faults_injected=dict(proxy.injected), connections=proxy.connections,
                 requests_checked=checked, log_records_verified=records, losses=0,
                 duplicates=0, seconds=round(time.monotonic() - t0, 1))
    assert sum(proxy.injected.values()) > 0
