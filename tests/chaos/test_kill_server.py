"""kill -9 of the rstq server at random moments under a mixed load (tests/support/harness/chaos.py).

After each kill: every log of the data dir opens (recovery) and reads back fully; after each
restart: every counter lies between the increments acknowledged as done and those issued. At
the end: every invocation completed, every counter equals its requests (no loss, no
duplicate), and no ctx.run step ran again once its result was journaled.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx
import pytest

from tests.support.harness import chaos
from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer

KILLS = chaos.scale(3, 100)
REQUESTS = chaos.scale(90, 2500)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(chaos.scale(120, 3000))]


# The partition store as it runs by default, and with a checkpoint (and a log trim below the
# oldest one kept) every 40 commands, history moved into segments every 8 completions and
# caches of 2, so kills also land during checkpoints, trims and history moves, and most reads
# of completed invocations and objects go to disk.
@pytest.mark.parametrize("extra", [[], ["--snapshot-every", "40", "--segment-rows", "8",
                                        "--cache-size", "2"]],
                         ids=["store", "store-checkpoints-history"])
async def test_kill9_under_mixed_load(service: HypercornProcess, tmp_path: Path,
                                      extra: list[str]) -> None:
    rnd = random.Random(9_2026)
    srv = RstqServer(data_dir=tmp_path / "data", extra_args=["--loop", "asyncio", *extra])
    srv.start()
    srv.register(service.url)
    load = chaos.MixedLoad(lambda: srv.ingress_url, tmp_path / "work", REQUESTS, seed=9)
    records = recoveries = 0
    t0 = time.monotonic()
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as client:
            run = asyncio.create_task(load.run(client))
            for _kill in range(KILLS):
                # A random moment: after a random share of the load, or at once if it is done.
                target = load.acked + rnd.randint(1, max(2, 2 * REQUESTS // (KILLS * 3)))
                deadline = time.monotonic() + rnd.uniform(0.05, 1.5)
                while load.acked < target and time.monotonic() < deadline and not run.done():
                    await asyncio.sleep(0.01)
                load.paused.set()
                srv.kill()
                records = await asyncio.to_thread(chaos.verify_logs, srv.data_dir)
                await asyncio.to_thread(srv.start)
                load.paused.clear()
                recoveries += 1
                await load.check_bounds(client)
            await asyncio.wait_for(run, chaos.scale(90, 900))
            checked = await load.check_final(client, timeout=chaos.scale(60, 300))
        srv.kill()
        records = chaos.verify_logs(srv.data_dir)
        if extra:  # the kills did land among checkpoints and trims
            assert list((srv.data_dir / "partitions").glob("*/checkpoints/0*"))
    finally:
        srv.cleanup()
    chaos.record("kill9_mixed_load" + ("_checkpoints" if extra else ""),
                 kills_survived=recoveries, requests_checked=checked,
                 http_requests_sent=load.sent_http, log_records_verified=records,
                 ctx_run_reexecutions_before_journaling=load.step_reruns,
                 losses=0, duplicates=0, seconds=round(time.monotonic() - t0, 1))
