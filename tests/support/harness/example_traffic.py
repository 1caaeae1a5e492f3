"""A live `rstq server` with the examples registered and some known traffic, for the CLI and
notebook tests: completed calls, a failed one, one suspended on an awakeable, one suspended on
a long timer, Greeter state.

The examples are registered over HTTP/1.1 (request-response mode): a handler that awaits
something not yet completed suspends at once, so "suspended" needs no inactivity timeout.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"accept": "application/json"})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` (truthy = done) with a bounded deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@dataclasses.dataclass
class ExampleEnv:
    server: RstqServer
    service: HypercornProcess
    deployment_id: str
    ids: dict[str, str]  # what -> invocation id: failed, awakeable, sleeping, paid

    def call(self, path: str, body: Any = None) -> tuple[int, Any]:
        return http("POST", self.server.ingress_url + path, body)

    def sql(self, query: str) -> list[dict[str, Any]]:
        status, doc = http("POST", self.server.admin_url + "/query", {"query": query})
        assert status == 200, doc
        return list(doc["rows"])

    def status(self, inv_id: str) -> str | None:
        rows = self.sql(f"SELECT status FROM sys_invocation WHERE id = '{inv_id}'")
        return str(rows[0]["status"]) if rows else None

    def send(self, path: str, body: Any) -> str:
        status, doc = self.call(path + "/send", body)
        assert status == 202, doc
        return str(doc["invocationId"])


def make_traffic(env: ExampleEnv) -> None:
    for _ in range(3):
        assert env.call("/Greeter/alice/greet")[0] == 200
    assert env.call("/Greeter/bob/greet")[0] == 200
    status, _ = env.call("/Payment/pay", {"user_id": "carol", "amount_cents": 700,
                                          "confirm_delay_ms": 10})
    assert status == 200
    env.ids["failed"] = env.send("/Payment/pay", {"user_id": "dave", "amount_cents": 0})
    env.ids["awakeable"] = env.send("/Payment/pay", {"user_id": "erin", "amount_cents": 1500,
                                                     "auto_confirm": False})
    env.ids["sleeping"] = env.send("/PaymentProvider/confirm", {
        "awakeable_id": "sign_none", "charge_id": "ch_x", "delay_ms": 3_600_000})
    for what, status in (("failed", "completed"), ("awakeable", "suspended"),
                         ("sleeping", "suspended")):
        wait_until(lambda i=env.ids[what], s=status: env.status(i) == s, what=f"{what}: {status}")


@contextmanager
def example_env(partitions: int = 4, traffic: bool = True) -> Iterator[ExampleEnv]:
    with RstqServer(partitions=partitions, fsync="none") as srv, \
            HypercornProcess("examples.app:app") as hc:
        reg = srv.register(hc.url, use_http_11=True)
        env = ExampleEnv(srv, hc, str(reg["id"]), {})
        if traffic:
            make_traffic(env)
        yield env
