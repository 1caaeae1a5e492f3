"""h2c client against a real hypercorn server (tests/support/apps/echo_app.py) on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import time
from collections.abc import Iterator

import pytest
from rstq.core import h2c
from rstq.core.h2c import H2Connection, H2ConnectionError, H2Pool, H2StreamReset, get

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.net.ports import free_port

ECHO_APP = "tests.support.apps.echo_app:app"
T = 10.0  # per-step timeout: a hang fails fast instead of hitting the global timeout


@pytest.fixture(scope="module")
def echo() -> Iterator[HypercornProcess]:
    # Default keep_alive_max_requests (1000) would GOAWAY mid-benchmark; raised here, while
    # test_goaway_reconnects covers the low setting.
    with HypercornProcess(ECHO_APP, config={"keep_alive_max_requests": 1_000_000}) as hc:
        yield hc


async def test_get_helper(echo: HypercornProcess) -> None:
    status, headers, body = await get(f"{echo.url}/headers", {"X-Probe": "1"})
    assert status == 200
    assert dict(headers)["content-type"] == "application/json"
    sent = json.loads(body)
    assert sent["x-probe"] == "1"
    status, _, body = await get(f"{echo.url}/nope")
    assert (status, body) == (404, b"not found")


async def test_full_duplex_echo(echo: HypercornProcess) -> None:
    async with await H2Connection.connect("127.0.0.1", echo.port) as conn:
        stream = await conn.request("POST", "/echo")
        head = await asyncio.wait_for(stream.response_headers(), T)
        assert head.status == 200
        assert head.header("Content-Type") == "application/octet-stream"
        # Each echo is read back before the next chunk is sent, with the request still open:
        # only possible if request and response flow concurrently.
        for i in range(20):
            msg = f"frame-{i}".encode()
            await stream.send(msg)
            assert await asyncio.wait_for(stream.next_chunk(), T) == msg
        await stream.end()
        assert await asyncio.wait_for(stream.read(), T) == b""
        assert stream.closed
        assert conn.active_streams == 0


async def test_read_timeout_is_cancellation_safe(echo: HypercornProcess) -> None:
    async with await H2Connection.connect("127.0.0.1", echo.port) as conn:
        stream = await conn.request("POST", "/echo")
        with pytest.raises(TimeoutError):  # nothing sent yet: nothing to echo
            await asyncio.wait_for(stream.next_chunk(), 0.05)
        await stream.send(b"late")
        assert await asyncio.wait_for(stream.next_chunk(), T) == b"late"
        await stream.end()
        assert await asyncio.wait_for(stream.read(), T) == b""


async def test_many_concurrent_streams_one_connection(echo: HypercornProcess) -> None:
    n = 300  # above hypercorn's 100 concurrent streams: request() must wait for slots
    pool = H2Pool()
    try:

        async def one(i: int) -> bytes:
            stream = await pool.request("127.0.0.1", echo.port, "POST", "/echo")
            async with stream:
                await stream.send(b"a%d-" % i)
                first = await asyncio.wait_for(stream.next_chunk(), T)
                await stream.send(b"b%d" % i)
                await stream.end()
                assert first is not None
                return first + await asyncio.wait_for(stream.read(), T)

        conn = await pool.connection("127.0.0.1", echo.port)
        results = await asyncio.gather(*(one(i) for i in range(n)))
        assert results == [b"a%d-b%d" % (i, i) for i in range(n)]
        assert await pool.connection("127.0.0.1", echo.port) is conn  # all on one connection
        assert conn.active_streams == 0
    finally:
        await pool.close()


async def test_large_bodies_flow_control(echo: HypercornProcess) -> None:
    async with await H2Connection.connect("127.0.0.1", echo.port) as conn:
        # Upload 5 MiB (far beyond the 64 KiB default windows) and check what the server got.
        blob = os.urandom(5 << 20)
        stream = await conn.request("POST", "/count")
        await asyncio.wait_for(stream.send(blob), T)
        await stream.end()
        got = json.loads(await asyncio.wait_for(stream.read(), T))
        assert got == {"n": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}

        # Download 8 MiB: only completes if received data is acknowledged.
        stream = await conn.request("GET", f"/bytes?n={8 << 20}", end_stream=True)
        body = await asyncio.wait_for(stream.read(), T)
        assert len(body) == 8 << 20
        assert body[:512] == bytes(range(256)) * 2

        # 3 MiB through the echo in both directions at once: writer and reader run
        # concurrently, each bounded by the other side's window.
        stream = await conn.request("POST", "/echo")

        async def writer() -> None:
            for off in range(0, len(blob[: 3 << 20]), 1 << 16):
                await stream.send(blob[off : off + (1 << 16)])
            await stream.end()

        w = asyncio.create_task(writer())
        echoed = await asyncio.wait_for(stream.read(), T)
        await w
        assert echoed == blob[: 3 << 20]


async def test_reset_stream_keeps_connection(echo: HypercornProcess) -> None:
    async with await H2Connection.connect("127.0.0.1", echo.port) as conn:
        stream = await conn.request("GET", f"/bytes?n={16 << 20}", end_stream=True)
        assert await asyncio.wait_for(stream.next_chunk(), T)
        stream.reset()  # abandon a large unread body
        with pytest.raises(H2StreamReset) as ei:
            await stream.read()
        assert not ei.value.remote
        with pytest.raises(H2ConnectionError):
            await stream.send(b"x")
        # The connection window was handed back: a second large body still flows.
        stream = await conn.request("GET", f"/bytes?n={20 << 20}", end_stream=True)
        assert len(await asyncio.wait_for(stream.read(), T)) == 20 << 20
        assert conn.usable


async def test_connection_refused() -> None:
    with pytest.raises(H2ConnectionError) as ei:
        await H2Connection.connect("127.0.0.1", free_port())
    assert ei.value.refused


async def test_server_killed_mid_stream_then_pool_reconnects() -> None:
    hc = HypercornProcess(ECHO_APP).start()
    pool = H2Pool()
    try:
        stream = await pool.request("127.0.0.1", hc.port, "POST", "/echo")
        await stream.send(b"hi")
        assert await asyncio.wait_for(stream.next_chunk(), T) == b"hi"
        conn = await pool.connection("127.0.0.1", hc.port)
        hc.kill()  # no GOAWAY: the TCP connection just drops
        with pytest.raises(H2ConnectionError):
            await asyncio.wait_for(stream.read(), T)
        with pytest.raises(H2ConnectionError):
            await stream.send(b"more")
        assert not conn.usable
        with pytest.raises(H2ConnectionError) as ei:  # nobody listening now
            await pool.request("127.0.0.1", hc.port, "GET", "/bytes?n=1", end_stream=True)
        assert ei.value.refused

        hc.start()  # same port again
        stream = await pool.request("127.0.0.1", hc.port, "GET", "/bytes?n=3", end_stream=True)
        assert await asyncio.wait_for(stream.read(), T) == b"\x00\x01\x02"
        assert await pool.connection("127.0.0.1", hc.port) is not conn
    finally:
        await pool.close()
        hc.stop()


async def test_goaway_reconnects() -> None:
    # hypercorn sends GOAWAY after keep_alive_max_requests; the pool moves to a new connection.
    # A request racing the GOAWAY fails as `refused` (provably unprocessed), so it is retried.
    with HypercornProcess(ECHO_APP, config={"keep_alive_max_requests": 3}) as hc:
        pool = H2Pool()
        conns = set()
        try:
            for _ in range(12):
                for attempt in range(3):
                    try:
                        s = await pool.request(
                            "127.0.0.1", hc.port, "GET", "/bytes?n=5", end_stream=True
                        )
                        assert (await asyncio.wait_for(s.response_headers(), T)).status == 200
                        assert len(await asyncio.wait_for(s.read(), T)) == 5
                        break
                    except H2ConnectionError as e:
                        assert e.refused and attempt < 2, e
                conns.add(id(await pool.connection("127.0.0.1", hc.port)))
            # The helper retries refused GETs by itself.
            for _ in range(12):
                status, _, body = await get(f"{hc.url}/bytes?n=2", pool=pool)
                assert (status, body) == (200, b"\x00\x01")
        finally:
            await pool.close()
        assert len(conns) >= 3


async def test_echo_round_trip_latency(echo: HypercornProcess) -> None:
    """p50 of a small full request/response echo over one connection (reported, loosely bound)."""
    async with await H2Connection.connect("127.0.0.1", echo.port) as conn:
        samples = []
        for i in range(1100):
            t0 = time.perf_counter()
            stream = await conn.request("POST", "/echo")
            await stream.send(b"ping")
            await stream.end()
            assert await asyncio.wait_for(stream.read(), T) == b"ping"
            if i >= 100:  # warm-up
                samples.append(time.perf_counter() - t0)
    q = statistics.quantiles(samples, n=100)
    p50, p99 = statistics.median(samples) * 1e3, q[98] * 1e3
    print(f"\nh2c echo round trip over {len(samples)} requests: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    assert p50 < 50


async def test_more_streams_than_hypercorn_can_hold_wait_for_a_slot() -> None:
    # hypercorn advertising "unlimited" streams still drops the connection past 1000 open ones
    # (its priority tree): our own cap keeps every request alive.
    n = 1200
    cfg = {"h2_max_concurrent_streams": 2**31 - 1, "keep_alive_max_requests": 1_000_000}
    with HypercornProcess(ECHO_APP, config=cfg) as hc:
        pool = H2Pool()
        try:

            opened = 0
            crowd = asyncio.Event()  # every stream stays open until this many are open at once

            async def one(i: int) -> bytes:
                nonlocal opened
                stream = await pool.request("127.0.0.1", hc.port, "POST", "/echo")
                async with stream:
                    await stream.send(b"x%d" % i)
                    first = await asyncio.wait_for(stream.next_chunk(), 60)
                    opened += 1
                    if opened >= min(n, h2c.MAX_OPEN_STREAMS):
                        crowd.set()
                    await asyncio.wait_for(crowd.wait(), 60)
                    await stream.end()
                    return (first or b"") + await asyncio.wait_for(stream.read(), 60)

            results = await asyncio.gather(*(one(i) for i in range(n)))
            assert results == [b"x%d" % i for i in range(n)]
        finally:
            await pool.close()
