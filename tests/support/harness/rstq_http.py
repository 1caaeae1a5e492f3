"""An in-process rstq Server with its ingress and admin listeners on ephemeral ports (tests).

`running_server` starts one on a tmp data dir. `register_manifest` registers a crafted manifest
straight into the metadata log (no endpoint needed). `FakeInvoker` stands in for the invoker:
it records attempts and, when told to, finishes each one with a given output, so the HTTP layer
can be tested without a service endpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rstq.app import AppConfig, build
from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core.discovery import parse_manifest, to_json
from rstq.core.server import Server, ServerConfig
from rstq.protocol import messages as pm
from rstq.protocol.ids import DeploymentId

# A deployment of every kind of target; its URI is never called (see FakeInvoker).
MANIFEST: dict[str, Any] = {
    "protocolMode": "BIDI_STREAM",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [
        {"name": "Greeter", "ty": "SERVICE", "handlers": [
            {"name": "greet", "input": {"required": False, "contentType": "application/json",
                                        "jsonSchema": {"type": "string"}},
             "output": {"contentType": "application/json", "jsonSchema": {"type": "string"}}},
            {"name": "empty", "input": {}, "output": {}},
            {"name": "raw"},
            {"name": "secret", "ingressPrivate": True},
        ]},
        {"name": "Counter", "ty": "VIRTUAL_OBJECT", "handlers": [
            {"name": "add", "input": {"required": True, "contentType": "application/json",
                                      "jsonSchema": {"type": "integer"}}},
            {"name": "get", "ty": "SHARED", "input": {}},
        ]},
        {"name": "Signup", "ty": "WORKFLOW",
         "handlers": [{"name": "run", "workflowCompletionRetention": 7_200_000},
                      {"name": "status", "ty": "SHARED"}]},
    ],
}


class FakeInvoker:
    """Records StartAttempt actions; with `output` set, completes each attempt with it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.started: list[str] = []
        self.output: bytes | tuple[int, str] | None = None  # value, or (code, message) failure
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, partition: int, act: a.Action) -> None:
        if isinstance(act, a.StartAttempt):
            self.started.append(act.invocation_id)
            if self.output is not None:
                task = asyncio.get_running_loop().create_task(self.finish(act, self.output))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def finish(self, act: a.StartAttempt, output: bytes | tuple[int, str]) -> None:
        if isinstance(output, bytes):
            msg = pm.OutputCommandMessage(value=pm.Value(content=output))
        else:
            msg = pm.OutputCommandMessage(failure=pm.Failure(code=output[0], message=output[1]))
        inv_id = act.invocation_id
        await self.server.propose_to(inv_id, c.AppendEntry(inv_id, act.epoch, msg.TYPE,
                                                           msg.encode()))
        await self.server.propose_to(inv_id, c.End(inv_id, act.epoch))


async def register_manifest(server: Server, doc: dict[str, Any] | None = None,
                            uri: str = "http://127.0.0.1:9/") -> str:
    dep_id = str(DeploymentId.new())
    manifest = parse_manifest(json.loads(json.dumps(doc or MANIFEST)))
    assert server.meta is not None
    await server.meta.propose(c.RegisterDeployment(dep_id, uri, to_json(manifest)))
    return dep_id


@asynccontextmanager
async def running_server(tmp_path: Path, *, fake_invoker: bool = True,
                         **config: Any) -> AsyncIterator[tuple[Server, FakeInvoker]]:
    cfg = ServerConfig(data_dir=tmp_path / "data", partitions=4, ingress_bind="127.0.0.1:0",
                       admin_bind="127.0.0.1:0", **config)
    server = build(cfg, AppConfig(pgwire_bind=None)).server  # with /query and /traces
    await server.start()
    fake = FakeInvoker(server)
    if fake_invoker:
        server.attempt_handler = fake
    try:
        yield server, fake
    finally:
        await server.stop()


def ingress_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.ingress_port}"


def admin_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.admin_port}"
