"""`GET /metrics` on the admin port: Prometheus text exposition, parsed with prometheus_client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rstq.app import App, AppConfig, build
from rstq.core.invoker import AttemptError, Invoker
from rstq.core.server import Server, ServerConfig
from rstq.tracing.config import TracingConfig

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_http import (
    admin_url,
    ingress_url,
    register_manifest,
    running_server,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lb), v in samples.items() if n == name and want <= set(lb))


async def scrape(server: Server, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(admin_url(server) + "/metrics", headers=headers)


async def test_metrics_after_invocations(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (server, fake):
        await register_manifest(server)
        async with httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as ingress:
            fake.output = b'"hi"'
            for name in ("a", "b", "c"):
                r = await ingress.post("/Greeter/greet", json=name)
                assert r.status_code == 200, r.text
            fake.output = (500, "boom")
            r = await ingress.post("/Greeter/greet", json="d")
            assert r.status_code == 500, r.text
        resp = await scrape(server)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        m = parse(resp.text)
        assert total(m, "rstq_invocations_completed_total", service="Greeter",
                     status="succeeded") == 3
        assert total(m, "rstq_invocations_completed_total", service="Greeter",
                     status="failed") == 1
        assert total(m, "rstq_invocations", service="Greeter", status="completed") == 0
        assert total(m, "rstq_invocations_retained") == 4
        assert total(m, "rstq_invocations_resident") == 4  # (the cache holds 1000)
        assert total(m, "rstq_history_segments") == 0
        assert total(m, "rstq_log_append_duration_seconds_count") > 0
        assert total(m, "rstq_log_append_batch_size_count") > 0
        assert total(m, "rstq_log_append_batch_size_sum") >= 4 * 3  # Invoke, Output, End each
        assert total(m, "rstq_log_fsync_duration_seconds_count") > 0
        for proc in server.processors:
            p = str(proc.partition_id)
            assert total(m, "rstq_partition_applied_lsn", partition=p) == proc.state.applied_lsn
            assert total(m, "rstq_partition_durable_lsn", partition=p) == proc.log.durable_lsn
            assert total(m, "rstq_partition_up", partition=p) == 1
            assert total(m, "rstq_timers_pending", partition=p) == len(proc.state.timers)
            assert (("rstq_inbox_depth", (("partition", p),)) in m)
        async with httpx.AsyncClient(timeout=10) as client:  # the same LSNs as sys_partition
            q = await client.post(admin_url(server) + "/query",
                                  headers={"accept": "application/json"},
                                  json={"query": "SELECT partition_id, applied_lsn "
                                                 "FROM sys_partition"})
        assert q.status_code == 200, q.text
        for row in q.json()["rows"]:
            got = total(m, "rstq_partition_applied_lsn", partition=str(row["partition_id"]))
            assert got == row["applied_lsn"]
        server.processors[0].snapshot()
        m = parse((await scrape(server)).text)
        assert total(m, "rstq_checkpoint_duration_seconds_count", partition="0") >= 1


async def test_metrics_need_the_admin_token(tmp_path: Path) -> None:
    async with running_server(tmp_path, extra={"admin_token": "s3cret"}) as (server, _):
        assert (await scrape(server)).status_code == 401
        resp = await scrape(server, {"authorization": "Bearer s3cret"})
        assert resp.status_code == 200
        assert "rstq_partition_applied_lsn" in resp.text


async def test_invoker_counts_attempts_failures_retries(tmp_path: Path) -> None:
    """The real invoker against an endpoint that is not there: every attempt fails and retries."""
    async with running_server(tmp_path, fake_invoker=False) as (server, _):
        await register_manifest(server)  # its URI is never reachable
        invoker = server.invoker
        assert isinstance(invoker, Invoker)
        async with httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as ingress:
            r = await ingress.post("/Greeter/greet/send", json="x")
            assert r.status_code == 202, r.text
        for _ in range(200):
            m = parse((await scrape(server)).text)
            if total(m, "rstq_invoker_retries_total", service="Greeter") >= 1:
                break
            await _sleep()
        assert total(m, "rstq_invoker_attempts_total", service="Greeter") >= 1
        assert total(m, "rstq_invoker_attempt_failures_total", service="Greeter") >= 1
        assert total(m, "rstq_invoker_retries_total", service="Greeter") >= 1
        assert AttemptError  # the failure path above is the invoker's _fail


async def _sleep() -> None:
    await asyncio.sleep(0.05)


async def scraped_until(server: Server, done: Callable[[Samples], bool],
                        timeout: float = 20.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        m = parse((await scrape(server)).text)
        if done(m) or time.monotonic() > deadline:
            return m
        await _sleep()


@asynccontextmanager
async def running_app(tmp_path: Path, around: AppConfig) -> AsyncIterator[App]:
    cfg = ServerConfig(data_dir=tmp_path / "data", partitions=2, ingress_bind="127.0.0.1:0",
                       admin_bind="127.0.0.1:0")
    app = build(cfg, around)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_sql_queries_by_endpoint_and_pgwire_sessions(tmp_path: Path) -> None:
    async with running_app(tmp_path, AppConfig(pgwire_bind="127.0.0.1:0")) as app:
        server = app.server
        m = parse((await scrape(server)).text)
        assert total(m, "rstq_sql_queries_total") == 0  # the series are there from the start
        assert ("rstq_sql_queries_total", (("endpoint", "pgwire"), ("outcome", "error"))) in m
        assert total(m, "rstq_pgwire_sessions") == 0
        assert total(m, "rstq_pgwire_sessions_opened_total") == 0

        async with httpx.AsyncClient(base_url=admin_url(server), timeout=30) as admin:
            for sql in ("SELECT 1", "SELECT count(*) FROM sys_invocation", "SELECT nope()"):
                r = await admin.post("/query", json={"query": sql},
                                     headers={"accept": "application/json"})
                assert r.status_code == (500 if "nope" in sql else 200), r.text
            r = await admin.post("/query", content=b"not json")  # not a query: not counted
            assert r.status_code == 400
        m = parse((await scrape(server)).text)
        assert total(m, "rstq_sql_queries_total", endpoint="http", outcome="ok") == 2
        assert total(m, "rstq_sql_queries_total", endpoint="http", outcome="error") == 1
        assert total(m, "rstq_sql_query_duration_seconds_count", endpoint="http") == 3
        assert total(m, "rstq_sql_query_duration_seconds_sum", endpoint="http") > 0

        dsn = f"host=127.0.0.1 port={app.pgwire_port} dbname=rstq user=rstq"

        def psql_session(opened: threading.Event, close: threading.Event) -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                assert conn.execute("SELECT count(*) FROM sys_service").fetchone() == (0,)
                with pytest.raises(psycopg.errors.UndefinedTable):
                    conn.execute("SELECT * FROM sys_nothing")
                opened.set()
                close.wait(20)

        opened, close = threading.Event(), threading.Event()
        session = asyncio.create_task(asyncio.to_thread(psql_session, opened, close))
        assert await asyncio.to_thread(opened.wait, 20)
        m = parse((await scrape(server)).text)
        assert total(m, "rstq_pgwire_sessions") == 1
        assert total(m, "rstq_pgwire_sessions_opened_total") == 1
        ok = total(m, "rstq_sql_queries_total", endpoint="pgwire", outcome="ok")
        assert ok >= 1
        assert total(m, "rstq_sql_queries_total", endpoint="pgwire", outcome="error") == 1
        assert total(m, "rstq_sql_query_duration_seconds_count", endpoint="pgwire") == ok + 1
        close.set()
        await session
        m = await scraped_until(server, lambda m: total(m, "rstq_pgwire_sessions") == 0)
        assert total(m, "rstq_pgwire_sessions") == 0
        assert total(m, "rstq_pgwire_sessions_opened_total") == 1
        # the http series did not move
        assert total(m, "rstq_sql_query_duration_seconds_count", endpoint="http") == 3


class _RefusingCollector:
    """An OTLP/HTTP endpoint that answers 400 to every export (not retried by the exporter)."""

    def __enter__(self) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server name
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_otlp_export_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    with _RefusingCollector() as url:
        tracing = TracingConfig(endpoint=url, protocol="http")
        async with running_app(tmp_path, AppConfig(pgwire_bind=None, tracing=tracing)) as app:
            server = app.server
            m = parse((await scrape(server)).text)
            assert total(m, "rstq_otlp_export_failures_total") == 0
            await register_manifest(server)
            async with httpx.AsyncClient(base_url=ingress_url(server), timeout=10) as ingress:
                r = await ingress.post("/Greeter/greet/send", json="x")  # spans: ingress, ...
                assert r.status_code == 202, r.text
            m = await scraped_until(
                server, lambda m: total(m, "rstq_otlp_export_failures_total") >= 1)
            assert total(m, "rstq_otlp_export_failures_total") >= 1
            assert total(m, "rstq_otlp_spans_total", outcome="failed") >= 1
            assert total(m, "rstq_otlp_spans_total", outcome="exported") == 0
    # Without OTLP export (the default: spans only kept in memory) there are no such series.
    async with running_server(tmp_path / "plain") as (server, _):
        assert "rstq_otlp_export_failures" not in (await scrape(server)).text


@pytest.mark.slow
async def test_suspension_counter_moves(tmp_path: Path) -> None:
    """A request-response deployment: a handler awaiting an awakeable suspends at once; it
    resumes (a new attempt) when the awakeable is resolved."""
    with HypercornProcess("tests.support.apps.trace_services:app") as svc:
        async with running_server(tmp_path, fake_invoker=False) as (server, _), \
                httpx.AsyncClient(base_url=admin_url(server), timeout=30) as admin, \
                httpx.AsyncClient(base_url=ingress_url(server), timeout=30) as ingress:
            r = await admin.post("/deployments", json={"uri": svc.url, "use_http_11": True})
            assert r.status_code == 201, r.text
            m = parse((await scrape(server)).text)
            assert total(m, "rstq_invoker_suspensions_total", service="Waiter") == 0
            r = await ingress.post("/Waiter/w1/wait/send")
            assert r.status_code == 202, r.text
            m = await scraped_until(
                server, lambda m: total(m, "rstq_invoker_suspensions_total") >= 1)
            assert total(m, "rstq_invoker_suspensions_total", service="Waiter") == 1
            assert total(m, "rstq_invocations", service="Waiter", status="suspended") == 1
            awk = (await ingress.post("/Waiter/w1/awakeable_id")).json()
            assert awk, "the handler ran and made its awakeable"
            r = await ingress.post(f"/restate/awakeables/{awk}/resolve", json="done")
            assert r.status_code == 202, r.text
            # wait (suspended once, then resumed) and awakeable_id (never suspends)
            done: Callable[[Samples], bool] = lambda m: total(  # noqa: E731
                m, "rstq_invocations_completed_total", service="Waiter") >= 2
            m = await scraped_until(server, done)
            assert total(m, "rstq_invocations_completed_total", service="Waiter",
                         status="succeeded") == 2
            assert total(m, "rstq_invoker_attempts_total", service="Waiter") == 3
            assert total(m, "rstq_invoker_suspensions_total", service="Waiter") == 1
