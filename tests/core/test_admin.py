"""The admin HTTP API on a real Server (tmp data dir, ephemeral port).

Deployment registration runs discovery against the official restate-sdk services under
hypercorn; invocation commands run against a crafted deployment whose attempts go to a
FakeInvoker, so every invocation state can be reached without a service endpoint. Expected
shapes and texts are restate-server 1.7.12's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rstq.core import admin as ad
from rstq.core import commands as c
from rstq.core.discovery import HandlerDef, InputSpec, OutputSpec
from rstq.core.model import BACKING_OFF, COMPLETED, INVOKED, PAUSED, Invocation
from rstq.core.partitioning import partition_key_for
from rstq.core.server import Server

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_http import (
    FakeInvoker,
    admin_url,
    ingress_url,
    register_manifest,
    running_server,
)

SDK_APP = "tests.support.apps.sdk_basic_services:app"
NEVER = "inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB"

Env = tuple[Server, FakeInvoker, httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture(scope="module")
def sdk() -> Iterator[HypercornProcess]:
    with HypercornProcess(SDK_APP) as hc:
        yield hc


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running_server(tmp_path) as (server, fake):
        async with httpx.AsyncClient(base_url=admin_url(server), timeout=30) as admin, \
                httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as ingress:
            yield server, fake, admin, ingress


def inv(server: Server, inv_id: str) -> Invocation:
    found = server.partition_for_id(inv_id).state.invocations.get(inv_id)
    assert found is not None
    return found


def meta_error(r: httpx.Response) -> tuple[int, str]:
    body = r.json()
    assert body["restate_code"] is None
    return r.status_code, body["message"]


# --- health, version, auth -----------------------------------------------------------------------


async def test_health_and_version(env: Env) -> None:
    server, _, admin, _ = env
    r = await admin.get("/health")
    assert r.status_code == 200 and r.content == b""
    v = (await admin.get("/version")).json()
    assert v["version"] == "rstq 0.1.0"
    assert (v["min_admin_api_version"], v["max_admin_api_version"]) == (2, 4)
    assert v["features"] == {"protocol_v7": False}
    assert v["ingress_endpoint"] == f"http://127.0.0.1:{server.ingress_port}/"
    r = await admin.get("/nope")
    assert r.status_code == 404 and r.content == b""


async def test_bearer_token(tmp_path: Path) -> None:
    async with running_server(tmp_path, extra={"admin_token": "s3cret"}) as (server, _):
        async with httpx.AsyncClient(base_url=admin_url(server)) as admin:
            assert (await admin.get("/health")).status_code == 200  # open, for probes
            denied = await admin.get("/services")
            assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
            wrong = await admin.get("/services", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await admin.get("/services", headers={"authorization": "Bearer s3cret"})
            assert ok.status_code == 200 and ok.json() == {"services": []}
            assert (await admin.get("/v4/health")).status_code == 200
            assert (await admin.get("/v4/services")).status_code == 401


async def test_admin_api_version_prefixes(env: Env) -> None:
    """Every route answers under /v2 … /v4 as unprefixed (restate-server 1.7.12, the CLI uses
    /v4/...); /v1 is refused in plain text, /v5 is an unknown route."""
    _, _, admin, _ = env
    for n in (2, 3, 4):
        assert (await admin.get(f"/v{n}/health")).status_code == 200
        assert (await admin.get(f"/v{n}/version")).json() == (await admin.get("/version")).json()
        assert (await admin.get(f"/v{n}/deployments")).json() == {"deployments": []}
        assert (await admin.get(f"/v{n}/services")).json() == {"services": []}
        assert meta_error(await admin.get(f"/v{n}/services/Nope")) == (
            404, "The requested service 'Nope' does not exist")
    r = await admin.get("/v1/deployments")
    assert r.status_code == 400 and r.text == (
        "Unsupported Admin API version V1. This server supports versions between V2 and V4.")
    for path in ("/v0/health", "/v5/health", "/v0x/health", "/v4/nope"):
        r = await admin.get(path)
        assert r.status_code == 404 and r.content == b"", path


# --- deployments and services (discovery against the official SDK) -------------------------------

GREETER_GREET = {
    "name": "greet", "public": True, "input_description": "JSON string",
    "output_description": "JSON string", "input_json_schema": {"type": "string"},
    "output_json_schema": {"type": "string"}, "retry_policy": {"max_attempts": None},
}
GREETER = {
    "name": "Greeter", "ty": "Service", "handlers": [GREETER_GREET],
    "documentation": "says hello", "metadata": {"team": "rstq"}, "revision": 1, "public": True,
    "idempotency_retention": "1d", "journal_retention": "1d", "inactivity_timeout": "1m",
    "abort_timeout": "10m", "enable_lazy_state": False,
    "retry_policy": {"initial_interval": "500ms", "exponentiation_factor": 2.0,
                     "max_attempts": 70, "max_interval": "1m", "on_max_attempts": "Pause"},
}
# What restate-server 1.7.12 answered for the same service (the handler-level overrides only).
TUNED_SLOW = {
    "name": "slow", "inactivity_timeout": "5s", "public": False,
    "input_description": "JSON integer", "output_description": "JSON integer",
    "input_json_schema": {"type": "integer"}, "output_json_schema": {"type": "integer"},
    "retry_policy": {"max_attempts": 3, "on_max_attempts": "Pause"},
}


async def test_register_deployment(env: Env, sdk: HypercornProcess) -> None:
    server, _, admin, _ = env
    r = await admin.post("/deployments", json={"uri": sdk.url})
    assert r.status_code == 201, r.text
    body = r.json()
    dep_id = body["id"]
    assert dep_id.startswith("dp_1") and r.headers["location"] == f"deployments/{dep_id}"
    assert (body["min_protocol_version"], body["max_protocol_version"]) == (5, 7)
    services = {s["name"]: s for s in body["services"]}
    assert sorted(services) == ["Counter", "Greeter", "Tuned", "Wf"]
    assert services["Greeter"] == {**GREETER, "deployment_id": dep_id}
    assert list(services["Greeter"]) == list(GREETER)[:5] + ["deployment_id"] + list(GREETER)[5:]
    assert services["Tuned"]["handlers"] == [TUNED_SLOW]
    assert services["Tuned"]["retry_policy"]["on_max_attempts"] == "Kill"
    assert (services["Tuned"]["journal_retention"], services["Tuned"]["public"]) == ("2h", False)
    assert services["Wf"]["workflow_completion_retention"] == "1d"
    assert {h["name"]: h.get("ty") for h in services["Counter"]["handlers"]} == {
        "add": "Exclusive", "get": "Shared", "reset": "Exclusive"}
    dep = server.schema.deployments[dep_id]
    assert dep.uri == sdk.url + "/" and dep.bidi

    # The same endpoint again: unchanged (200, same id); with force: overwritten, new revision.
    again = await admin.post("/deployments", json={"uri": sdk.url + "/"})
    assert (again.status_code, again.json()["id"]) == (200, dep_id)
    assert server.schema.services["Greeter"].revision == 1
    forced = await admin.post("/deployments", json={"uri": sdk.url, "force": True})
    assert (forced.status_code, forced.json()["id"]) == (200, dep_id)
    assert server.schema.services["Greeter"].revision == 2

    listed = (await admin.get("/deployments")).json()["deployments"]
    assert [d["id"] for d in listed] == [dep_id]
    assert listed[0]["protocol_type"] == "BidiStream"
    assert listed[0]["http_version"] == "HTTP/2.0"
    assert {"name": "Greeter", "revision": 2} in listed[0]["services"]
    one = (await admin.get(f"/deployments/{dep_id}")).json()
    assert one["uri"] == sdk.url + "/" and one["created_at"].endswith("000000Z")
    assert {s["name"] for s in one["services"]} == {"Counter", "Greeter", "Tuned", "Wf"}


async def test_register_http11_and_dry_run(env: Env, sdk: HypercornProcess) -> None:
    server, _, admin, _ = env
    dry = await admin.post("/deployments", json={"uri": sdk.url, "use_http_11": True,
                                                  "dry_run": True})
    assert dry.status_code == 201 and server.schema.deployments == {}
    r = await admin.post("/deployments", json={"uri": sdk.url, "use_http_11": True})
    assert r.status_code == 201
    dep = server.schema.deployments[r.json()["id"]]
    assert not dep.bidi and dep.use_http_11
    tuned = next(s for s in r.json()["services"] if s["name"] == "Tuned")
    assert tuned["inactivity_timeout"] == "0s"  # not applied in request/response mode
    assert "inactivity_timeout" not in tuned["handlers"][0]


async def test_service_endpoints(env: Env, sdk: HypercornProcess) -> None:
    _, _, admin, _ = env
    dep_id = (await admin.post("/deployments", json={"uri": sdk.url})).json()["id"]
    names = {s["name"] for s in (await admin.get("/services")).json()["services"]}
    assert names == {"Counter", "Greeter", "Tuned", "Wf"}
    assert (await admin.get("/services/Greeter")).json() == {**GREETER, "deployment_id": dep_id}
    assert (await admin.get("/services/Greeter/handlers")).json() == {"handlers": [GREETER_GREET]}
    assert (await admin.get("/services/Greeter/handlers/greet")).json() == GREETER_GREET
    assert meta_error(await admin.get("/services/Nope")) == (
        404, "The requested service 'Nope' does not exist")
    assert meta_error(await admin.get("/services/Greeter/handlers/nope")) == (
        404, "The requested handler 'nope' on service 'Greeter' does not exist")


async def test_delete_deployment(env: Env, sdk: HypercornProcess) -> None:
    server, _, admin, _ = env
    dep_id = (await admin.post("/deployments", json={"uri": sdk.url})).json()["id"]
    r = await admin.delete(f"/deployments/{dep_id}")
    assert r.status_code == 501  # graceful removal: not implemented, as in restate
    r = await admin.delete(f"/deployments/{dep_id}", params={"force": "true"})
    assert r.status_code == 202
    assert server.schema.deployments == {} and server.schema.services == {}
    assert meta_error(await admin.get(f"/deployments/{dep_id}")) == (
        404, f"The requested deployment '{dep_id}' does not exist")
    bad = await admin.get("/deployments/dp_bogus")
    assert bad.status_code == 400 and bad.text == (
        "Invalid URL: Cannot parse `deployment` with value `dp_bogus`: unrecognized codec "
        "version")


@pytest.mark.parametrize(("kw", "status", "text"), [
    ({"json": {"nope": 1}}, 422, "missing field `uri`"),
    ({"content": b"{bad", "headers": {"content-type": "application/json"}}, 400,
     "Failed to parse the request body as JSON"),
    ({"content": b'{"uri": "x"}'}, 415, "Expected request with `Content-Type: application/json`"),
    ({"json": {"uri": "http://127.0.0.1:1", "force": "yes"}}, 422, "force: invalid type"),
])
async def test_register_bad_requests(env: Env, kw: dict[str, Any], status: int,
                                     text: str) -> None:
    _, _, admin, _ = env
    r = await admin.post("/deployments", **kw)
    assert r.status_code == status and text in r.text


async def test_register_unreachable(env: Env) -> None:
    server, _, admin, _ = env
    r = await admin.post("/deployments", json={"uri": "http://127.0.0.1:1"})
    assert r.status_code == 500
    body = r.json()
    assert body["restate_code"] == "META0003" and body["message"].startswith("[META0003]")
    assert body["message"].count("META0003") == 1  # restate 1.7 prints it twice
    assert server.schema.deployments == {}


# --- state ----------------------------------------------------------------------------------------


async def test_modify_state(env: Env) -> None:
    server, _, admin, _ = env
    await register_manifest(server)
    state = server.partition_for_key(partition_key_for("Counter", "k")).state
    state.kv[("Counter", "k")] = {b"old": b"x"}
    r = await admin.post("/services/Counter/state",
                         json={"object_key": "k", "new_state": {"n": [49, 48]}, "version": "v"})
    assert r.status_code == 202
    assert state.kv[("Counter", "k")] == {b"n": b"10"}
    assert meta_error(await admin.post("/services/Greeter/state", json={
        "object_key": "k", "new_state": {}})) == (400, "Cannot modify state for service type "
                                                       "Service")
    assert meta_error(await admin.post("/services/Nope/state", json={
        "object_key": "k", "new_state": {"a": [1]}})) == (
        404, "The requested service 'Nope' does not exist")
    # Clearing a removed service's state is allowed.
    assert (await admin.post("/services/Nope/state", json={
        "object_key": "k", "new_state": {}})).status_code == 202
    r = await admin.post("/services/Counter/state", json={"new_state": {}})
    assert r.status_code == 422 and "missing field `object_key`" in r.text


# --- invocations ----------------------------------------------------------------------------------


async def send(ingress: httpx.AsyncClient, path: str = "/Counter/k/add/send",
               **kw: Any) -> str:
    r = await ingress.post(path, content=b"1", headers={"content-type": "application/json"},
                           **kw)
    assert r.status_code == 202, r.text
    return str(r.json()["invocationId"])


async def test_pause_resume_kill_purge(env: Env) -> None:
    server, _, admin, ingress = env
    await register_manifest(server)
    inv_id = await send(ingress)
    assert inv(server, inv_id).status == INVOKED

    async def op(name: str) -> httpx.Response:
        return await admin.patch(f"/invocations/{inv_id}/{name}")

    assert (await op("pause")).status_code == 202
    assert inv(server, inv_id).status == PAUSED
    assert (await op("pause")).status_code == 200  # already paused: nothing logged
    assert (await op("resume")).status_code == 200
    assert inv(server, inv_id).status == INVOKED
    assert (await op("resume")).status_code == 200  # running: ok, no-op
    assert meta_error(await op("purge")) == (409, f"The invocation '{inv_id}' is not yet "
                                                  "completed.")
    assert (await op("kill")).status_code == 200
    i = inv(server, inv_id)
    assert i.status == COMPLETED and i.output_failure == (409, "killed")
    completed = (409, f"The invocation '{inv_id}' was already completed.")
    assert meta_error(await op("kill")) == completed
    assert meta_error(await op("cancel")) == completed
    assert meta_error(await op("pause")) == (409, f"The invocation '{inv_id}' is not running, "
                                                  "cannot be paused.")
    assert meta_error(await op("resume")) == (409, f"The invocation '{inv_id}' is completed, "
                                                   "cannot be resumed.")
    assert (await op("purge")).status_code == 200
    assert meta_error(await op("purge")) == (404, f"The requested invocation '{inv_id}' does "
                                                  "not exist")
    assert (await op("purge-journal")).status_code == 404  # not supported yet


async def test_cancel(env: Env) -> None:
    server, fake, admin, ingress = env
    await register_manifest(server)
    running = await send(ingress)
    r = await admin.patch(f"/invocations/{running}/cancel")
    assert r.status_code == 202 and r.content == b""  # the cancel signal is appended
    assert inv(server, running).status == INVOKED
    scheduled = await send(ingress, params={"delay": "1h"})
    r = await admin.patch(f"/invocations/{scheduled}/cancel")
    assert r.status_code == 200  # never started: done at once
    assert inv(server, scheduled).output_failure == (409, "cancelled")


async def test_resume_not_started_and_backing_off(env: Env) -> None:
    server, fake, admin, ingress = env
    await register_manifest(server)
    scheduled = await send(ingress, params={"delay": "1h"})
    assert meta_error(await admin.patch(f"/invocations/{scheduled}/resume")) == (
        425, f"The invocation '{scheduled}' is either inboxed or scheduled, cannot be resumed.")
    running = await send(ingress, path="/Counter/other/add/send")
    i = inv(server, running)
    await server.propose_to(running, c.AttemptFailed(
        running, i.epoch, 500, "boom", then="retry", retry_at_ms=server.clock.now_ms() + 3_600_000))
    assert inv(server, running).status == BACKING_OFF
    r = await admin.patch(f"/invocations/{running}/resume")
    assert r.status_code == 200 and inv(server, running).status == INVOKED
    assert fake.started.count(running) == 2


async def test_invocation_id_errors(env: Env) -> None:
    server, _, admin, _ = env
    for raw, reason in [("bogus", "bad format"), ("inv_1bogus", "bad length")]:
        assert meta_error(await admin.patch(f"/invocations/{raw}/cancel")) == (
            400, f"The request field 'invocation_id' is invalid. Reason: {reason}")
    assert meta_error(await admin.patch(f"/invocations/{NEVER}/cancel")) == (
        404, f"The requested invocation '{NEVER}' does not exist")
    assert (await admin.patch(f"/invocations/{NEVER}/frob")).status_code == 404


async def test_deprecated_delete(env: Env) -> None:
    server, _, admin, ingress = env
    await register_manifest(server)
    inv_id = await send(ingress)
    r = await admin.delete(f"/invocations/{inv_id}", params={"mode": "kill"})
    assert r.status_code == 202 and inv(server, inv_id).status == COMPLETED
    r = await admin.delete(f"/invocations/{inv_id}", params={"mode": "Purge"})
    assert r.status_code == 202
    assert server.partition_for_id(inv_id).state.invocations.get(inv_id) is None
    r = await admin.delete(f"/invocations/{NEVER}")  # cancel of nothing: still 202
    assert r.status_code == 202
    r = await admin.delete(f"/invocations/{inv_id}", params={"mode": "bogus"})
    assert r.status_code == 400 and "unknown variant `bogus`" in r.text


def test_descriptions() -> None:
    assert ad.input_description(HandlerDef(name="h")) == "*/*"
    assert ad.input_description(HandlerDef(name="h", input=InputSpec())) == "none"
    titled = InputSpec(content_type="application/json", json_schema='{"title":"Person"}')
    assert ad.input_description(HandlerDef(name="h", input=titled)) == "JSON 'Person'"
    req = InputSpec(required=True, content_type="text/*")
    assert ad.input_description(HandlerDef(name="h", input=req)) == "text/*"
    assert ad.output_description(None) == "application/json"
    assert ad.output_description(OutputSpec()) == "none"
    assert ad.output_description(OutputSpec("text/plain", True)) == "optional text/plain"
