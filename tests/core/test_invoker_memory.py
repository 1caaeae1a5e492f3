"""The invoker through the in-memory transport: real SDK apps, no sockets, no hypercorn.

Each test runs the compat services (tests/support/apps/compat_services.py) with the official
restate-sdk and with rstq.sdk, in REQUEST_RESPONSE and BIDI_STREAM mode, called in-process by
`AsgiTransport`. Time is a `ManualClock`: sleeps and retry backoffs fire when the test moves the
clock, and every wait is for a state the partitions applied (`Watch`), never for time to pass.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core.clock import ManualClock
from rstq.core.discovery import discover, to_json
from rstq.core.ids import new_invocation_id, workflow_invocation_id
from rstq.core.model import BACKING_OFF, Invocation, PartitionState, Timer
from rstq.core.partitioning import partition_key_for
from rstq.core.ports import Result
from rstq.core.server import Server, ServerConfig
from rstq.core.transport_asgi import AsgiApp, AsgiTransport, Receive, Send
from rstq.protocol import messages as pm
from rstq.protocol.ids import DeploymentId

from tests.support.apps import compat_services, rstq_sdk_compat_services

URI = "http://services.test:9080"
T = TypeVar("T")


class Watch:
    """An apply observer: `until(cond)` returns cond()'s first non-None value, checked after
    every applied batch (no polling, no sleeping)."""

    def __init__(self) -> None:
        self._applied = asyncio.Event()

    def on_applied(self, partition: int, envelope: c.Envelope, actions: list[a.Action],
                   state: PartitionState) -> None:
        self._applied.set()

    def on_redrive(self, partition: int, actions: list[a.Action], state: PartitionState,
                   ) -> None:
        self._applied.set()

    async def until(self, cond: Callable[[], T | None], timeout: float = 20) -> T:
        async with asyncio.timeout(timeout):  # a bound for a broken test, not a wait
            while (value := cond()) is None:
                self._applied.clear()
                await self._applied.wait()
        return value


@dataclass
class Env:
    server: Server
    transport: AsgiTransport
    clock: ManualClock
    watch: Watch
    bidi: bool

    def invocation(self, inv_id: str) -> Invocation | None:
        return self.server.partition_for_id(inv_id).state.invocations.get(inv_id)

    async def start(self, service: str, handler: str, payload: object, key: str | None = None,
                    inv_id: str | None = None) -> tuple[str, asyncio.Future[Result]]:
        """Propose the invoke, as the ingress does; returns the id and its result's future."""
        svc = self.server.schema.services[service]
        dep = self.server.schema.deployments[svc.deployment_id]
        inv_id = inv_id or new_invocation_id(service, key, self.clock.now_ms())
        fut = self.server.wait_result(inv_id)
        await self.server.propose_to(inv_id, c.Invoke(
            invocation_id=inv_id, service=service, handler=handler, key=key or "",
            service_ty=svc.ty, handler_ty=svc.handler_ty(handler),
            input=json.dumps(payload).encode() if payload is not None else b"",
            deployment_id=dep.deployment_id, protocol_version=dep.protocol_version))
        return inv_id, fut

    async def call(self, service: str, handler: str, payload: object,
                   key: str | None = None) -> Any:
        _, fut = await self.start(service, handler, payload, key)
        res = await asyncio.wait_for(fut, 20)
        assert res.failure is None, res.failure
        return json.loads(res.value) if res.value else None


SDKS = {"restate-sdk": compat_services.app, "rstq.sdk": rstq_sdk_compat_services.app}


