"""Security: loopback binds by default, the admin token, read-only SQL, size and queue limits,
no filesystem access from request data, pinned dependencies."""

from __future__ import annotations

import errno
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rstq.app import AppConfig
from rstq.cli.main import main as rstq_main
from rstq.core.server import ServerConfig
from rstq.protocol import messages as pm
from rstq.protocol.framing import encode_frame

from tests.support.apps.malicious_endpoint import Malicious
from tests.support.harness import chaos
from tests.support.harness.rstq_server import RstqServer

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
END = encode_frame(pm.EndMessage())


def test_listeners_bind_loopback_by_default() -> None:
    server_cmd = rstq_main.commands["server"]  # type: ignore[attr-defined]
    defaults = {p.name: p.default for p in server_cmd.params}
    for name in ("ingress_bind", "admin_bind", "pgwire_bind"):
        assert str(defaults[name]).startswith("127.0.0.1:"), (name, defaults[name])
    cfg, around = ServerConfig(), AppConfig()
    for bind in (cfg.ingress_bind, cfg.admin_bind, around.pgwire_bind):
        assert bind is not None and bind.startswith("127.0.0.1:"), bind


def test_every_dependency_is_pinned() -> None:
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = list(doc["project"]["dependencies"])
    for extra in doc["project"].get("optional-dependencies", {}).values():
        deps += extra
    deps += doc["build-system"]["requires"]
    pinned = re.compile(r"^[A-Za-z0-9_.\-]+(\[[A-Za-z0-9_,\-]+\])?==[A-Za-z0-9_.+!\-]+\s*(;.*)?$")
    loose = [d for d in deps if not pinned.match(d.strip())]
    assert not loose, f"not pinned with ==: {loose}"


# --- admin token (RSTQ_ADMIN_TOKEN) ------------------------------------------------------------


def test_admin_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    monkeypatch.setenv("RSTQ_ADMIN_TOKEN", "t0ps3cret")
    srv = RstqServer(data_dir=tmp_path / "data", extra_args=["--loop", "asyncio"]).start()
    refused = 0
    try:
        with httpx.Client(base_url=srv.admin_url, timeout=30) as c:
            assert c.get("/health").status_code == 200  # open, for probes
            for method, path, body in [("GET", "/services", None), ("GET", "/deployments", None),
                                       ("POST", "/deployments", {"uri": "http://127.0.0.1:1"}),
                                       ("POST", "/query", {"query": "SELECT 1"}),
                                       ("PATCH", "/invocations/inv_1x/kill", None),
                                       ("GET", "/version", None)]:
                for auth in (None, "Bearer wrong", "Bearer t0ps3cret2", "Bearer", "t0ps3cret",
                             "Basic dDBwczNjcmV0", "bearer t0ps3cret"):
                    headers = {"authorization": auth} if auth is not None else {}
                    r = c.request(method, path, json=body, headers=headers,
                                  params={"token": "t0ps3cret"})
                    assert r.status_code == 401, (method, path, auth, r.status_code)
                    refused += 1
            ok = c.get("/services", headers={"authorization": "Bearer t0ps3cret"})
            assert ok.status_code == 200, ok.text
    finally:
        srv.cleanup()
    chaos.add("security", "admin_requests_refused", refused)


# --- limits, SQL, filesystem (one server with small limits and a malicious endpoint) ----------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RstqServer, Malicious]]:
    bad = Malicious().start()
    srv = RstqServer(data_dir=tmp_path_factory.mktemp("limits") / "data",
                     extra_args=["--loop", "asyncio", "--max-body", "2000",
                                 "--max-journal-entry", "1000", "--max-state-value", "100",
                                 "--max-inbox", "3"]).start()
    try:
        srv.register(f"http://127.0.0.1:{bad.port}", use_http_11=True)
        yield srv, bad
    finally:
        srv.cleanup()
        bad.stop()


def _output(n: int) -> bytes:
    return encode_frame(pm.OutputCommandMessage(value=pm.Value(content=b"x" * n)))


def test_request_body_limit(limited: tuple[RstqServer, Malicious]) -> None:
    srv, _ = limited
    r = httpx.post(f"{srv.ingress_url}/Fuzz/body/run", content=b"1" * 2001)
    assert r.status_code == 413, r.text
    assert "length limit exceeded" in r.json()["message"]


def test_journal_entry_limit(limited: tuple[RstqServer, Malicious]) -> None:
    srv, bad = limited
    bad.bodies.put(_output(2000) + END)
    r = httpx.post(f"{srv.ingress_url}/Fuzz/big/run", timeout=30)
    assert r.status_code == 571, r.text
    assert "too large" in r.json()["message"] and "1000" in r.json()["message"], r.text
    bad.bodies.put(_output(10) + END)  # under the limit: fine
    r = httpx.post(f"{srv.ingress_url}/Fuzz/big/run", timeout=30)
    assert r.status_code == 200, r.text


