"""Self-tests of the oracle infrastructure: the restate_server fixture and the normalizer."""

from __future__ import annotations

import json
import socket
import urllib.request

import httpx
import pytest

from tests.support.harness import restate_server as rs
from tests.support.harness.restate_server import VERSION, RestateServer, install_dir
from tests.support.harness.rstq_server import RstqServer
from tests.support.harness.scenarios import Harness, Normalizer
from tests.support.harness.service_proc import ServiceProcess


def test_restate_server_fixture(restate_server: RestateServer) -> None:
    with urllib.request.urlopen(f"{restate_server.admin_url}/version", timeout=5) as r:
        info = json.loads(r.read())
    assert info["version"] == VERSION
    assert info["features"]["protocol_v7"] is False
    assert install_dir().is_dir() and "rstq-test" in str(install_dir()) or install_dir().exists()
    assert restate_server.startup_seconds is not None and restate_server.startup_seconds < 30


def test_register_and_call(restate_server: RestateServer) -> None:
    with ServiceProcess("tests.support.apps.compat_services:app", http2=False) as svc:
        dep = restate_server.register(svc.url, use_http_11=True)
        assert dep["id"].startswith("dp_1")
        assert {s["name"] for s in dep["services"]} >= {"Greeter", "Counter", "Signup"}
        r = httpx.post(f"{restate_server.ingress_url}/Greeter/greet", json="x", timeout=10)
        assert (r.status_code, r.json()) == (200, "Hello x!")


def test_normalizer_numbers_ids_by_first_appearance() -> None:
    a, b = "inv_1" + "a" * 33, "inv_1" + "B" * 33
    n = Normalizer("ns123")
    got = n({"x_restate_id": a, "body": {"invocationId": a, "other": f"'{b}' ns123-k"},
             "t": "2026-11-25T15:02:09.307000000Z", "bad": {"x_restate_id": "inv_2x"},
             "err": {"stacktrace": "/abs/path"}})
    assert got == {"x_restate_id": "<inv:1>",
                   "body": {"invocationId": "<inv:1>", "other": "'<inv:2>' <ns>-k"},
                   "t": "<ts>", "bad": {"x_restate_id": "<malformed x-restate-id: inv_2x>"},
                   "err": {"stacktrace": "<stacktrace>"}}


def test_obs_shape() -> None:
    resp = httpx.Response(202, headers={"content-type": "application/json",
                                        "x-restate-id": "inv_1" + "0" * 33},
                          content=b'{"status":"Accepted"}')
    assert Harness.obs(resp, "idempotency-expires") == {
        "status": 202, "content_type": "application/json", "body": {"status": "Accepted"},
        "x_restate_id": "inv_1" + "0" * 33, "error_source": None, "idempotency-expires": None}


def test_server_context_manager_cleans_up() -> None:
    rs = RestateServer()
    with rs:
        assert rs.proc is not None
        pid = rs.proc.pid
        base = rs.base_dir
    assert rs.proc is None
    assert base is not None and not base.exists()
    try:
        import os

        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def _held_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_servers_start_again_on_new_ports_when_one_was_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """free_port() races with other processes: a first start retries on fresh ports."""
    held, port = _held_port()
    try:
        ports = iter([port])
        real = rs.free_port
        monkeypatch.setattr(rs, "free_port", lambda: next(ports, None) or real())
        with RestateServer() as srv:
            assert port not in (srv.ingress_port, srv.admin_port, srv.node_port)
            with urllib.request.urlopen(f"{srv.admin_url}/health", timeout=5) as r:
                assert r.status == 200
        rq = RstqServer(partitions=1)
        rq.admin_port = port
        try:
            rq.start()
            assert rq.admin_port != port
            with urllib.request.urlopen(f"{rq.admin_url}/health", timeout=5) as r:
                assert r.status == 200
        finally:
            rq.stop()
            rq.cleanup()
    finally:
        held.close()
