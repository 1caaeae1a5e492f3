"""The invoker against official restate-sdk services, in REQUEST_RESPONSE and BIDI modes.

The server runs in-process without HTTP listeners; invocations are proposed directly and their
results awaited, so this isolates log -> apply -> invoker -> service -> log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from rstq.core import commands as c
from rstq.core.discovery import discover, to_json
from rstq.core.ids import new_invocation_id, workflow_invocation_id
from rstq.core.model import COMPLETED
from rstq.core.server import Result, Server, ServerConfig
from rstq.protocol.ids import DeploymentId

from tests.support.harness.hypercorn_proc import HypercornProcess

SDK_APP = "tests.support.apps.sdk_basic_services:app"


@pytest.fixture(scope="module")
def sdk() -> Iterator[HypercornProcess]:
    with HypercornProcess(SDK_APP) as hc:
        yield hc


@pytest.fixture(params=["request_response", "bidi"])
async def server(request: pytest.FixtureRequest, sdk: HypercornProcess, tmp_path: Path,
                 ) -> AsyncIterator[Server]:
    srv = Server(ServerConfig(data_dir=tmp_path / "data", partitions=4, ingress_bind=None,
                              admin_bind=None))
    await srv.start()
    http11 = request.param == "request_response"
    manifest = await discover(sdk.url, use_http_11=http11)
    assert srv.meta is not None
    await srv.meta.propose(c.RegisterDeployment(str(DeploymentId.new()), sdk.url,
                                                to_json(manifest), use_http_11=http11))
    yield srv
    await srv.stop()


async def call(srv: Server, service: str, handler: str, payload: object, key: str | None = None,
               inv_id: str | None = None, timeout: float = 20) -> Result:
    svc = srv.schema.services[service]
    dep = srv.schema.deployments[svc.deployment_id]
    inv_id = inv_id or new_invocation_id(service, key)
    fut = srv.wait_result(inv_id)
    await srv.propose_to(inv_id, c.Invoke(
        invocation_id=inv_id, service=service, handler=handler, key=key or "",
        service_ty=svc.ty, handler_ty=svc.handler_ty(handler),
        input=json.dumps(payload).encode() if payload is not None else b"",
        deployment_id=dep.deployment_id, protocol_version=dep.protocol_version))
    return await asyncio.wait_for(fut, timeout)


async def test_service_call(server: Server) -> None:
    res = await call(server, "Greeter", "greet", "bob")
    assert res.failure is None and json.loads(res.value or b"") == "hello bob"


async def test_object_state_is_durable_and_serialized(server: Server) -> None:
    results = await asyncio.gather(*(call(server, "Counter", "add", 1, key="k") for _ in range(5)))
    assert sorted(json.loads(r.value or b"") for r in results) == [1, 2, 3, 4, 5]
    got = await call(server, "Counter", "get", None, key="k")
    assert json.loads(got.value or b"") == 5
    proc = server.partition_for_key(
        __import__("rstq.core.partitioning", fromlist=["x"]).partition_key_for("Counter", "k"))
    assert proc.state.kv[("Counter", "k")] == {b"n": b"5"}


async def test_workflow_promise_resumes_the_suspended_run(server: Server) -> None:
    run_id = workflow_invocation_id("Wf", "w1")
    run = asyncio.ensure_future(call(server, "Wf", "run", "x", key="w1", inv_id=run_id))
    await asyncio.sleep(0.3)
    await call(server, "Wf", "signal", "v", key="w1")
    res = await asyncio.wait_for(run, 20)
    assert json.loads(res.value or b"") == "wf x v"
    inv = server.partition_for_id(run_id).state.invocations[run_id]
    assert inv.status == COMPLETED and inv.epoch >= 1
