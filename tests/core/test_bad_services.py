"""Bad input: misbehaving service endpoints, and bad admin / ingress requests.

A fake endpoint (tests/support/apps/bad_endpoint.py) answers discovery correctly but breaks the
service protocol per handler: garbage bytes, truncated frames, unknown control types, a
notification sent by the SDK, frames after End, HTTP 5xx, a wrong content-type, a stream that
closes without End, a handler that hangs (small abort/inactivity timeouts in its manifest). A
real restate-sdk handler whose code changes between attempts makes the SDK report a journal
mismatch (570). Each broken invocation must retry with backoff, its last failure recorded with a
clear message (or fail for good, with the error recorded, once its retry policy gives up), and
the server must keep serving: a healthy call goes through afterwards.

The admin and ingress cases complement tests/core/test_admin.py and test_ingress.py: malformed
or oversized requests get a clear 4xx, never a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rstq.core.model import BACKING_OFF, COMPLETED, INVOKED, Invocation
from rstq.core.server import Server

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_http import admin_url, ingress_url, running_server

pytestmark = pytest.mark.timeout(60)

APP = "tests.support.apps.bad_endpoint:app"
PROTOCOL_VIOLATION = 571
Env = tuple[Server, httpx.AsyncClient, httpx.AsyncClient]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[HypercornProcess]:
    with HypercornProcess(APP) as hc:
        yield hc


@pytest.fixture
async def env(tmp_path: Path, endpoint: HypercornProcess) -> AsyncIterator[Env]:
    async with running_server(tmp_path, fake_invoker=False) as (server, _):
        async with httpx.AsyncClient(base_url=admin_url(server), timeout=30) as admin, \
                httpx.AsyncClient(base_url=ingress_url(server), timeout=30) as ingress:
            for path, http11 in (("/rr", True), ("/h2", False), ("/sdk", False)):
                r = await admin.post("/deployments", json={"uri": endpoint.url + path,
                                                           "use_http_11": http11})
                assert r.status_code == 201, r.text
            yield server, admin, ingress


def inv(server: Server, inv_id: str) -> Invocation | None:
    return server.partition_for_id(inv_id).state.invocations.get(inv_id)


async def wait_for(what: str, cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def send(ingress: httpx.AsyncClient, target: str, body: bytes | None = None) -> str:
    headers = {"content-type": "application/json"} if body is not None else {}
    r = await ingress.post(f"/{target}/send", content=body, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["invocationId"])


async def assert_healthy(ingress: httpx.AsyncClient, service: str = "BadRR") -> None:
    for svc in (service, "Drift"):
        r = await ingress.post(f"/{svc}/ok")
        assert (r.status_code, r.json()) == (200, "ok"), r.text


async def assert_retrying(env: Env, target: str, code: int, text: str,
                          body: bytes | None = None) -> Invocation:
    """The invocation fails, backs off and retries (>= 2 failed attempts), the last failure
    recorded with ``code`` and a message containing ``text``; then it is killed (clean-up)."""
    server, admin, ingress = env
    inv_id = await send(ingress, target, body)

    def retried() -> Invocation | None:
        i = inv(server, inv_id)
        return i if i is not None and i.total_retries >= 2 and i.last_failure else None

    i = await wait_for(f"{target} to fail twice", retried)
    assert i.status in (BACKING_OFF, INVOKED), i.status
    assert i.last_failure_code == code, (i.last_failure_code, i.last_failure)
    assert text in (i.last_failure or ""), i.last_failure
    assert i.next_retry_at is not None or i.status == INVOKED
    await wait_for(f"{target} to back off", lambda: (x := inv(server, inv_id)) is not None
                   and x.status == BACKING_OFF and x.next_retry_at is not None)
    r = await admin.patch(f"/invocations/{inv_id}/kill")
    assert r.status_code in (200, 202), r.text
    await wait_for(f"{target} to be killed",
                   lambda: (x := inv(server, inv_id)) is None or x.status == COMPLETED)
    return i


CASES: list[tuple[str, int, str]] = [
    ("garbage", PROTOCOL_VIOLATION, "bad frames"),
    ("truncated", PROTOCOL_VIOLATION, "bad frames"),
    ("unknown_control", PROTOCOL_VIOLATION, "unknown control message type 0x00ff"),
    ("notification", PROTOCOL_VIOLATION, "unexpected message type 0x800c"),
    ("status_500", 500, "service endpoint answered HTTP 500: internal boom"),
    ("status_502", 502, "service endpoint answered HTTP 502: bad gateway"),
    ("status_503", 503, "service endpoint answered HTTP 503: unavailable"),
    ("wrong_ctype", PROTOCOL_VIOLATION, "content-type 'application/json'"),
    ("no_end", 500, "closed the stream without End"),
    ("hang", 500, "abort timeout"),
    ("hang_head", 500, "abort timeout"),
]


@pytest.mark.parametrize("service", ["BadRR", "BadH2"])
@pytest.mark.parametrize(("handler", "code", "text"), CASES)
async def test_misbehaving_endpoint_retries(env: Env, service: str, handler: str, code: int,
                                            text: str) -> None:
    await assert_retrying(env, f"{service}/{handler}", code, text)
    await assert_healthy(env[2], service)


@pytest.mark.parametrize("service", ["BadRR", "BadH2"])
async def test_frames_after_end_are_ignored(env: Env, service: str) -> None:
    """Bytes after End break the protocol, but the outcome was already durable at End: the
    invocation completes with it; the trailing frames are never read."""
    r = await env[2].post(f"/{service}/after_end")
    assert (r.status_code, r.json()) == (200, "ok")
    await assert_healthy(env[2], service)


@pytest.mark.parametrize("service", ["BadRR", "BadH2"])
async def test_retry_policy_gives_up_with_the_error(env: Env, service: str) -> None:
    """retryPolicyMaxAttempts=2, onMaxAttempts=KILL: the invocation fails with the last error."""
    _, _, ingress = env
    r = await ingress.post(f"/{service}/give_up")
    assert r.status_code == 503, r.text
    assert r.json()["message"] == "service endpoint answered HTTP 503: still unavailable"
    await assert_healthy(ingress, service)


async def test_journal_mismatch_from_the_sdk(env: Env, tmp_path: Path) -> None:
    """The code changed between attempts: the SDK answers ErrorMessage 570 on replay."""
    flag = tmp_path / "drift.flag"
    await assert_retrying(env, "Drift/change", 570,
                          "Found a mismatch between the code paths taken during the previous "
                          "execution and the paths taken during this execution",
                          body=f'"{flag}"'.encode())
    assert flag.exists()
    await assert_healthy(env[2])


# --- admin and ingress: bad requests ----------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "kw", "status"), [
    ("POST", "/deployments", {"content": b"[1, 2", "headers": {"content-type":
                                                                "application/json"}}, 400),
    ("POST", "/deployments", {"json": ["not", "an", "object"]}, 422),
    # restate-server 1.7.12 answers these two the same way: 500 META0003, and 202.
    ("POST", "/deployments", {"json": {"uri": "ftp://x"}}, 500),
    ("POST", "/deployments", {"content": b"\xff\xfe", "headers": {"content-type":
                                                                   "application/json"}}, 400),
    ("POST", "/services/BadRR/state", {"content": b"{", "headers": {"content-type":
                                                                     "application/json"}}, 400),
    ("POST", "/services/Nope/state", {"json": {"object_key": "k", "new_state": {}}}, 202),
    ("GET", "/nope", {}, 404),
    ("GET", "/deployments/dp_bogus", {}, 400),
    ("PATCH", "/invocations/inv_1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz/kill", {}, 400),
    ("PATCH", "/invocations/%00%ff/kill", {}, 400),
    ("DELETE", "/invocations/not-an-id", {}, 400),
])
async def test_admin_bad_requests(env: Env, method: str, path: str, kw: dict[str, Any],
                                  status: int) -> None:
    _, admin, ingress = env
    r = await admin.request(method, path, **kw)
    assert r.status_code == status, (r.status_code, r.text)
    await assert_healthy(ingress)


@pytest.mark.parametrize(("method", "path", "kw"), [
    ("POST", "/restate/awakeables/sign_1AAAA/resolve", {"json": 1}),
    ("POST", "/restate/awakeables/prom_1" + "A" * 38 + "/resolve", {"json": 1}),
    ("POST", "/restate/awakeables/sign_1" + "!" * 38 + "/reject", {"content": b"x"}),
    ("POST", "/restate/a/%ff%fe/resolve", {"json": 1}),
    ("GET", "/restate/invocation/inv_1" + "0" * 33 + "/attach", {}),
    ("GET", "/restate/invocation/inv_%ff/output", {}),
    ("POST", "/BadRR/ok/send", {"params": {"delay": "forever"}}),
])
async def test_ingress_bad_requests(env: Env, method: str, path: str, kw: dict[str, Any]) -> None:
    _, _, ingress = env
    r = await ingress.request(method, path, **kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["message"], r.text
    await assert_healthy(ingress)


async def test_large_request_heads(env: Env) -> None:
    """A 100 KB header is accepted, as restate-server accepts it (hyper buffers ~400 KiB of
    request head; aiohttp's default of 8 KiB per line used to turn it into a 400)."""
    _, admin, ingress = env
    big = {"x-big": "a" * 100_000}
    r = await admin.post("/deployments", headers=big)
    assert (r.status_code, r.text) == (415, "Expected request with `Content-Type: "
                                            "application/json`")
    r = await ingress.post("/BadRR/ok", headers=big)
    assert (r.status_code, r.json()) == (200, "ok")


@pytest.mark.parametrize("which", ["admin", "ingress"])
@pytest.mark.parametrize("kind", ["huge_header", "many_headers", "huge_path"])
async def test_oversized_request_heads(env: Env, which: str, kind: str) -> None:
    """Beyond the limits: a 4xx (restate-server answers 431), the server keeps serving."""
    _, admin, ingress = env
    client = admin if which == "admin" else ingress
    path = "/deployments" if which == "admin" else "/BadRR/ok"
    if kind == "huge_header":
        r = await client.post(path, headers={"x-big": "a" * 500_000})
    elif kind == "many_headers":
        r = await client.post(path, headers={f"x-h{i}": "v" for i in range(500)})
    else:
        r = await client.post(path + "/" + "p" * 60_000)
    assert 400 <= r.status_code < 500, r.status_code
    await assert_healthy(ingress)
