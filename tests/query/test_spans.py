"""sys_span: the spans of the in-memory trace store are a SQL table that joins to
sys_invocation (trace_id and invocation id), without Jaeger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer

SDK_APP = "tests.support.apps.sdk_basic_services:app"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[RstqServer, HypercornProcess]]:
    with HypercornProcess(SDK_APP) as hc, RstqServer(extra_args=["--trace-store"]) as srv:
        srv.register(hc.url)
        yield srv, hc


def rows(srv: RstqServer, sql: str) -> list[dict[str, Any]]:
    r = httpx.post(f"{srv.admin_url}/query", json={"query": sql},
                   headers={"accept": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


def test_spans_join_invocations(server: tuple[RstqServer, HypercornProcess]) -> None:
    srv, _ = server
    r = httpx.post(f"{srv.ingress_url}/Counter/spans/add", json=1, timeout=30)
    assert r.status_code == 200, r.text
    inv_id = r.headers["x-restate-id"]
    sql = ("SELECT s.name, s.status, s.parent_span_id IS NULL AS root FROM sys_span s "
           "JOIN sys_invocation i ON s.trace_id = i.trace_id "
           f"WHERE i.id = '{inv_id}' ORDER BY s.start, s.name")
    deadline = time.monotonic() + 20
    while True:  # the end span is recorded right after the response
        got = rows(srv, sql)
        names = [g["name"].split(" ")[0] for g in got]
        if "invocation-end" in names or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    roots = [g["name"].split(" ")[0] for g in got if g["root"]]
    assert roots == ["ingress"]  # no incoming traceparent: the ingress span is the root
    assert {"invocation-start", "invocation-attempt", "invocation-end"} <= set(names)
    by_id = rows(srv, f"SELECT count(*) AS n FROM sys_span WHERE invocation_id = '{inv_id}'")
    assert by_id[0]["n"] >= 3


def test_sys_span_is_empty_without_tracing() -> None:
    with RstqServer() as srv:
        assert rows(srv, "SELECT count(*) AS n FROM sys_span") == [{"n": 0}]
