"""Differential scenarios: client-visible behaviour that must be identical across servers.

Each scenario is ``async def scenario_x(h: Harness) -> dict`` and returns OBSERVATIONS: status
codes, JSON-normalized bodies, the headers that matter, and state read back through shared
handlers. :func:`run_scenario` normalizes them (ids, timestamps, the run namespace become
placeholders), so the result can be compared with ``tests/compat/expected.json`` whichever
server (real restate-server or rstq) and deployment mode (BIDI / REQUEST_RESPONSE) produced it.

Rules for scenarios:
* only observe what is deterministic; never sleep blind, poll with :meth:`Harness.poll`;
* every key (object key, workflow key, idempotency key) goes through :meth:`Harness.key`, so
  several runs can share one server;
* leave nothing running when returning (await or cancel everything started).

Services: tests/support/apps/compat_services.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

INV_ID_RE = re.compile(r"inv_1[0-9a-zA-Z]{33}")
AWK_ID_RE = re.compile(r"sign_1[0-9A-Za-z_-]{38}")
DP_ID_RE = re.compile(r"dp_1[0-9a-zA-Z]{20,26}")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
EMPTY = "<empty>"
# Headers observed on request (not by default: their presence can depend on timing, e.g.
# idempotency-expires is only sent when the answer comes from a stored completed result).
OPTIONAL_HEADERS = ("idempotency-expires",)

DEFAULT_TIMEOUT = 15.0


class ScenarioTimeout(AssertionError):
    pass


class Normalizer:
    """Replaces volatile values by placeholders numbered in order of first appearance, so that
    equality structure (same id twice) survives normalization."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.seen: dict[str, dict[str, int]] = {}

    def _ph(self, kind: str, value: str) -> str:
        table = self.seen.setdefault(kind, {})
        n = table.setdefault(value, len(table) + 1)
        return f"<{kind}:{n}>"

    def text(self, s: str) -> str:
        s = INV_ID_RE.sub(lambda m: self._ph("inv", m.group(0)), s)
        s = AWK_ID_RE.sub(lambda m: self._ph("awk", m.group(0)), s)
        s = DP_ID_RE.sub(lambda m: self._ph("dp", m.group(0)), s)
        s = TS_RE.sub("<ts>", s)
        if self.namespace:
            s = s.replace(self.namespace, "<ns>")
        return s

    def __call__(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if k == "x_restate_id" and isinstance(x, str) and not INV_ID_RE.fullmatch(x):
                    out[k] = f"<malformed x-restate-id: {x}>"
                elif k == "stacktrace" and isinstance(x, str):
                    out[k] = "<stacktrace>"  # SDK-side traceback with absolute paths
                else:
                    out[self.text(str(k))] = self(x)
            return out
        if isinstance(v, (list, tuple)):
            return [self(x) for x in v]
        return v


def parse_body(resp: httpx.Response) -> Any:
    if not resp.content:
        return EMPTY
    try:
        return json.loads(resp.content)
    except ValueError:
        return {"<raw>": resp.text}


class Harness:
    """What a scenario gets: an ingress/admin HTTP client plus helpers.

    ``client`` is any ``httpx.AsyncClient`` (no base_url needed), preferably from
    :meth:`new_client`; ``namespace`` makes keys unique per run.
    """

    @staticmethod
    def new_client() -> httpx.AsyncClient:
        """A client without connection reuse: restate-server's ingress may close a keep-alive
        connection right after an early error response (e.g. 404 without reading the body),
        and reusing it races ("Server disconnected without sending a response")."""
        return httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))

    def __init__(self, client: httpx.AsyncClient, ingress_url: str, admin_url: str,
                 namespace: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.client = client
        self.ingress_url = ingress_url.rstrip("/")
        self.admin_url = admin_url.rstrip("/")
        self.namespace = namespace
        self.timeout = timeout

    def key(self, name: str) -> str:
        return f"{self.namespace}-{name}"

    async def ingress(self, method: str, path: str, body: Any = ..., *,
                      content: bytes | None = None, headers: dict[str, str] | None = None,
                      params: dict[str, str] | None = None,
                      timeout: float | None = None) -> httpx.Response:
        """Request against the ingress. ``body`` (any JSON value, including None) is sent as
        JSON; omit it (and ``content``) to send no body and no content-type."""
        kw: dict[str, Any] = {"headers": headers, "params": params,
                              "timeout": timeout or self.timeout}
        if content is not None:
            kw["content"] = content
        elif body is not ...:
            kw["content"] = json.dumps(body).encode()
            kw["headers"] = {"content-type": "application/json", **(headers or {})}
        return await self.client.request(method, self.ingress_url + path, **kw)

    async def admin(self, method: str, path: str, body: Any = ...) -> httpx.Response:
        kw: dict[str, Any] = {"timeout": self.timeout}
        if body is not ...:
            kw["json"] = body
        return await self.client.request(method, self.admin_url + path, **kw)

    @staticmethod
    def obs(resp: httpx.Response, *headers: str) -> dict[str, Any]:
        """Observation of one response. Ids stay raw here; run_scenario normalizes them."""
        o: dict[str, Any] = {
            "status": resp.status_code,
            "content_type": resp.headers.get("content-type"),
            "body": parse_body(resp),
            "x_restate_id": resp.headers.get("x-restate-id"),
            "error_source": resp.headers.get("x-restate-error-source"),
        }
        for h in headers:
            v = resp.headers.get(h)
            o[h] = None if v is None else ("<present>" if h in OPTIONAL_HEADERS else v)
        return o

    async def poll(self, fn: Callable[[], Awaitable[T]], until: Callable[[T], bool], *,
                   what: str, timeout: float | None = None) -> T:
        """Call ``fn`` until ``until(result)``; bounded by ``timeout`` (no blind sleeps)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        delay = 0.01
        while True:
            value = await fn()
            if until(value):
                return value
            if time.monotonic() > deadline:
                raise ScenarioTimeout(f"timed out waiting for {what}; last value: {value!r}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    async def poll_json(self, path: str, until: Callable[[Any], bool], *, what: str) -> Any:
        async def get() -> Any:
            r = await self.ingress("GET", path)
            return parse_body(r) if r.status_code == 200 else ("<status>", r.status_code)

        return await self.poll(get, until, what=what)

    async def publish_wait(self, mailbox_key: str, *, what: str) -> str:
        """Wait until Mailbox/<key> holds a value (published by a running handler)."""
        return str(await self.poll_json(f"/Mailbox/{mailbox_key}/read",
                                        lambda v: isinstance(v, str) and v != "", what=what))


Scenario = Callable[[Harness], Awaitable[dict[str, Any]]]


def invocation_id(resp: httpx.Response) -> str:
    body = resp.json()
    iid = body.get("invocationId") if isinstance(body, dict) else None
    if not isinstance(iid, str):
        raise AssertionError(f"no invocationId in {resp.status_code} {resp.text!r}")
    return iid


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


async def scenario_greeter_basic(h: Harness) -> dict[str, Any]:
    return {
        "post_json": h.obs(await h.ingress("POST", "/Greeter/greet", "bob")),
        "get_no_body": h.obs(await h.ingress("GET", "/Greeter/greet")),
        "post_no_body": h.obs(await h.ingress("POST", "/Greeter/greet")),
        "no_input_handler": h.obs(await h.ingress("POST", "/Greeter/no_input")),
        "no_input_handler_with_body": h.obs(await h.ingress("POST", "/Greeter/no_input", "x")),
        "run_steps": h.obs(await h.ingress("POST", "/Greeter/steps", "abc")),
        "null_output": h.obs(await h.ingress("POST", f"/Counter/{h.key('n')}/reset")),
    }


async def scenario_counter_state(h: Harness) -> dict[str, Any]:
    k = h.key("counter")
    o: dict[str, Any] = {}
    o["get_fresh"] = h.obs(await h.ingress("GET", f"/Counter/{k}/get"))
    o["keys_fresh"] = h.obs(await h.ingress("GET", f"/Counter/{k}/keys"))
    o["add_1"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add", 1))
    o["add_2"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add", 2))
    o["get"] = h.obs(await h.ingress("GET", f"/Counter/{k}/get"))
    o["tag"] = h.obs(await h.ingress("POST", f"/Counter/{k}/tag", "blue"))
    o["keys_tagged"] = h.obs(await h.ingress("GET", f"/Counter/{k}/keys"))
    o["untag"] = h.obs(await h.ingress("POST", f"/Counter/{k}/untag"))
    o["keys_untagged"] = h.obs(await h.ingress("GET", f"/Counter/{k}/keys"))
    o["tag_again"] = h.obs(await h.ingress("POST", f"/Counter/{k}/tag", "red"))
    o["reset"] = h.obs(await h.ingress("POST", f"/Counter/{k}/reset"))
    o["get_after_reset"] = h.obs(await h.ingress("GET", f"/Counter/{k}/get"))
    o["keys_after_reset"] = h.obs(await h.ingress("GET", f"/Counter/{k}/keys"))
    o["other_key_isolated"] = h.obs(await h.ingress("GET", f"/Counter/{h.key('other')}/get"))
    # Exclusive handlers on one key are serialized: 10 concurrent adds give 10.
    k2 = h.key("concurrent")
    rs = await asyncio.gather(*(h.ingress("POST", f"/Counter/{k2}/add", 1) for _ in range(10)))
    o["concurrent_statuses"] = sorted(r.status_code for r in rs)
    o["concurrent_results"] = sorted(r.json() for r in rs)
    o["concurrent_final"] = h.obs(await h.ingress("GET", f"/Counter/{k2}/get"))
    return o


async def scenario_run_retries(h: Harness) -> dict[str, Any]:
    k1, k2, k3, k4 = (h.key(x) for x in ("run-flaky", "run-exhausted", "handler-flaky",
                                         "handler-killed"))
    o: dict[str, Any] = {}
    o["run_flaky"] = h.obs(await h.ingress("POST", "/Greeter/run_flaky", k1))
    o["run_exhausted"] = h.obs(await h.ingress("POST", "/Greeter/run_exhausted", k2))
    o["run_exhausted_attempts"] = (await h.ingress("POST", "/Greeter/attempts", k2)).json()
    o["handler_flaky"] = h.obs(await h.ingress("POST", "/Greeter/flaky_handler", k3))
    o["handler_killed_after_max_attempts"] = h.obs(
        await h.ingress("POST", "/Greeter/always_failing", k4))
    o["handler_killed_attempts"] = (await h.ingress("POST", "/Greeter/attempts", k4)).json()
    return o


async def scenario_terminal_errors(h: Harness) -> dict[str, Any]:
    return {
        "handler_terminal_409": h.obs(await h.ingress("POST", "/Greeter/fail_terminal", None)),
        "run_terminal_422": h.obs(await h.ingress("POST", "/Greeter/run_terminal", None)),
        "run_terminal_caught": h.obs(
            await h.ingress("POST", "/Greeter/run_terminal_caught", None)),
    }


async def scenario_sleep(h: Harness) -> dict[str, Any]:
    t0 = time.monotonic()
    r = await h.ingress("POST", "/Greeter/sleepy", 100)
    elapsed = time.monotonic() - t0
    return {"sleepy_100ms": h.obs(r), "took_at_least_100ms": elapsed >= 0.1}


async def scenario_calls_and_sends(h: Harness) -> dict[str, Any]:
    k = h.key("orchestra")
    t0 = time.monotonic()
    o: dict[str, Any] = {"orchestrate": h.obs(await h.ingress("POST", "/Greeter/orchestrate", k))}
    # The delayed one-way send (+10 after 200 ms) must land eventually, and not before 200 ms.
    await h.poll_json(f"/Counter/{k}/get", lambda v: v == 15, what="delayed send to land")
    o["delayed_send_not_early"] = time.monotonic() - t0 >= 0.2
    o["counter_final"] = h.obs(await h.ingress("GET", f"/Counter/{k}/get"))
    # the one-way tag send was issued before the handler returned: it has landed or will.
    await h.poll_json(f"/Counter/{k}/keys", lambda v: v == ["count", "label"],
                      what="one-way tag send")
    o["keys_final"] = h.obs(await h.ingress("GET", f"/Counter/{k}/keys"))
    return o


async def scenario_delayed_send_ingress(h: Harness) -> dict[str, Any]:
    k = h.key("delayed")
    o: dict[str, Any] = {}
    t0 = time.monotonic()
    r = await h.ingress("POST", f"/Counter/{k}/add/send", 7, params={"delay": "200ms"})
    o["send_with_delay"] = h.obs(r)
    await h.poll_json(f"/Counter/{k}/get", lambda v: v == 7, what="delayed ingress send")
    o["not_early"] = time.monotonic() - t0 >= 0.2
    o["send_iso_delay"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add/send", 1,
                                                params={"delay": "PT0.05S"}))
    await h.poll_json(f"/Counter/{k}/get", lambda v: v == 8, what="ISO delay send")
    o["send_no_delay"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add/send", 1))
    await h.poll_json(f"/Counter/{k}/get", lambda v: v == 9, what="plain send")
    o["delay_on_call_rejected"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add", 1,
                                                        params={"delay": "200ms"}))
    o["bad_delay_rejected"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add/send", 1,
                                                    params={"delay": "garbage"}))
    o["final"] = h.obs(await h.ingress("GET", f"/Counter/{k}/get"))
    return o


async def scenario_awakeable_resolve(h: Harness) -> dict[str, Any]:
    k = h.key("awk-resolve")
    o: dict[str, Any] = {}
    r = await h.ingress("POST", "/Greeter/wait_awakeable/send", k)
    o["send"] = h.obs(r)
    iid = invocation_id(r)
    awk = await h.publish_wait(k, what="awakeable id in Mailbox")
    o["awakeable_id_format_ok"] = AWK_ID_RE.fullmatch(awk) is not None
    o["awakeable_id"] = awk
    o["output_while_running"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/output"))
    o["resolve"] = h.obs(await h.ingress("POST", f"/restate/awakeables/{awk}/resolve", "hi"))
    o["attach"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/attach"))
    o["output_after"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/output"),
                              "idempotency-expires")
    o["attach_after_completion"] = h.obs(
        await h.ingress("GET", f"/restate/invocation/{iid}/attach"), "idempotency-expires")
    o["resolve_again"] = h.obs(await h.ingress("POST", f"/restate/awakeables/{awk}/resolve",
                                               "again"))
    return o


async def scenario_awakeable_reject(h: Harness) -> dict[str, Any]:
    k = h.key("awk-reject")
    r = await h.ingress("POST", "/Greeter/wait_awakeable/send", k)
    iid = invocation_id(r)
    awk = await h.publish_wait(k, what="awakeable id in Mailbox")
    o: dict[str, Any] = {}
    o["reject"] = h.obs(await h.ingress("POST", f"/restate/a/{awk}/reject", content=b"go away",
                                        headers={"content-type": "text/plain"}))
    o["attach"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/attach"))
    return o


async def scenario_awakeable_from_handler(h: Harness) -> dict[str, Any]:
    k = h.key("awk-handler")
    r = await h.ingress("POST", "/Greeter/wait_awakeable/send", k)
    iid = invocation_id(r)
    awk = await h.publish_wait(k, what="awakeable id in Mailbox")
    return {
        "resolve_other": h.obs(await h.ingress("POST", "/Greeter/resolve_other",
                                               {"id": awk, "value": "from a handler"})),
        "attach": h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/attach")),
    }


async def scenario_awakeable_bad_ids(h: Harness) -> dict[str, Any]:
    # Well-formed id of an invocation that never existed.
    ghost = "sign_1" + base64.urlsafe_b64encode(
        bytes(range(1, 25)) + (17).to_bytes(4, "big")).decode().rstrip("=")
    return {
        "garbage": h.obs(await h.ingress("POST", "/restate/awakeables/sign_1bogus/resolve", "x")),
        "wrong_prefix": h.obs(await h.ingress(
            "POST", "/restate/awakeables/inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB/resolve", "x")),
        "unknown_invocation": h.obs(await h.ingress(
            "POST", f"/restate/awakeables/{ghost}/resolve", "x")),
    }


async def scenario_workflow(h: Harness) -> dict[str, Any]:
    k = h.key("wf")
    base = f"/Signup/{k}"
    o: dict[str, Any] = {}
    o["output_before_start"] = h.obs(await h.ingress("GET", f"/restate/workflow/Signup/{k}/output"))
    o["status_before_start"] = h.obs(await h.ingress("GET", f"{base}/status"))
    o["peek_before_start"] = h.obs(await h.ingress("GET", f"{base}/peek"))
    o["run_send"] = h.obs(await h.ingress("POST", f"{base}/run/send", "ann"))
    o["run_send_again"] = h.obs(await h.ingress("POST", f"{base}/run/send", "ann"))
    await h.poll_json(f"{base}/status", lambda v: v == "waiting", what="workflow to wait")
    o["output_while_running"] = h.obs(
        await h.ingress("GET", f"/restate/workflow/Signup/{k}/output"))
    o["peek_while_running"] = h.obs(await h.ingress("GET", f"{base}/peek"))
    o["approve"] = h.obs(await h.ingress("POST", f"{base}/approve", "bob"))
    o["attach"] = h.obs(await h.ingress("GET", f"/restate/workflow/Signup/{k}/attach"))
    o["output"] = h.obs(await h.ingress("GET", f"/restate/workflow/Signup/{k}/output"),
                        "idempotency-expires")
    o["peek_after"] = h.obs(await h.ingress("GET", f"{base}/peek"))
    o["status_after"] = h.obs(await h.ingress("GET", f"{base}/status"))
    o["run_call_after_completion"] = h.obs(await h.ingress("POST", f"{base}/run", "ann2"))
    o["run_send_after_completion"] = h.obs(await h.ingress("POST", f"{base}/run/send", "ann2"))
    o["approve_twice"] = h.obs(await h.ingress("POST", f"{base}/approve", "carl"))
    o["peek_unchanged"] = h.obs(await h.ingress("GET", f"{base}/peek"))
    o["run_attach_path_invalid"] = h.obs(await h.ingress("POST", f"{base}/run/attach", "x"))
    o["idempotency_key_on_run"] = h.obs(await h.ingress(
        "POST", f"/Signup/{h.key('wf-idem')}/run", "x", headers={"idempotency-key": "i"}))
    return o


async def scenario_workflow_blocking_call(h: Harness) -> dict[str, Any]:
    k = h.key("wf-call")
    call = asyncio.ensure_future(h.ingress("POST", f"/Signup/{k}/run", "fay"))
    try:
        await h.poll_json(f"/Signup/{k}/status", lambda v: v == "waiting", what="wf waiting")
        approve = h.obs(await h.ingress("POST", f"/Signup/{k}/approve", "eve"))
        result = h.obs(await asyncio.wait_for(call, h.timeout))
    finally:
        call.cancel()
    return {"approve": approve, "run_call": result}


async def scenario_workflow_reject(h: Harness) -> dict[str, Any]:
    k = h.key("wf-deny")
    o: dict[str, Any] = {"run_send": h.obs(await h.ingress("POST", f"/Signup/{k}/run/send", "dan"))}
    await h.poll_json(f"/Signup/{k}/status", lambda v: v == "waiting", what="wf waiting")
    o["deny"] = h.obs(await h.ingress("POST", f"/Signup/{k}/deny", "no way"))
    o["attach"] = h.obs(await h.ingress("GET", f"/restate/workflow/Signup/{k}/attach"))
    o["peek"] = h.obs(await h.ingress("GET", f"/Signup/{k}/peek"))
    o["status"] = h.obs(await h.ingress("GET", f"/Signup/{k}/status"))
    return o


async def scenario_cancel(h: Harness) -> dict[str, Any]:
    k = h.key("cancel")
    o: dict[str, Any] = {}
    r = await h.ingress("POST", "/Greeter/long_sleep/send", k)
    o["send"] = h.obs(r)
    iid = invocation_id(r)
    await h.publish_wait(k, what="long_sleep to start")
    o["output_while_sleeping"] = h.obs(await h.ingress("GET",
                                                       f"/restate/invocation/{iid}/output"))
    cancel = await h.admin("PATCH", f"/invocations/{iid}/cancel")
    o["cancel"] = {"status": cancel.status_code, "body": parse_body(cancel)}
    o["attach"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/attach"))
    o["output"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/output"))
    again = await h.admin("PATCH", f"/invocations/{iid}/cancel")
    o["cancel_completed"] = {"status": again.status_code, "body": parse_body(again)}
    return o


async def scenario_idempotency(h: Harness) -> dict[str, Any]:
    k = h.key("idem")
    ik = h.key("ik")
    o: dict[str, Any] = {}
    hdr = {"idempotency-key": ik}
    o["call_1"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add", 1, headers=hdr),
                        "idempotency-expires")
    o["call_2_same_key"] = h.obs(await h.ingress("POST", f"/Counter/{k}/add", 1, headers=hdr),
                                 "idempotency-expires")
    o["call_3_same_key_other_body"] = h.obs(
        await h.ingress("POST", f"/Counter/{k}/add", 100, headers=hdr))
    o["call_other_key"] = h.obs(await h.ingress(
        "POST", f"/Counter/{k}/add", 1, headers={"idempotency-key": h.key("ik-other")}))
    o["state_after"] = h.obs(await h.ingress("GET", f"/Counter/{k}/get"))
    o["output_by_idempotency_key"] = h.obs(await h.ingress(
        "GET", f"/restate/invocation/Counter/{k}/add/{ik}/output"))
    o["attach_by_idempotency_key"] = h.obs(await h.ingress(
        "GET", f"/restate/invocation/Counter/{k}/add/{ik}/attach"))
    o["output_unknown_idempotency_key"] = h.obs(await h.ingress(
        "GET", f"/restate/invocation/Counter/{k}/add/{h.key('nope')}/output"))
    sk = {"idempotency-key": h.key("ik-send")}
    o["send_1"] = h.obs(await h.ingress("POST", "/Greeter/sleepy/send", 20, headers=sk))
    o["send_2"] = h.obs(await h.ingress("POST", "/Greeter/sleepy/send", 20, headers=sk))
    o["send_attach"] = h.obs(await h.ingress(
        "GET", f"/restate/invocation/Greeter/sleepy/{h.key('ik-send')}/attach"))
    o["call_after_send_same_key"] = h.obs(
        await h.ingress("POST", "/Greeter/sleepy", 20, headers=sk))
    return o


async def scenario_send_attach_output(h: Harness) -> dict[str, Any]:
    o: dict[str, Any] = {}
    r = await h.ingress("POST", "/Greeter/greet/send", "sam")
    o["send"] = h.obs(r)
    iid = invocation_id(r)
    o["attach"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/attach"))
    o["output"] = h.obs(await h.ingress("GET", f"/restate/invocation/{iid}/output"))
    o["attach_post"] = h.obs(await h.ingress("POST", f"/restate/invocation/{iid}/attach"))
    r = await h.ingress("POST", "/Greeter/fail_terminal/send", None)
    fid = invocation_id(r)
    o["failed_attach"] = h.obs(await h.ingress("GET", f"/restate/invocation/{fid}/attach"))
    o["failed_output"] = h.obs(await h.ingress("GET", f"/restate/invocation/{fid}/output"))
    return o


async def scenario_not_found_and_bad_requests(h: Harness) -> dict[str, Any]:
    never = "inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB"  # well-formed, never used
    return {
        "unknown_service": h.obs(await h.ingress("POST", "/Nope/greet", "x")),
        "unknown_handler": h.obs(await h.ingress("POST", "/Greeter/nope", "x")),
        "unknown_object_handler": h.obs(await h.ingress("POST", f"/Counter/{h.key('x')}/nope")),
        "object_without_key": h.obs(await h.ingress("POST", "/Counter/add", 1)),
        "service_with_key": h.obs(await h.ingress("POST", "/Greeter/k/greet", "x")),
        "root_path": h.obs(await h.ingress("GET", "/")),
        "method_delete": h.obs(await h.ingress("DELETE", "/Greeter/greet")),
        "method_put": h.obs(await h.ingress("PUT", "/Greeter/greet", "x")),
        "bad_invocation_id_output": h.obs(await h.ingress("GET",
                                                          "/restate/invocation/bogus/output")),
        "unknown_invocation_output": h.obs(await h.ingress(
            "GET", f"/restate/invocation/{never}/output")),
        "unknown_invocation_attach": h.obs(await h.ingress(
            "GET", f"/restate/invocation/{never}/attach")),
        "unknown_workflow_output": h.obs(await h.ingress(
            "GET", f"/restate/workflow/Signup/{h.key('never')}/output")),
    }


async def scenario_malformed_input(h: Harness) -> dict[str, Any]:
    j = {"content-type": "application/json"}
    o: dict[str, Any] = {
        "malformed_json": h.obs(await h.ingress("POST", "/Greeter/greet", content=b"{not json",
                                                headers=j)),
        "truncated_json_object": h.obs(await h.ingress(
            "POST", f"/Counter/{h.key('m')}/add", content=b"[1,", headers=j)),
        "wrong_content_type": h.obs(await h.ingress(
            "POST", "/Greeter/greet", content=b'"bob"', headers={"content-type": "text/plain"})),
        "body_without_content_type": h.obs(await h.ingress("POST", "/Greeter/greet",
                                                           content=b'"bob"')),
        "empty_body_with_json_content_type": h.obs(await h.ingress(
            "POST", f"/Counter/{h.key('m')}/add", content=b"", headers=j)),
    }
    r = await h.ingress("POST", "/Greeter/greet/send", content=b"{not json", headers=j)
    o["malformed_json_send"] = h.obs(r)
    # restate accepts the send (the SDK fails the invocation); rstq refuses it with a 400
    # (tests/compat/test_reference_server.py: DEVIATIONS), so there is nothing to attach to.
    o["malformed_json_send_attach"] = h.obs(await h.ingress(
        "GET", f"/restate/invocation/{invocation_id(r)}/attach")) if r.status_code == 202 \
        else None
    o["state_untouched"] = h.obs(await h.ingress("GET", f"/Counter/{h.key('m')}/get"))
    return o


async def scenario_request_headers(h: Harness) -> dict[str, Any]:
    return {
        "forwarded": h.obs(await h.ingress(
            "POST", "/Greeter/request_info", None, params={"foo": "bar"},
            headers={"x-test": "hello", "idempotency-key": h.key("hdr")})),
    }


async def scenario_health_and_admin(h: Harness) -> dict[str, Any]:
    health = await h.ingress("GET", "/restate/health")
    body = parse_body(health)
    mine = {"Counter", "Greeter", "Mailbox", "Signup"}
    services = sorted(set(body.get("services", [])) & mine) if isinstance(body, dict) else body
    admin_health = await h.admin("GET", "/health")
    never = "inv_1hsaCL01zOqF4VEeJ3wlnKccc4nxnc0VlB"
    c1 = await h.admin("PATCH", f"/invocations/{never}/cancel")
    c2 = await h.admin("PATCH", "/invocations/bogus/cancel")
    return {
        "ingress_health": {"status": health.status_code, "services": services},
        "admin_health": {"status": admin_health.status_code, "body": parse_body(admin_health)},
        "cancel_unknown": {"status": c1.status_code, "body": parse_body(c1)},
        "cancel_bad_id": {"status": c2.status_code, "body": parse_body(c2)},
    }


SCENARIOS: dict[str, Scenario] = {
    "greeter_basic": scenario_greeter_basic,
    "counter_state": scenario_counter_state,
    "run_retries": scenario_run_retries,
    "terminal_errors": scenario_terminal_errors,
    "sleep": scenario_sleep,
    "calls_and_sends": scenario_calls_and_sends,
    "delayed_send_ingress": scenario_delayed_send_ingress,
    "awakeable_resolve": scenario_awakeable_resolve,
    "awakeable_reject": scenario_awakeable_reject,
    "awakeable_from_handler": scenario_awakeable_from_handler,
    "awakeable_bad_ids": scenario_awakeable_bad_ids,
    "workflow": scenario_workflow,
    "workflow_blocking_call": scenario_workflow_blocking_call,
    "workflow_reject": scenario_workflow_reject,
    "cancel": scenario_cancel,
    "idempotency": scenario_idempotency,
    "send_attach_output": scenario_send_attach_output,
    "not_found_and_bad_requests": scenario_not_found_and_bad_requests,
    "malformed_input": scenario_malformed_input,
    "request_headers": scenario_request_headers,
    "health_and_admin": scenario_health_and_admin,
}


async def run_scenario(name: str, h: Harness) -> dict[str, Any]:
    """Run one scenario and return its normalized observations."""
    raw = await SCENARIOS[name](h)
    return dict(Normalizer(h.namespace)(raw))
