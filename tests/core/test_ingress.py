"""The ingress HTTP API on a real Server (tmp data dir, ephemeral port).

Attempts go to a FakeInvoker (tests.support.harness.rstq_http), so routing, validation, scheduling,
deduplication and the answer formats are tested without a service endpoint; the expected
texts are restate-server 1.7.12's (tests/compat/expected.json and probes of the real server).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rstq.core import ingress as ig
from rstq.core import journal
from rstq.core.actions import StartAttempt
from rstq.core.discovery import HandlerDef, InputSpec, OutputSpec
from rstq.core.ids import idempotent_invocation_id, workflow_invocation_id
from rstq.core.model import COMPLETED, INVOKED, SCHEDULED, Invocation
from rstq.core.server import Server
from rstq.protocol.ids import InvocationId, awakeable_id

from tests.support.harness.rstq_http import (
    FakeInvoker,
    ingress_url,
    register_manifest,
    running_server,
)

JSON = {"content-type": "application/json"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Server, FakeInvoker, httpx.AsyncClient]]:
    async with running_server(tmp_path, max_body_bytes=1000) as (server, fake):
        await register_manifest(server)
        async with httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as client:
            yield server, fake, client


def inv(server: Server, inv_id: str) -> Invocation:
    found = server.partition_for_id(inv_id).state.invocations.get(inv_id)
    assert found is not None
    return found


def err(r: httpx.Response) -> tuple[int, str, str | None]:
    body = r.json()
    assert r.headers["content-type"] == "application/json"
    assert body["source"] == r.headers["x-restate-error-source"]
    return r.status_code, body["message"], body["source"]


# --- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ms"), [
    ("1s", 1000), ("60ms", 60), ("10m", 600_000), ("1h", 3_600_000), ("PT60S", 60_000),
    ("PT0.05S", 50), ("60 sec", 60_000), ("1h 2m", 3_720_000), ("1.5s", 1500), ("P1D", 86_400_000),
    ("pt1m", 60_000), ("2 days", 172_800_000),
])
def test_parse_duration(text: str, ms: int) -> None:
    assert ig.parse_duration(text) == ms


@pytest.mark.parametrize(("text", "message"), [
    ("garbage", 'failed to parse input in the "friendly" duration format: expected duration to '
                "start with a unit value (a decimal integer) after an optional sign, but no "
                "integer was found"),
    ("1x", "expected to find unit designator suffix (e.g., `years` or `secs`) after parsing "
           "integer"),
    ("-1s", "negative signed durations cannot be converted to an unsigned duration"),
    ("P1Dx", "parsed value 'P1D', but unparsed input \"x\" remains (expected no unparsed input)"),
    ("", "an empty string is not a valid duration"),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        ig.parse_duration(text)
    assert message in str(e.value)


def test_formats() -> None:
    assert [ig.friendly_duration(ms) for ms in (0, 500, 1000, 90_000, 86_400_000, 93_784_005)] \
        == ["0s", "500ms", "1s", "1m 30s", "1d", "1d 2h 3m 4s 5ms"]
    ms = 1_795_619_613_541  # 2026-11-25T15:13:33.541Z
    assert ig.rfc3339_nanos(ms) == "2026-11-25T15:13:33.541000000Z"
    assert ig.rfc3339_auto(ms) == "2026-11-25T15:13:33.541+00:00"
    assert ig.rfc3339_auto(ms - 541) == "2026-11-25T15:13:33+00:00"


@pytest.mark.parametrize(("raw", "reason"), [
    ("bogus", "bad format"), ("", "bad length"), ("inv_1bogus", "bad length"),
    ("dp_bogus", "unrecognized codec version"), ("foo_1abc", "unrecognized resource type: foo"),
    ("sign_1" + "A" * 38, "id doesn't match the expected type"),
    ("inv_1" + "!" * 33, "base62 decode error"), ("inv_1" + "0" * 34, "bad length"),
    ("inv_1" + "Z" * 33, "base62 decode error"),  # the u64 field overflows
])
def test_invocation_id_errors(raw: str, reason: str) -> None:
    assert ig.invocation_id_error(raw) == reason


def test_valid_invocation_id() -> None:
    assert ig.invocation_id_error(str(InvocationId(12345, 678))) is None


def test_input_rules() -> None:
    ig.validate_input(None, None, b"")  # no "input" in the manifest: anything goes
    ig.validate_input(None, "text/plain", b"x")
    json_in = InputSpec(required=False, content_type="application/json", json_schema='{}')
    ig.validate_input(json_in, None, b"")
    ig.validate_input(json_in, "application/json; charset=utf-8", b"1")
    for ctype, body, message in [
        ("text/plain", b"1", "Content-type 'text/plain' does not match 'application/json'"),
        (None, b"1", "Empty content-type"),
        ("application/json", b"", "Empty body not allowed"),
        ("application/json", b"{bad", "the body is not valid JSON: Expecting property name "
                                      "enclosed in double quotes: line 1 column 2 (char 1)"),
        ("application/json", b"\xff", "the body is not valid JSON: 'utf-8' codec can't decode "
                                      "byte 0xff in position 0: invalid start byte"),
    ]:
        with pytest.raises(ig.IngressError) as e:
            ig.validate_input(json_in, ctype, body)
        assert e.value.message == f"input validation error: {message}"
    with pytest.raises(ig.IngressError, match="wasn't with content-type 'Some"):
        ig.validate_input(InputSpec(), "application/json", b"1")  # `{}`: no input at all


def test_failure_body() -> None:
    r = ig.failure_response(500, "boom", {"x-restate-id": "inv"}, "Traceback: ...")
    assert r.status == 500 and r.headers["x-restate-error-source"] == "invocation"
    assert isinstance(r.body, bytes)
    assert r.body == b'{"code":500,"message":"boom","stacktrace":"Traceback: ...",' \
                     b'"source":"invocation"}'


def test_output_content_type() -> None:
    h = HandlerDef(name="h")
    assert ig.output_content_type(h, empty=False) == "application/json"
    assert ig.output_content_type(h, empty=True) is None
    none = HandlerDef(name="h", output=OutputSpec())
    assert ig.output_content_type(none, empty=False) is None
    always = HandlerDef(name="h", output=OutputSpec("text/plain", set_content_type_if_empty=True))
    assert ig.output_content_type(always, empty=True) == "text/plain"


# --- routing and request errors ----------------------------------------------------------------

BAD_SERVICE_PATH = ig.MSG_BAD_SERVICE_PATH


@pytest.mark.parametrize(("method", "path", "kw", "expected"), [
    ("POST", "/Nope/greet", {}, (404, "service 'Nope' not found, make sure to register the "
                                      "service before calling it.", "ingress")),
    ("POST", "/Greeter/nope", {}, (404, "the service 'Greeter' exists, but the handler 'nope' was "
                                        "not found, check that the handler exists in the latest "
                                        "registered service version.", "ingress")),
    ("POST", "/Counter/add", {}, (400, BAD_SERVICE_PATH, "ingress")),
    ("POST", "/Greeter/k/greet", {}, (400, BAD_SERVICE_PATH, "ingress")),
    ("POST", "/Greeter/greet/send/x", {}, (400, BAD_SERVICE_PATH, "ingress")),
    ("GET", "/", {}, (400, "bad path: /", "ingress")),
    ("POST", "/restate", {}, (400, "bad path: /restate", "ingress")),
    ("POST", "/a/b/c/d/e/f/g/h", {}, (400, "bad path: /a/b/c/d/e/f/g/h", "ingress")),
    ("DELETE", "/Greeter/greet", {}, (405, "method not allowed", "ingress")),
    ("PUT", "/Greeter/greet", {}, (405, "method not allowed", "ingress")),
    ("POST", "/Greeter/secret", {}, (400, "the invoked service is not public", "ingress")),
    ("POST", "/Signup/k/run", {"headers": {"idempotency-key": "i"}},
     (400, "cannot use the idempotency key with workflow handlers. The handler invocation will "
           "already be idempotent by the workflow key itself.", "ingress")),
    ("POST", "/Counter/k/add", {"params": {"delay": "1s"}, "content": b"1", "headers": JSON},
     (400, "cannot use the delay query parameter with calls. The delay is supported only with "
           "sends", "ingress")),
    ("POST", "/Counter/%ff/add/send", {"content": b"1", "headers": JSON},
     (400, "bad path, cannot decode key: FromUtf8Error { bytes: [255], error: Utf8Error { "
           "valid_up_to: 0, error_len: Some(1) } }", "ingress")),
    ("POST", "/Greeter/greet", {"content": b'"x"', "headers": {"content-type": "text/plain"}},
     (400, "input validation error: Content-type 'text/plain' does not match "
           "'application/json'", "ingress")),
    ("POST", "/Greeter/greet", {"content": b"x" * 1001, "headers": JSON},
     (413, "cannot read body: length limit exceeded", "ingress")),
    ("POST", "/restate/frob", {}, (404, "not found", "ingress")),
    ("POST", "/restate/scope/s/call/Greeter/greet", {},
     (400, "scoped invocations require vqueues to be enabled", "ingress")),
    ("GET", "/restate/awakeables/x", {}, (400, ig.MSG_BAD_AWAKEABLES_PATH, "ingress")),
    ("GET", "/restate/awakeables/x/resolve", {}, (405, "method not allowed", "ingress")),
    ("POST", "/restate/awakeables/x/frob", {}, (404, "not found", "ingress")),
    ("GET", "/restate/invocation/Counter/kk/add", {}, (400, ig.MSG_BAD_INVOCATION_PATH,
                                                       "ingress")),
    ("GET", "/restate/invocation/bogus/output", {},
     (400, "bad invocation id 'bogus': bad format", "ingress")),
    ("GET", "/restate/invocation/Nope/k/h/attach", {},
     (404, "service 'Nope' not found, make sure to register the service before calling it.",
      "ingress")),
    ("GET", "/restate/workflow/Signup/k", {}, (400, ig.MSG_BAD_WORKFLOW_PATH, "ingress")),
    ("POST", "/restate/health", {}, (405, "method not allowed", "ingress")),
    ("POST", "/restate/invocation/inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB/attach", {},
     (405, "method not allowed", "ingress")),
])
async def test_request_errors(env: tuple[Server, FakeInvoker, httpx.AsyncClient], method: str,
                              path: str, kw: dict[str, Any],
                              expected: tuple[int, str, str]) -> None:
    server, fake, client = env
    r = await client.request(method, path, **kw)
    assert err(r) == expected
    assert "x-restate-id" not in r.headers
    assert fake.started == []  # nothing was invoked


async def test_bad_delay(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, _, client = env
    r = await client.post("/Counter/k/add/send", params={"delay": "garbage"}, content=b"1",
                          headers=JSON)
    status, message, _ = err(r)
    assert status == 400 and message.startswith(
        "bad delay query parameter, must be a ISO8601 duration: failed to parse input in the "
        '"friendly" duration format')


async def test_health_and_cors(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, _, client = env
    r = await client.get("/restate/health", headers={"origin": "http://x.example"})
    assert r.status_code == 200
    assert sorted(r.json()["services"]) == ["Counter", "Greeter", "Signup"]
    assert r.headers["access-control-allow-origin"] == "http://x.example"
    assert r.headers["access-control-allow-credentials"] == "true"
    pre = await client.options("/Greeter/greet", headers={
        "origin": "http://x.example", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-methods"] == "POST"
    assert pre.headers["access-control-allow-headers"] == "content-type"


# --- sends -------------------------------------------------------------------------------------


async def test_send_is_accepted_and_started(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, fake, client = env
    r = await client.post("/Counter/my%20key/add/send", content=b"5",
                          headers={**JSON, "x-test": "hello", "idempotency-expires": "x"},
                          params={"foo": "bar"})
    assert r.status_code == 202
    body = r.json()
    assert body == {"invocationId": r.headers["x-restate-id"], "status": "Accepted"}
    i = inv(server, body["invocationId"])
    assert (i.service, i.key, i.handler, i.service_ty, i.handler_ty) == (
        "Counter", "my key", "add", "virtual_object", "exclusive")
    assert i.status == INVOKED and fake.started == [i.invocation_id]
    assert i.input == b"5"
    assert i.headers[0] == ("x-restate-ingress-path", "/Counter/my%20key/add/send?foo=bar")
    names = [k for k, _ in i.headers]
    assert ("x-test", "hello") in i.headers
    assert "host" not in names and "idempotency-expires" not in names
    dep = server.schema.deployments[server.schema.services["Counter"].deployment_id]
    assert (i.deployment_id, i.protocol_version) == (dep.deployment_id, 6)
    day = 86_400_000
    assert (i.completion_retention_ms, i.journal_retention_ms) == (day, day)


@pytest.mark.parametrize("delay", ["1h", "PT1H", "60m"])
async def test_delayed_send_is_scheduled(env: tuple[Server, FakeInvoker, httpx.AsyncClient],
                                         delay: str) -> None:
    server, fake, client = env
    before = server.clock.now_ms()
    r = await client.post("/Greeter/greet/send", json="x", params={"delay": delay})
    assert r.status_code == 202
    body = r.json()
    i = inv(server, body["invocationId"])
    assert i.status == SCHEDULED and fake.started == []
    assert i.execute_at is not None and 0 <= i.execute_at - before - 3_600_000 < 5000
    assert body["executionTime"] == ig.rfc3339_nanos(i.execute_at)
    assert f"invoke:{i.invocation_id}" in server.partition_for_id(i.invocation_id).state.timers
    assert list(body) == ["invocationId", "executionTime", "status"]


async def test_idempotent_send_is_deduplicated(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, fake, client = env
    hdr = {**JSON, "idempotency-key": "ik1"}
    first = await client.post("/Counter/k/add/send", content=b"1", headers=hdr)
    second = await client.post("/Counter/k/add/send", content=b"2", headers=hdr)
    expected_id = idempotent_invocation_id("Counter", "k", "add", "ik1")
    assert first.json() == {"invocationId": expected_id, "status": "Accepted"}
    assert second.json() == {"invocationId": expected_id, "status": "PreviouslyAccepted"}
    i = inv(server, expected_id)
    assert i.input == b"1" and i.idempotency_key == "ik1" and fake.started == [expected_id]
    assert all(k != "idempotency-key" for k, _ in i.headers)
    day = 86_400_000
    assert (i.completion_retention_ms, i.journal_retention_ms) == (day, day)


async def test_workflow_run_send_once(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, _, client = env
    first = await client.post("/Signup/w1/run/send", json="x")
    again = await client.post("/Signup/w1/run/send", json="y")
    wf_id = workflow_invocation_id("Signup", "w1")
    assert [first.json()["status"], again.json()["status"]] == ["Accepted", "PreviouslyAccepted"]
    assert first.json()["invocationId"] == wf_id
    i = inv(server, wf_id)
    assert (i.completion_retention_ms, i.journal_retention_ms) == (7_200_000, 7_200_000)


async def test_new_verbs(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, _, client = env
    r = await client.post("/restate/send/Counter/k/add", content=b"1", headers=JSON)
    assert r.status_code == 202 and r.json()["status"] == "Accepted"
    out = await client.get(f"/restate/output/{r.json()['invocationId']}")
    assert err(out) == (470, "the invocation exists but has not completed yet", "ingress")


# --- calls, attach, output -----------------------------------------------------------------------


async def test_call_returns_the_output(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, fake, client = env
    fake.output = b'"hello"'
    r = await client.post("/Greeter/greet", json="bob")
    assert r.status_code == 200 and r.content == b'"hello"'
    assert r.headers["content-type"] == "application/json"
    inv_id = r.headers["x-restate-id"]
    assert "idempotency-expires" not in r.headers  # a live answer, not a stored one
    out = await client.get(f"/restate/invocation/{inv_id}/output")
    assert out.status_code == 200 and out.content == b'"hello"'
    i = inv(server, inv_id)
    assert i.completed_at is not None
    assert out.headers["idempotency-expires"] == ig.rfc3339_auto(i.completed_at + 86_400_000)
    att = await client.get(f"/restate/invocation/{inv_id}/attach")
    assert att.status_code == 200 and att.headers["x-restate-id"] == inv_id


async def test_empty_output_has_no_content_type(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, fake, client = env
    fake.output = b""
    r = await client.post("/Greeter/raw")
    assert r.status_code == 200 and r.content == b"" and "content-type" not in r.headers


async def test_terminal_failure(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, fake, client = env
    fake.output = (409, "nope, conflict")
    r = await client.post("/Greeter/greet", json="x")
    assert r.json() == {"code": 409, "message": "nope, conflict", "source": "invocation"}
    assert r.status_code == 409 and r.headers["x-restate-error-source"] == "invocation"
    assert r.headers["x-restate-id"].startswith("inv_1")
    fake.output = (1234, "odd code")
    r = await client.post("/Greeter/greet", json="x")
    assert r.status_code == 500 and r.json()["code"] == 1234


async def test_idempotent_call_answers_from_state(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, fake, client = env
    fake.output = b"1"
    hdr = {**JSON, "idempotency-key": "same"}
    first = await client.post("/Counter/k/add", content=b"1", headers=hdr)
    second = await client.post("/Counter/k/add", content=b"100", headers=hdr)
    assert first.content == second.content == b"1"
    assert first.headers["x-restate-id"] == second.headers["x-restate-id"]
    assert "idempotency-expires" not in first.headers
    assert "idempotency-expires" in second.headers
    assert len(fake.started) == 1
    by_key = await client.get("/restate/invocation/Counter/k/add/same/output")
    assert by_key.content == b"1"
    unknown = await client.get("/restate/invocation/Counter/k/add/other/output")
    assert err(unknown) == (404, "invocation not found", "ingress")


async def test_second_workflow_run_call_fails(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, fake, client = env
    fake.output = b'"done"'
    first = await client.post("/Signup/w/run", json="x")
    assert first.status_code == 200
    again = await client.post("/Signup/w/run", json="x")
    assert err(again) == (409, "the workflow method was already invoked", "invocation")
    assert again.headers["x-restate-id"] == first.headers["x-restate-id"]
    out = await client.get("/restate/workflow/Signup/w/output")
    assert out.content == b'"done"' and "idempotency-expires" in out.headers


async def test_attach_waits_for_completion(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    server, fake, client = env
    sent = await client.post("/Greeter/greet/send", json="x")
    inv_id = sent.json()["invocationId"]
    out = await client.get(f"/restate/invocation/{inv_id}/output")
    assert err(out) == (470, "the invocation exists but has not completed yet", "ingress")
    assert out.reason_phrase == "Not Ready"
    attach = asyncio.ensure_future(client.get(f"/restate/invocation/{inv_id}/attach"))
    await asyncio.sleep(0.1)
    assert not attach.done()
    await fake.finish(StartAttempt(inv_id, inv(server, inv_id).epoch), b'"late"')
    r = await asyncio.wait_for(attach, 5)
    assert r.status_code == 200 and r.content == b'"late"'
    assert inv(server, inv_id).status == COMPLETED
    assert server._waiters.get(inv_id) is None  # no leaked waiter


async def test_unknown_invocation_attach_and_output(
        env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, _, client = env
    never = "inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB"
    r = await client.get(f"/restate/invocation/{never}/attach")
    assert err(r) == (404, "not found", "invocation") and r.headers["x-restate-id"] == never
    r = await client.get(f"/restate/invocation/{never}/output")
    assert err(r) == (404, "invocation not found", "ingress")
    r = await client.get("/restate/workflow/Signup/never/output")
    assert err(r) == (404, "invocation not found", "ingress")


# --- awakeables ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "action"), [("awakeables", "resolve"), ("a", "reject")])
async def test_awakeable_completion(env: tuple[Server, FakeInvoker, httpx.AsyncClient],
                                    prefix: str, action: str) -> None:
    server, _, client = env
    sent = await client.post("/Greeter/greet/send", json="x")
    inv_id = sent.json()["invocationId"]
    aw = awakeable_id(InvocationId.parse(inv_id), 17)
    r = await client.post(f"/restate/{prefix}/{aw}/{action}", content=b"go away")
    assert r.status_code == 202 and r.content == b"" and "content-type" not in r.headers
    last = inv(server, inv_id).journal[-1]
    assert last.entry_type == journal.SIGNAL
    msg = journal.decode(last.entry_type, last.raw)
    assert msg.idx == 17
    if action == "resolve":
        assert msg.value.content == b"go away"
    else:
        assert (msg.failure.code, msg.failure.message) == (500, "go away")


async def test_awakeable_bad_ids(env: tuple[Server, FakeInvoker, httpx.AsyncClient]) -> None:
    _, _, client = env
    never = "inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB"
    for raw, reason in [("sign_1bogus", "id doesn't match the expected type"),
                        (never, "id doesn't match the expected type"),
                        ("garbage", "bad format")]:
        r = await client.post(f"/restate/awakeables/{raw}/resolve", content=b"x")
        assert err(r) == (400, f"bad awakeable id '{raw}': {reason}", "ingress")
    # A well-formed id of an unknown invocation is accepted, as by restate.
    unknown = awakeable_id(InvocationId.parse(never), 1)
    r = await client.post(f"/restate/awakeables/{unknown}/resolve", content=b"x")
    assert r.status_code == 202
