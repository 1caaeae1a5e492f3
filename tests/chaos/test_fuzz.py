"""Bad input, fuzzed with Hypothesis (derandomized: the same inputs every run).

Surfaces: ingress HTTP (raw request bytes: methods, paths, ids, headers, bodies, delays), the
admin API, protocol frames from a malicious service endpoint, SQL text (`POST /query`) and
Postgres wire messages. Every input must get a response or a closed connection (never a hang,
never an internal error where the surface promises a 4xx), the server stays up, and a canary
counter keeps its value and still counts.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rstq.protocol import messages as pm
from rstq.protocol.framing import encode_frame, encode_header

from tests.support.apps.malicious_endpoint import Malicious
from tests.support.harness import chaos
from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer

N = chaos.scale(120, 10_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(chaos.scale(180, 3600))]
FUZZ = settings(max_examples=N, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), print_blob=False)
CANARY = 7


# --- the server, the canary and a malicious endpoint (tests/support/apps/malicious_endpoint.py) ---


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RstqServer, Malicious]]:
    hc = HypercornProcess(chaos.APP).start()
    bad = Malicious().start()
    srv = RstqServer(data_dir=tmp_path_factory.mktemp("fuzz") / "data",
                     extra_args=["--loop", "asyncio"]).start()
    try:
        srv.register(hc.url)
        srv.register(f"http://127.0.0.1:{bad.port}", use_http_11=True)
        with httpx.Client(timeout=30) as c:
            for i in range(CANARY):
                r = c.post(f"{srv.ingress_url}/Counter/canary/add", json=1,
                           headers={"idempotency-key": f"canary-{i}"})
                assert r.status_code == 200, r.text
        yield srv, bad
        srv.kill()
        chaos.record("fuzz", log_records_verified=chaos.verify_logs(srv.data_dir))
    finally:
        srv.cleanup()
        bad.stop()
        hc.kill()


def check_canary(srv: RstqServer, surface: str) -> None:
    assert srv.proc is not None and srv.proc.poll() is None, f"the server died fuzzing {surface}"
    with httpx.Client(timeout=30) as c:
        r = c.post(f"{srv.ingress_url}/Counter/canary/get")
        assert (r.status_code, r.json()) == (200, CANARY), r.text
        r = c.post(f"{srv.ingress_url}/Counter/canary2/add", json=1)  # and it still counts
        assert r.status_code == 200, r.text
        r = c.get(f"{srv.admin_url}/health")
        assert r.status_code == 200


# aiohttp 3.14.5's own 500, before any rstq code runs: its default Expect handler cannot encode
# a non-UTF-8 header value into its 417 answer (UnicodeEncodeError). Counted, not failed.
UPSTREAM_500 = b"Server got itself in trouble"
_NON_ASCII_EXPECT = re.compile(rb"\r\nexpect:[^\r]*[\x80-\xff]", re.IGNORECASE)


def upstream_500(req: bytes, resp: bytes) -> bool:
    return status_of(resp) == 500 and (UPSTREAM_500 in resp
                                       or _NON_ASCII_EXPECT.search(req) is not None)


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, half-close, read until the server closes. b"" = closed at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
        else:
            raise AssertionError(f"no close within {timeout}s for {request[:200]!r}")
        return bytes(out)


def status_of(resp: bytes) -> int | None:
    if not resp.startswith(b"HTTP/1."):
        return None
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


# --- strategies --------------------------------------------------------------------------------

NAMES = ["Counter", "Chain", "Sleeper", "Waiter", "Steps", "Fuzz", "restate", "awakeables",
         "a", "invocation", "workflow", "call", "send", "attach", "output", "health", "get",
         "add", "run", "start", "..", ".", "%2e%2e", "%00", "%ff", "etc", "passwd"]
ID_LIKE = st.one_of(st.just("inv_1"), st.just("sign_1"), st.just("prom_1")).flatmap(
    lambda p: st.text("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!%",
                      max_size=50).map(lambda t: p + t))
SEGMENT = st.one_of(st.sampled_from(NAMES), ID_LIKE,
                    st.text(st.characters(codec="utf-8", exclude_characters="\r\n /?#"),
                            max_size=20).map(lambda t: t.encode().decode("latin-1")))
PATH = st.lists(SEGMENT, min_size=0, max_size=8).map(
    lambda segs: "/" + "/".join(s for s in segs if s != "canary"))
QUERY = st.one_of(st.just(""), st.sampled_from(["?delay=", "?delay=10ms", "?delay=-1",
                                                "?delay=99999999999h", "?delay=PT1S",
                                                "?x=%ff&delay=1s"]),
                  st.text("=&%abcdelay0123456789", max_size=20).map(lambda t: "?" + t))
HEADER_NAMES = ["content-type", "idempotency-key", "idempotency-expires", "traceparent",
                "accept", "x-restate-limit-key", "authorization", "transfer-encoding",
                "content-length", "expect", "x-random"]
HEADER = st.tuples(st.sampled_from(HEADER_NAMES),
                   st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60))
BODY = st.one_of(st.binary(max_size=300), st.sampled_from([b"1", b"{}", b'"x"', b"null",
                                                           b'{"key": "k", "ms": 1}']))
METHOD = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "BREW",
                          "get", "POST /x"])


def _request(method: str, target: str, headers: list[tuple[str, str]], body: bytes,
             port_host: str = "127.0.0.1") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {port_host}\r\n"
    for k, v in headers:
        if k == "content-length" and not v.strip().isdigit():
            continue  # a wrong length is fuzzed via raw bytes below
        head += f"{k}: {v}\r\n"
    if not any(k == "content-length" for k, _ in headers):
        head += f"content-length: {len(body)}\r\n"
    head += "connection: close\r\n\r\n"
    return head.encode("latin-1") + body


HTTP_REQUEST = st.one_of(
    st.tuples(METHOD, PATH, QUERY, st.lists(HEADER, max_size=5), BODY).map(
        lambda t: _request(t[0], t[1] + t[2], t[3], t[4])),
    st.binary(min_size=1, max_size=400),  # not HTTP at all
    st.tuples(METHOD, PATH).map(lambda t: f"{t[0]} {t[1]} HTTP/1.1\r\nHost: x\r\n"
                                          f"content-length: 999999\r\n\r\nshort".encode()),
)


# --- ingress -----------------------------------------------------------------------------------


def test_fuzz_ingress_http(env: tuple[RstqServer, Malicious]) -> None:
    srv, _ = env
    seen = {"n": 0, "closed": 0, "aiohttp_500": 0}

    @FUZZ
    @given(HTTP_REQUEST)
    def case(req: bytes) -> None:
        seen["n"] += 1
        resp = raw_http(srv.ingress_port, req)
        status = status_of(resp)
        if status is None:
            seen["closed"] += 1  # closed without an answer: allowed for garbage
            return
        if upstream_500(req, resp):
            seen["aiohttp_500"] += 1  # see UPSTREAM_500
            return
        assert status != 500, (req[:300], resp[:300])

    case()
    check_canary(srv, "ingress")
    chaos.record("fuzz", ingress_inputs=seen["n"], ingress_closed=seen["closed"],
                 ingress_aiohttp_500=seen["aiohttp_500"])


# --- admin -------------------------------------------------------------------------------------

ADMIN_SEGMENTS = st.one_of(
    st.sampled_from(["deployments", "services", "invocations", "handlers", "state", "query",
                     "v4", "health", "version", "openapi", "cancel", "kill", "purge", "pause",
                     "resume", "Counter", "Fuzz", "dp_1", "..", "%2e%2e", "etc"]),
    ID_LIKE, st.text(max_size=12).filter(lambda t: "canary" not in t))
ADMIN_BODY = st.one_of(
    BODY,
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda children: st.lists(children, max_size=4)
                 | st.dictionaries(st.sampled_from(["uri", "force", "use_http_11",
                                                    "object_key", "new_state", "version",
                                                    "query", "additional_headers", "x"]),
                                   children, max_size=4),
                 max_leaves=10).map(lambda d: json.dumps(d).encode()),
)


def _admin_body_safe(body: bytes) -> bool:
    # Never touch the canary, never make discovery dial somewhere real.
    return b"canary" not in body and b"://" not in body


def test_fuzz_admin_api(env: tuple[RstqServer, Malicious]) -> None:
    srv, _ = env
    seen = {"n": 0, "5xx": 0, "aiohttp_500": 0}

    @FUZZ
    @given(METHOD, st.lists(ADMIN_SEGMENTS, max_size=5), st.lists(HEADER, max_size=3),
           ADMIN_BODY.filter(_admin_body_safe))
    def case(method: str, segs: list[str], headers: list[tuple[str, str]], body: bytes) -> None:
        seen["n"] += 1
        path = "/" + "/".join(s.encode().decode("latin-1") for s in segs
                              if "\r" not in s and "\n" not in s and " " not in s)
        if any(k == "content-type" for k, _ in headers) or seen["n"] % 2:
            headers = [*headers, ("content-type", "application/json")]
        req = _request(method, path, headers, body)
        resp = raw_http(srv.admin_port, req)
        status = status_of(resp)
        if status is None:
            return
        if upstream_500(req, resp):
            seen["aiohttp_500"] += 1  # see UPSTREAM_500
            return
        if status >= 500:
            seen["5xx"] += 1
            # restate answers these with 500 too: a failed discovery (META0003) and a failed
            # query (Datafusion error); anything else at 500 is a bug.
            assert (b"META0003" in resp or b"Datafusion error" in resp
                    or b"discover" in resp.lower()), (method, path, headers, body[:200], resp[:500])

    case()
    check_canary(srv, "admin")
    chaos.record("fuzz", admin_inputs=seen["n"], admin_5xx_expected=seen["5xx"],
                 admin_aiohttp_500=seen["aiohttp_500"])


# --- protocol frames from a malicious endpoint ------------------------------------------------

# Suspension is left out: a suspended invocation waits (legitimately) for ever.
NO_WAIT = {pm.EndMessage.TYPE, pm.SuspensionMessage.TYPE}
TYPES = sorted(set(pm.MESSAGE_TYPES) - NO_WAIT)
VALID = st.one_of(
    st.builds(lambda k, v: encode_frame(pm.SetStateCommandMessage(
        key=k, value=pm.Value(content=v))), st.binary(max_size=20), st.binary(max_size=50)),
    st.builds(lambda v: encode_frame(pm.OutputCommandMessage(value=pm.Value(content=v))),
              st.binary(max_size=50)),
    st.builds(lambda c, m: encode_frame(pm.OutputCommandMessage(
        failure=pm.Failure(code=c, message=m))), st.integers(0, 2**32 - 1), st.text(max_size=30)),
    st.builds(lambda i, t: encode_frame(pm.SleepCommandMessage(
        wake_up_time=t, result_completion_id=i)), st.integers(0, 2**32 - 1),
        st.integers(0, 2**64 - 1)),
    st.builds(lambda s, h, k: encode_frame(pm.CallCommandMessage(
        service_name=s, handler_name=h, key=k, result_completion_id=1,
        invocation_id_notification_idx=2)),
        st.text(max_size=10), st.text(max_size=10), st.text(max_size=10)),
    st.builds(lambda c, m: encode_frame(pm.ErrorMessage(code=c, message=m)),
              st.integers(0, 2**16), st.text(max_size=30)),
)
RANDOM_FRAME = st.builds(lambda t, f, p: encode_header(t, len(p), f) + p,
                         st.one_of(st.sampled_from(TYPES),
                                   st.integers(0, 0xFFFF).filter(lambda t: t not in NO_WAIT)),
                         st.integers(0, 0xFFFF), st.binary(max_size=80))
FRAMES = st.one_of(
    st.lists(st.one_of(VALID, RANDOM_FRAME), max_size=5).map(
        lambda fs: b"".join(fs) + encode_frame(pm.EndMessage())),
    st.lists(st.one_of(VALID, RANDOM_FRAME), max_size=5).map(b"".join),
    st.binary(max_size=200),
    st.builds(lambda n: encode_header(pm.OutputCommandMessage.TYPE, n), st.integers(0, 2**32 - 1)),
)


def test_fuzz_protocol_frames(env: tuple[RstqServer, Malicious]) -> None:
    srv, bad = env
    seen = {"n": 0, "ok": 0, "waiting": 0}
    with httpx.Client(timeout=30) as c:
        @FUZZ
        @given(FRAMES)
        def case(body: bytes) -> None:
            seen["n"] += 1
            bad.bodies.put(body)
            try:  # one attempt (max attempts 1, then KILL): an answer comes at once
                r = c.post(f"{srv.ingress_url}/Fuzz/k{seen['n'] % 7}/run", timeout=5)
            except httpx.TimeoutException:  # e.g. an Error frame saying PAUSE: it waits
                seen["waiting"] += 1
                return
            assert r.status_code != 500 or "internal error in the invoker" not in r.text, \
                (body[:300], r.text)
            seen["ok"] += r.status_code == 200

        case()
    assert seen["waiting"] <= seen["n"] // 20 + 2, seen
    check_canary(srv, "protocol frames")
    chaos.record("fuzz", protocol_frame_inputs=seen["n"], protocol_completed_ok=seen["ok"],
                 protocol_left_waiting=seen["waiting"])


# --- SQL ---------------------------------------------------------------------------------------

TABLES = ["sys_invocation", "sys_status", "sys_journal", "state", "sys_inbox", "sys_service",
          "sys_deployment", "sys_timer", "sys_promise", "sys_idempotency", "sys_partition",
          "nope", "pg_catalog.pg_tables", "information_schema.tables"]
TOKENS = ["SELECT", "*", "count(*)", "FROM", "WHERE", "id", "=", "'x'", "1", "LIMIT", "ORDER BY",
          "GROUP BY", ",", "(", ")", "AND", "OR", "NOT", "NULL", "value_utf8", "::int",
          "$1", ";", "--", "/*", "INSERT INTO", "VALUES", "DROP TABLE", "CREATE TABLE", "COPY",
          "TO", "'/tmp/rstq-fuzz-out'", "read_csv('/etc/passwd')", "EXPLAIN", "SET", "UNION",
          "'\x00'", "999999999999999999999999"]
SQL = st.one_of(
    st.tuples(st.sampled_from(["SELECT * FROM", "SELECT count(*) FROM", "EXPLAIN SELECT 1 FROM",
                               "DELETE FROM", "INSERT INTO", "DROP TABLE", "SELECT id FROM"]),
              st.sampled_from(TABLES), st.lists(st.sampled_from(TOKENS), max_size=8)).map(
        lambda t: f"{t[0]} {t[1]} {' '.join(t[2])} LIMIT 5"),
    st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join),
    st.text(max_size=80),
)


def test_fuzz_sql(env: tuple[RstqServer, Malicious]) -> None:
    srv, _ = env
    seen = {"n": 0, "ok": 0}
    out = Path("/tmp/rstq-fuzz-out")
    with httpx.Client(timeout=60) as c:
        @FUZZ
        @given(SQL, st.sampled_from(["application/json", "application/vnd.apache.arrow.stream"]))
        def case(sql: str, accept: str) -> None:
            seen["n"] += 1
            r = c.post(f"{srv.admin_url}/query", json={"query": sql}, headers={"accept": accept})
            assert r.status_code in (200, 400, 500), (sql, r.status_code, r.text[:300])
            if r.status_code == 200:
                seen["ok"] += 1
                verb = sql.strip().split(maxsplit=1)[0].upper() if sql.strip() else ""
                assert verb not in ("INSERT", "DROP", "CREATE", "DELETE", "UPDATE", "COPY"), sql
            else:
                assert r.json()["message"], r.text

        case()
    assert not out.exists(), "a query wrote a file"
    check_canary(srv, "sql")
    chaos.record("fuzz", sql_inputs=seen["n"], sql_answered_200=seen["ok"])


# --- Postgres wire -----------------------------------------------------------------------------


def _pg_msg(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("!I", len(payload) + 4) + payload


def _startup(params: dict[str, str]) -> bytes:
    body = struct.pack("!I", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


PG_TAGS = [b"Q", b"P", b"B", b"E", b"D", b"S", b"H", b"C", b"X", b"p", b"F", b"d", b"c", b"f",
           b"\0", b"\xff"]
PG_MESSAGE = st.one_of(
    st.tuples(st.sampled_from(PG_TAGS), st.binary(max_size=60)).map(lambda t: _pg_msg(*t)),
    SQL.map(lambda q: _pg_msg(b"Q", q.encode() + b"\0")),
    st.tuples(st.text(max_size=10), SQL).map(
        lambda t: _pg_msg(b"P", t[0].encode() + b"\0" + t[1].encode() + b"\0\0\0")),
    st.builds(lambda n: b"Q" + struct.pack("!I", n), st.integers(0, 2**32 - 1)),  # bad lengths
)
PG_STREAM = st.one_of(
    st.tuples(st.dictionaries(st.sampled_from(["user", "database", "application_name",
                                               "options", "client_encoding", "x"]),
                              st.text("abcdefgh_-=", max_size=10), max_size=4),
              st.lists(PG_MESSAGE, max_size=5)).map(
        lambda t: _startup({"user": "rstq", **t[0]}) + b"".join(t[1])),
    st.binary(max_size=120),  # garbage from the first byte
    st.builds(lambda n: struct.pack("!II", n, 80877103), st.integers(0, 2**32 - 1)),  # SSL-ish
)


def test_fuzz_pgwire(env: tuple[RstqServer, Malicious]) -> None:
    srv, _ = env
    seen = {"n": 0, "answered": 0}

    @FUZZ
    @given(PG_STREAM)
    def case(stream: bytes) -> None:
        seen["n"] += 1
        resp = raw_http(srv.pgwire_port, stream)
        seen["answered"] += bool(resp)

    case()
    check_canary(srv, "pgwire")
    chaos.record("fuzz", pgwire_inputs=seen["n"], pgwire_answered=seen["answered"])
