"""End to end: rstq (subprocess) exports spans over OTLP to a real receiver in the test.

Services are official restate-sdk handlers under hypercorn, registered REQUEST_RESPONSE so
handlers suspend while they wait (suspension and resume show). Spans are polled from the
receiver with bounded deadlines (OTEL_BSP_SCHEDULE_DELAY is 50 ms).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from rstq.cli.trace import trace as trace_cmd

from tests.support.harness.rstq_server import RstqServer
from tests.support.harness.service_proc import ServiceProcess
from tests.support.net.otlp_receiver import OtlpReceiver, Span

pytestmark = pytest.mark.slow

INCOMING_TRACE = "0af7651916cd43dd8448eb211c80319c"
INCOMING_SPAN = "b7ad6b7169203331"


class Env:
    def __init__(self, rx: OtlpReceiver, server: RstqServer) -> None:
        self.rx = rx
        self.server = server
        self.http = httpx.Client(base_url=server.ingress_url, timeout=30)

    def call(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
             ) -> httpx.Response:
        resp = self.http.post(path, json=body, headers=headers)
        assert resp.status_code in (200, 202), resp.text
        return resp

    def spans_of(self, inv_id: str, spans: list[Span]) -> list[Span]:
        return [s for s in spans if s["attributes"].get("restate.invocation.id") == inv_id]

    def wait_ended(self, inv_id: str, timeout: float = 20.0) -> list[Span]:
        spans = self.rx.wait_for(
            lambda ss: any(s["name"].startswith("invocation-end")
                           for s in self.spans_of(inv_id, ss)), timeout, f"end of {inv_id}")
        return self.spans_of(inv_id, spans)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    old = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    try:
        with OtlpReceiver() as rx, ServiceProcess(
                "tests.support.apps.trace_services:app", http2=False,
                env={"RSTQ_TEST_OTLP_HTTP": rx.http_url}) as svc, RstqServer(
                partitions=2, extra_args=["--otlp", rx.grpc_url]) as server:
            server.register(svc.url, use_http_11=True)
            yield Env(rx, server)
    finally:
        if old is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = old


def by_name(spans: list[Span], prefix: str) -> list[Span]:
    return sorted((s for s in spans if s["name"].startswith(prefix + " ")),
                  key=lambda s: s["start_ns"])


def one(spans: list[Span], prefix: str) -> Span:
    found = by_name(spans, prefix)
    assert len(found) == 1, (prefix, [s["name"] for s in spans])
    return found[0]


def commands(span: Span) -> list[str]:
    out = []
    for e in span["events"]:
        if e["name"] == "restate.invocation.lifecycle.new_command":
            name = e["attributes"].get("restate.journal.command.name")
            out.append(e["attributes"]["restate.journal.command.type"]
                       + (f":{name}" if name else ""))
    return out


def test_call_chain_and_delayed_send(env: Env) -> None:
    resp = env.call("/Caller/frank/chain", "frank")
    assert resp.json() == "hello frank #1"
    inv = resp.headers["x-restate-id"]
    spans = env.wait_ended(inv)
    ingress = one(spans, "ingress")
    start = one(spans, "invocation-start")
    attempts = by_name(spans, "invocation-attempt")
    end = one(spans, "invocation-end")
    trace_id = ingress["trace_id"]
    assert ingress["name"] == "ingress Caller/{key}/chain" and ingress["parent_span_id"] == ""
    assert start["parent_span_id"] == ingress["span_id"]
    assert all(s["trace_id"] == trace_id for s in spans)
    assert {s["parent_span_id"] for s in attempts + [end]} == {start["span_id"]}
    assert end["attributes"]["restate.invocation.result"] == "success" and end["status"] == "OK"
    a0 = attempts[0]["attributes"]
    assert a0["rpc.system"] == "restate" and a0["rpc.service"] == "Caller"
    assert a0["rpc.method"] == "chain" and a0["restate.invocation.target"] == "Caller/frank/chain"
    assert a0["restate.deployment.id"].startswith("dp_")
    assert a0["restate.deployment.address"].startswith("http://127.0.0.1:")
    assert a0["restate.deployment.service_protocol_version"] >= 5
    assert start["resource"]["service.name"] == "rstq" and start["scope"] == "services"
    # Request-response: the caller suspends on the call and resumes with its result.
    assert len(attempts) >= 2
    assert attempts[0]["attributes"]["restate.invocation.attempt.outcome"] == "suspended"
    assert "restate.invocation.lifecycle.suspended" in [e["name"] for e in attempts[0]["events"]]
    assert "restate.invocation.lifecycle.resumed" in [e["name"] for e in attempts[1]["events"]]
    all_commands = [c for a in attempts for c in commands(a)]
    assert "Command/Call" in all_commands and "Command/OneWayCall" in all_commands
    assert all_commands[-1] == "Command/Output"
    # The callee: a child of the caller's attempt, in the same trace.
    callee_spans = [s for s in env.rx.snapshot()
                    if s["attributes"].get("restate.invocation.target") == "Greeter/frank/greet"]
    callee_start = one(callee_spans, "invocation-start")
    assert callee_start["trace_id"] == trace_id
    assert callee_start["parent_span_id"] == attempts[0]["span_id"]
    # The delayed send: a new trace, linked to the sender's attempt, spanning the delay.
    delayed = env.rx.wait_for(lambda ss: any(
        s["name"].startswith("invocation-end") and s["attributes"].get(
            "restate.invocation.target") == "Greeter/delayed-frank/greet" for s in ss),
        what="delayed send")
    delayed = [s for s in delayed
               if s["attributes"].get("restate.invocation.target") == "Greeter/delayed-frank/greet"]
    d_start = one(delayed, "invocation-start")
    assert d_start["trace_id"] != trace_id and d_start["parent_span_id"] == ""
    assert [(k["trace_id"], k["attributes"]) for k in d_start["links"]] == [
        (trace_id, {"restate.runtime": True})]
    assert d_start["links"][0]["span_id"] in {a["span_id"] for a in attempts}
    assert d_start["end_ns"] - d_start["start_ns"] >= 600_000_000  # the 700 ms delay
    assert not by_name(delayed, "ingress")
    # The server kept them too: GET /traces/{id} and `rstq trace` show both traces.
    doc = httpx.get(f"{env.server.admin_url}/traces/{inv}").json()
    assert doc["trace_id"] == trace_id
    kept = {s["span_id"] for s in doc["spans"]}
    assert {start["span_id"], d_start["span_id"], callee_start["span_id"]} <= kept
    out = CliRunner().invoke(trace_cmd, [inv, "--admin", env.server.admin_url],
                             env={"COLUMNS": "160"})
    assert out.exit_code == 0, out.output
    assert "invocation-attempt Caller/{key}/chain" in out.output
    assert "Greeter/{key}/greet" in out.output and "Command/Call" in out.output


def test_failed_attempts_are_errors(env: Env) -> None:
    inv = env.call("/Steps/flaky", "k1").headers["x-restate-id"]
    spans = env.wait_ended(inv, timeout=30)
    attempts = by_name(spans, "invocation-attempt")
    # Two failures, then success (request-response: it may suspend on the run's ack first).
    assert [a["status"] for a in attempts[:3]] == ["ERROR", "ERROR", "OK"]
    assert {a["status"] for a in attempts[3:]} <= {"OK"}
    assert "flaky failure 1" in attempts[0]["status_message"]
    assert "flaky failure 2" in attempts[1]["status_message"]
    assert [a["attributes"]["restate.invocation.retry_count"] for a in attempts[:3]] == [0, 1, 2]
    assert commands(attempts[0]) == ["Command/Run:flaky-step"]
    run_ended = [e for a in attempts[2:] for e in a["events"]
                 if e["name"] == "restate.invocation.lifecycle.run_ended"]
    assert run_ended and run_ended[0]["attributes"]["restate.journal.notification.id"] \
        .startswith("CompletionId: ")
    assert {a["parent_span_id"] for a in attempts} == {one(spans, "invocation-start")["span_id"]}
    assert one(spans, "invocation-end")["attributes"]["restate.invocation.result"] == "success"


def test_awakeable_resolved_from_outside(env: Env) -> None:
    inv = env.call("/Waiter/w1/wait/send").json()["invocationId"]
    deadline = time.monotonic() + 20
    awk = ""
    while not awk:
        awk = env.call("/Waiter/w1/awakeable_id").json()
        assert time.monotonic() < deadline, "no awakeable id"
        time.sleep(0.05)
    # Suspended now: its first attempt is already exported, the invocation is not done.
    env.rx.wait_for(lambda ss: any(
        s["name"] == "invocation-attempt Waiter/{key}/wait"
        and s["attributes"].get("restate.invocation.attempt.outcome") == "suspended"
        for s in env.spans_of(inv, ss)), what="suspended attempt")
    assert not by_name(env.spans_of(inv, env.rx.snapshot()), "invocation-end")
    resp = env.http.post(f"/restate/awakeables/{awk}/resolve", json="woken")
    assert resp.status_code == 202, resp.text
    spans = env.wait_ended(inv)
    attempts = by_name(spans, "invocation-attempt")
    assert len(attempts) == 2
    resumed = [e for e in attempts[1]["events"]
               if e["name"] == "restate.invocation.lifecycle.resumed"]
    assert resumed[0]["attributes"]["restate.journal.notification.type"] == \
        "Notification/Signal"
    assert commands(attempts[1])[-1] == "Command/Output"


def test_live_attempt_visible_before_it_ends(env: Env) -> None:
    inv = env.call("/Steps/slow/send", 3.0).json()["invocationId"]
    spans = env.rx.wait_for(lambda ss: bool(by_name(env.spans_of(inv, ss),
                                                    "invocation-attempt-started")),
                            timeout=2.5, what="attempt-started marker")
    mine = env.spans_of(inv, spans)
    assert not by_name(mine, "invocation-attempt") and not by_name(mine, "invocation-end")
    marker = one(mine, "invocation-attempt-started")
    assert marker["start_ns"] == marker["end_ns"]
    assert marker["parent_span_id"] == one(mine, "invocation-start")["span_id"]
    doc = httpx.get(f"{env.server.admin_url}/traces/{inv}").json()
    running = [s for s in doc["spans"] if s["name"] == "invocation-attempt Steps/slow"]
    assert running and running[0]["end_ns"] is None  # open in the server's store
    env.wait_ended(inv, timeout=20)


def test_incoming_traceparent_and_handler_spans(env: Env) -> None:
    tp = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
    resp = env.call("/Steps/echo", None, headers={"traceparent": tp})
    inv = resp.headers["x-restate-id"]
    spans = env.wait_ended(inv)
    ingress = one(spans, "ingress")
    assert ingress["trace_id"] == INCOMING_TRACE and ingress["parent_span_id"] == INCOMING_SPAN
    attempt = one(spans, "invocation-attempt")
    assert resp.json()["traceparent"] == f"00-{INCOMING_TRACE}-{attempt['span_id']}-01"
    # A span the handler makes with the OpenTelemetry API nests under its attempt.
    resp = env.call("/Steps/otel", None, headers={"traceparent": tp})
    inv = resp.headers["x-restate-id"]
    spans = env.wait_ended(inv)
    attempt = one(spans, "invocation-attempt")
    work = env.rx.wait_for(lambda ss: any(s["span_id"] == resp.json() for s in ss),
                           what="handler span")
    handler_span = next(s for s in work if s["span_id"] == resp.json())
    assert handler_span["name"] == "handler-work"
    assert handler_span["resource"]["service.name"] == "trace-services"
    assert handler_span["trace_id"] == INCOMING_TRACE
    assert handler_span["parent_span_id"] == attempt["span_id"]


def test_http_protobuf_export(env: Env) -> None:
    """The same spans over OTLP/HTTP (--otlp-protocol http), from a second server."""
    with RstqServer(partitions=1, extra_args=["--otlp", env.rx.http_url,
                                              "--otlp-protocol", "http"]) as other:
        svc_url = httpx.get(f"{env.server.admin_url}/deployments").json()[
            "deployments"][0]["uri"]
        other.register(svc_url, use_http_11=True)
        resp = httpx.post(f"{other.ingress_url}/Greeter/hugo/greet", json="hugo", timeout=30)
        inv = resp.headers["x-restate-id"]
        spans = env.wait_ended(inv)
    assert {s["transport"] for s in spans} == {"http"}
    names = sorted(s["name"].split(" ")[0] for s in spans)
    assert names == ["ingress", "invocation-attempt", "invocation-end", "invocation-start"]
    attempt = one(spans, "invocation-attempt")
    assert commands(attempt) == ["Command/GetEagerState", "Command/SetState", "Command/Output"]
