"""`GET /metrics` on the admin port: Prometheus text exposition, parsed with prometheus_client."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rstq.core.invoker import AttemptError, Invoker
from rstq.core.server import Server

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
    import asyncio

    await asyncio.sleep(0.05)