def test_state_value_limit(limited: tuple[RstqServer, Malicious]) -> None:
    srv, bad = limited
    big = encode_frame(pm.SetStateCommandMessage(key=b"k", value=pm.Value(content=b"v" * 101)))
    bad.bodies.put(big + _output(1) + END)
    r = httpx.post(f"{srv.ingress_url}/Fuzz/state/run", timeout=30)
    assert r.status_code == 571, r.text
    assert "exceeds the state value limit of 100 bytes" in r.json()["message"], r.text


def test_inbox_limit(limited: tuple[RstqServer, Malicious]) -> None:
    srv, bad = limited
    # The first invocation suspends on a completion that never comes: it keeps the key locked.
    bad.bodies.put(encode_frame(pm.SuspensionMessage(waiting_completions=(99,))))
    with httpx.Client(timeout=30) as c:
        statuses = [c.post(f"{srv.ingress_url}/Fuzz/busy/run/send").status_code
                    for _ in range(6)]
        assert statuses == [202, 202, 202, 202, 429, 429], statuses
        r = c.post(f"{srv.ingress_url}/Fuzz/busy/run/send")
        assert r.status_code == 429 and "inbox full" in r.json()["message"], r.text
        assert c.post(f"{srv.ingress_url}/Fuzz/other/run/send").status_code == 202


def test_sql_is_read_only(limited: tuple[RstqServer, Malicious], tmp_path: Path) -> None:
    srv, _ = limited
    target = tmp_path / "out"
    target.mkdir()
    statements = [
        "INSERT INTO state VALUES (1)", "DELETE FROM sys_invocation",
        "UPDATE state SET value = NULL", "DROP TABLE state", "CREATE TABLE t (a INT)",
        "CREATE VIEW v AS SELECT 1", f"COPY (SELECT 1) TO '{target}/x.csv'",
        f"CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '{target}/'",
        "SET datafusion.execution.batch_size = 1", "CREATE FUNCTION f() RETURNS INT",
    ]
    with httpx.Client(timeout=30) as c:
        for sql in statements:
            r = c.post(f"{srv.admin_url}/query", json={"query": sql},
                       headers={"accept": "application/json"})
            assert r.status_code >= 400, (sql, r.status_code, r.text)
            assert r.json()["message"], r.text
    assert list(target.iterdir()) == []
    chaos.add("security", "write_statements_refused", len(statements))


def _fifo_untouched(fifo: Path) -> None:
    """Nobody has the FIFO open for reading (ENXIO) and nobody wrote into it."""
    with pytest.raises(OSError) as e:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert e.value.errno == errno.ENXIO, "something opened the FIFO for reading"
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(fd, 10) == b"", "something wrote into the FIFO"
    finally:
        os.close(fd)


def test_no_request_path_reaches_the_filesystem(limited: tuple[RstqServer, Malicious],
                                                tmp_path: Path) -> None:
    """Request data naming a file (a FIFO: opening it would block) never opens it."""
    srv, _ = limited
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)
    rel = "/".join([".."] * 12) + str(fifo)
    enc = rel.replace(".", "%2e").replace("/", "%2f")
    with httpx.Client(timeout=10) as c:
        for path in (f"/{rel}", f"/{enc}", f"/restate/invocation/{enc}/output",
                     f"/Fuzz/{enc}/run/send", f"/restate/awakeables/{enc}/resolve"):
            r = c.request("GET", srv.ingress_url + path)
            assert 400 <= r.status_code < 500 or r.status_code == 202, (path, r.status_code)
            _fifo_untouched(fifo)
        for body in ({"uri": f"file://{fifo}"}, {"uri": str(fifo)},
                     {"uri": f"http://127.0.0.1:1/{rel}"}):
            r = c.post(srv.admin_url + "/deployments", json=body)
            assert r.status_code >= 400, (body, r.status_code)
            _fifo_untouched(fifo)
        for sql in (f"SELECT * FROM '{fifo}'", f"SELECT * FROM read_csv('{fifo}')",
                    f"SELECT * FROM read_parquet('{fifo}')",
                    f"CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{fifo}'"):
            r = c.post(srv.admin_url + "/query", json={"query": sql})
            assert r.status_code >= 400, (sql, r.status_code, r.text)
            _fifo_untouched(fifo)
    chaos.add("security", "filesystem_probes_refused", 12)