async def start_env(tmp_path: Path, app: AsgiApp, bidi: bool) -> Env:
    clock = ManualClock(time.time_ns() // 1_000_000)  # SDKs put wall-clock times in sleeps
    transport = AsgiTransport(app)
    server = Server(ServerConfig(data_dir=tmp_path / "data", partitions=4, ingress_bind=None,
                                 admin_bind=None), clock=clock, transport=transport)
    await server.start()
    manifest = await discover(URI, use_http_11=not bidi,
                              fetch=functools.partial(transport.get, bidi=bidi))
    assert manifest.protocol_mode.value == ("BIDI_STREAM" if bidi else "REQUEST_RESPONSE")
    assert server.meta is not None
    await server.meta.propose(c.RegisterDeployment(str(DeploymentId.new()), URI,
                                                   to_json(manifest), use_http_11=not bidi))
    watch = Watch()
    for proc in server.processors:
        proc.observer = watch
    return Env(server, transport, clock, watch, bidi)


@pytest.fixture(params=[(sdk, mode) for sdk in SDKS for mode in ("request_response", "bidi")],
                ids=lambda p: f"{p[0]}-{p[1]}")
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    sdk, mode = request.param
    e = await start_env(tmp_path, SDKS[sdk], bidi=mode == "bidi")
    try:
        yield e
    finally:
        await e.server.stop()


async def test_service_call(env: Env) -> None:
    assert await env.call("Greeter", "greet", "bob") == "Hello bob!"
    assert env.transport.opened == 1


async def test_object_state_is_serialized_and_durable(env: Env) -> None:
    results = await asyncio.gather(*(env.call("Counter", "add", 1, key="k") for _ in range(5)))
    assert sorted(results) == [1, 2, 3, 4, 5]
    assert await env.call("Counter", "get", None, key="k") == 5
    state = env.server.partition_for_key(partition_key_for("Counter", "k")).state
    assert state.kv[("Counter", "k")] == {b"count": b"5"}


async def test_sleep_fires_on_the_injected_clock(env: Env) -> None:
    inv_id, fut = await env.start("Greeter", "sleepy", 60_000)

    def sleep_timer() -> Timer | None:
        timers = env.server.partition_for_id(inv_id).state.timers.values()
        return next((t for t in timers if t.invocation_id == inv_id and t.kind == "sleep"), None)

    timer = await env.watch.until(sleep_timer)
    assert not fut.done()
    env.clock.advance(timer.fire_at - env.clock.now_ms())
    res = await asyncio.wait_for(fut, 20)
    assert json.loads(res.value or b"") == "slept 60000ms"
    # REQUEST_RESPONSE suspends and resumes in a new attempt; BIDI gets the timer's
    # notification pushed on the stream that stays open.
    assert env.transport.opened == (1 if env.bidi else 2)


async def test_workflow_promise_resumes_the_run(env: Env) -> None:
    run_id = workflow_invocation_id("Signup", "w1")
    _, run = await env.start("Signup", "run", "ann", key="w1", inv_id=run_id)

    def waiting_on_the_promise() -> bool | None:
        inv = env.invocation(run_id)
        entries = [e.entry_type for e in inv.journal] if inv is not None else []
        return True if pm.MessageType.GET_PROMISE_COMMAND in entries else None

    await env.watch.until(waiting_on_the_promise)
    assert await env.call("Signup", "approve", "bob", key="w1") is None
    res = await asyncio.wait_for(run, 20)
    assert json.loads(res.value or b"") == "ann approved by bob"


def unavailable_once(app: AsgiApp) -> AsgiApp:
    """`app` behind a proxy that answers the first invocation 503 with Retry-After: 7."""
    answered = False

    async def proxy(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        nonlocal answered
        if "/invoke/" in scope["path"] and not answered:
            answered = True
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"retry-after", b"7")]})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        await app(scope, receive, send)

    return proxy


@pytest.mark.parametrize("mode", ["request_response", "bidi"])
async def test_retry_after_sets_the_backoff(tmp_path: Path, mode: str) -> None:
    e = await start_env(tmp_path, unavailable_once(compat_services.app), bidi=mode == "bidi")
    try:
        inv_id, fut = await e.start("Greeter", "greet", "eve")
        inv = await e.watch.until(
            lambda: i if (i := e.invocation(inv_id)) and i.status == BACKING_OFF else None)
        assert inv.next_retry_at == e.clock.now_ms() + 7000
        assert "service endpoint answered HTTP 503: busy" in (inv.last_failure or "")
        e.clock.advance(7000)
        res = await asyncio.wait_for(fut, 20)
        assert json.loads(res.value or b"") == "Hello eve!"
        assert e.transport.opened == 2
    finally:
        await e.server.stop()
