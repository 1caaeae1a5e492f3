"""Discovery against official restate-sdk services under hypercorn, plus manifest unit checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from rstq.core import discovery as d
from rstq.core.discovery import (
    DiscoveryError,
    HandlerType,
    Manifest,
    OnMaxAttempts,
    ProtocolMode,
    RetryPolicy,
    ServiceType,
)

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.net.ports import free_port

SDK_APP = "tests.support.apps.sdk_basic_services:app"
ECHO_APP = "tests.support.apps.echo_app:app"


@pytest.fixture(scope="module")
def sdk() -> Iterator[HypercornProcess]:
    with HypercornProcess(SDK_APP) as hc:
        yield hc


@pytest.fixture(scope="module")
def echo() -> Iterator[HypercornProcess]:
    with HypercornProcess(ECHO_APP) as hc:
        yield hc


async def test_discover_h2c_is_bidi(sdk: HypercornProcess) -> None:
    m = await d.discover(sdk.url + "/", additional_headers={"x-extra": "1"})
    assert m.protocol_mode is ProtocolMode.BIDI_STREAM
    assert (m.min_protocol_version, m.max_protocol_version, m.manifest_version) == (5, 7, 4)
    assert [s.name for s in m.services] == ["Greeter", "Counter", "Wf", "Tuned"]

    greeter = m.service("Greeter")
    assert greeter is not None and greeter.ty is ServiceType.SERVICE
    assert greeter.documentation == "says hello" and dict(greeter.metadata) == {"team": "rstq"}
    greet = greeter.handler("greet")
    assert greet is not None and greet.ty is None
    assert greet.input is not None and greet.input.content_type == "application/json"
    assert greet.input.required is False
    assert greet.input.json_schema_value == {"type": "string"}
    assert greet.output is not None and greet.output.json_schema_value == {"type": "string"}

    counter = m.service("Counter")
    assert counter is not None and counter.ty is ServiceType.VIRTUAL_OBJECT
    kinds = {h.name: h.ty for h in counter.handlers}
    assert kinds == {
        "add": HandlerType.EXCLUSIVE,
        "get": HandlerType.SHARED,
        "reset": HandlerType.EXCLUSIVE,
    }
    get = counter.handler("get")
    assert get is not None and get.input is not None
    assert get.input.content_type is None  # `{}`: takes no input

    wf = m.service("Wf")
    assert wf is not None and wf.ty is ServiceType.WORKFLOW
    assert {h.name: h.ty for h in wf.handlers} == {
        "run": HandlerType.WORKFLOW,
        "signal": HandlerType.SHARED,
    }
    assert d.pick_protocol_version(m) == 6
    assert d.pick_protocol_version(m, enable_v7=True) == 7


async def test_discover_http11_is_request_response(sdk: HypercornProcess) -> None:
    m = await d.discover(sdk.url, use_http_11=True)
    assert m.protocol_mode is ProtocolMode.REQUEST_RESPONSE
    h2 = await d.discover(sdk.url)
    # Same services either way; only the mode differs.
    assert m.services == h2.services


async def test_defaults_and_overrides(sdk: HypercornProcess) -> None:
    m = await d.discover(sdk.url)
    counter = m.service("Counter")
    assert counter is not None
    eff = d.effective_settings(counter, counter.handler("add"))
    assert eff == d.EffectiveSettings(
        inactivity_timeout_ms=60_000,
        abort_timeout_ms=600_000,
        journal_retention_ms=86_400_000,
        idempotency_retention_ms=86_400_000,
        workflow_completion_retention_ms=86_400_000,
        enable_lazy_state=False,
        ingress_private=False,
        retry_policy=RetryPolicy(500, 60_000, 70, 2.0, OnMaxAttempts.PAUSE),
    )
    tuned = m.service("Tuned")
    assert tuned is not None
    assert tuned.retry_policy == RetryPolicy(100, 10_000, 5, 1.5, OnMaxAttempts.KILL)
    slow = tuned.handler("slow")
    eff = d.effective_settings(tuned, slow)
    assert eff.inactivity_timeout_ms == 5_000  # handler overrides service (30 s)
    assert eff.abort_timeout_ms == 120_000  # from the service
    assert (eff.journal_retention_ms, eff.idempotency_retention_ms) == (7_200_000, 10_800_000)
    assert eff.ingress_private is True
    # Retry policy merges field-wise: handler > service > default.
    assert eff.retry_policy == RetryPolicy(100, 10_000, 3, 1.5, OnMaxAttempts.PAUSE)


async def test_json_round_trip(sdk: HypercornProcess) -> None:
    for use_http_11 in (False, True):
        m = await d.discover(sdk.url, use_http_11=use_http_11)
        text = d.to_json(m)
        back = d.from_json(text)
        assert back == m
        assert d.to_json(back) == text  # deterministic bytes for the log
        assert hash(back) == hash(m)


async def test_connection_refused() -> None:
    for http11 in (False, True):
        with pytest.raises(DiscoveryError, match="cannot reach"):
            await d.discover(f"http://127.0.0.1:{free_port()}", use_http_11=http11)


async def test_non_200_and_bad_content_type(echo: HypercornProcess) -> None:
    for http11 in (False, True):
        with pytest.raises(DiscoveryError, match="HTTP 404: not found") as ei:
            await d.discover(echo.url, use_http_11=http11)  # the echo app has no /discover
        assert ei.value.status == 404
        with pytest.raises(DiscoveryError, match="HTTP 500: internal failure") as ei:
            await d.discover(echo.url + "/boom", use_http_11=http11)
        assert len(str(ei.value)) < 700  # body excerpt, not the whole body
        with pytest.raises(DiscoveryError, match="content-type 'application/json'"):
            await d.discover(echo.url + "/badtype", use_http_11=http11)
        with pytest.raises(DiscoveryError, match="invalid JSON"):
            await d.discover(echo.url + "/badjson", use_http_11=http11)
        with pytest.raises(DiscoveryError, match="minProtocolVersion: missing"):
            await d.discover(echo.url + "/badschema", use_http_11=http11)
        with pytest.raises(DiscoveryError, match=r"\[8, 9\].*do not overlap"):
            await d.discover(echo.url + "/range", use_http_11=http11)
    # A deployment claiming BIDI_STREAM is fine over h2c, rejected over HTTP/1.1.
    assert (await d.discover(echo.url + "/bidi")).protocol_mode is ProtocolMode.BIDI_STREAM
    with pytest.raises(DiscoveryError, match="BIDI_STREAM"):
        await d.discover(echo.url + "/bidi", use_http_11=True)


async def test_bad_uri() -> None:
    with pytest.raises(DiscoveryError, match="http:// or https://"):
        await d.discover("ftp://x")
    with pytest.raises(DiscoveryError, match="use_http_11"):
        await d.discover("https://127.0.0.1:1")


# -- manifest parsing and server-side checks, on crafted documents ----------------------------


def doc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 7,
        "services": [
            {
                "name": "Obj",
                "ty": "VIRTUAL_OBJECT",
                "handlers": [{"name": "a"}, {"name": "b", "ty": "SHARED", "input": {}}],
            },
            {"name": "W", "ty": "WORKFLOW", "handlers": [{"name": "run"}]},
        ],
    }
    base.update(over)
    return base


def test_handler_type_defaults() -> None:
    m = d.parse_manifest(doc())
    obj, wf = m.services
    assert [h.ty for h in obj.handlers] == [HandlerType.EXCLUSIVE, HandlerType.SHARED]
    assert obj.handlers[0].input is None  # absent, distinct from `{}`
    assert wf.handlers[0].ty is HandlerType.WORKFLOW


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x: x.pop("protocolMode"), "protocolMode: missing"),
        (lambda x: x.update(protocolMode="BIDI"), "protocolMode: expected BIDI_STREAM"),
        (lambda x: x.update(minProtocolVersion="5"), "minProtocolVersion: expected an integer"),
        (lambda x: x.update(minProtocolVersion=8), "greater than maxProtocolVersion"),
        (lambda x: x.update(services={}), "services: expected an array"),
        (lambda x: x["services"][0].pop("ty"), r"services\[0\].ty: missing"),
        (lambda x: x["services"][0].update(name=""), "must not be empty"),
        (lambda x: x["services"][1].update(name="Obj"), "duplicate name 'Obj'"),
        (
            lambda x: x["services"][0]["handlers"][0].update(ty="WORKFLOW"),
            r"services\[0\].handlers\[0\].ty: WORKFLOW handlers are not allowed",
        ),
        (
            lambda x: x["services"][1]["handlers"].append({"name": "again"}),
            "at most one WORKFLOW handler",
        ),
        (
            lambda x: x["services"][0].update(inactivityTimeout=-1),
            r"services\[0\].inactivityTimeout: must be >= 0",
        ),
        (
            lambda x: x["services"][0].update(retryPolicyOnMaxAttempts="STOP"),
            "expected PAUSE|KILL",
        ),
        (
            lambda x: x["services"][0].update(retryPolicyMaxAttempts=0),
            "retryPolicyMaxAttempts: must be >= 1",
        ),
        (lambda x: x["services"][0].update(metadata={"a": 1}), r"metadata.a: expected a string"),
        (lambda x: x["services"][0]["handlers"][1].update(input=[]), "input: expected an object"),
        (lambda x: x["services"][0].update(enableLazyState="yes"), "expected a boolean"),
    ],
)
def test_schema_violations(mutate: Any, message: str) -> None:
    x = doc()
    mutate(x)
    with pytest.raises(DiscoveryError, match=message):
        d.parse_manifest(x)


def test_protocol_range_and_mode_checks() -> None:
    d.check_manifest(
        d.parse_manifest(doc(minProtocolVersion=1, maxProtocolVersion=5)), http_11=True
    )
    for lo, hi in ((1, 4), (8, 9)):
        m = d.parse_manifest(doc(minProtocolVersion=lo, maxProtocolVersion=hi))
        with pytest.raises(DiscoveryError, match="do not overlap"):
            d.check_manifest(m, http_11=False)
    bidi = d.parse_manifest(doc(protocolMode="BIDI_STREAM"))
    d.check_manifest(bidi, http_11=False)
    with pytest.raises(DiscoveryError, match="BIDI_STREAM .* HTTP/1.1"):
        d.check_manifest(bidi, http_11=True)


def test_pick_protocol_version() -> None:
    def m(lo: int, hi: int) -> Manifest:
        return d.parse_manifest(doc(minProtocolVersion=lo, maxProtocolVersion=hi))

    assert d.pick_protocol_version(m(5, 6)) == 6
    assert d.pick_protocol_version(m(5, 5), enable_v7=True) == 5
    assert d.pick_protocol_version(m(5, 9), enable_v7=True) == 7
    with pytest.raises(DiscoveryError, match="no usable"):
        d.pick_protocol_version(m(7, 7))  # v7-only deployment, v7 not enabled
    with pytest.raises(DiscoveryError, match="no usable"):
        d.pick_protocol_version(m(1, 4), enable_v7=True)


def test_round_trip_all_fields() -> None:
    x = doc(lambdaCompression="zstd")
    svc = x["services"][0]
    svc.update(
        documentation="doc",
        metadata={"k": "v", "a": "b"},
        inactivityTimeout=1,
        abortTimeout=2,
        journalRetention=3,
        idempotencyRetention=0,
        enableLazyState=True,
        ingressPrivate=False,
        retryPolicyInitialInterval=10,
        retryPolicyExponentiationFactor=3,
    )
    svc["handlers"][0].update(
        workflowCompletionRetention=9,
        input={"required": True, "contentType": "*/*", "jsonSchema": True},
        output={"setContentTypeIfEmpty": True, "jsonSchema": {"b": [1, 2.5], "a": None}},
        retryPolicyOnMaxAttempts="KILL",
        unknownFutureField={"ignored": True},
    )
    m = d.parse_manifest(x, 3)
    assert m.services[0].retry_policy == RetryPolicy(10, None, None, 3.0, None)
    back = d.from_json(d.to_json(m))
    assert back == m and back.manifest_version == 3 and back.lambda_compression == "zstd"
    assert json.loads(d.to_json(m))["manifest"]["services"][0]["metadata"] == {"k": "v", "a": "b"}
    h = back.services[0].handlers[0]
    assert h.input is not None and h.input.json_schema_value is True
    assert h.output is not None and h.output.json_schema_value == {"a": None, "b": [1, 2.5]}
    with pytest.raises(DiscoveryError, match="not valid JSON"):
        d.from_json("{")
