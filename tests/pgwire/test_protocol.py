"""Raw-socket protocol checks (garbage, SSL, cancel keys, startup errors), SCRAM password
authentication with real clients, and sans-IO unit checks of the codec, SQL helpers and types."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess

import psycopg
import pyarrow as pa
import pytest
from rstq.pgwire import codec, sql, types
from rstq.pgwire.server import PgWireServer
from rstq.pgwire.session import WireConfig

from tests.pgwire.engine import TestEngine


def _recv_all(s: socket.socket, timeout: float = 2.0) -> bytes:
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def _startup(user: str = "rstq", db: str = "rstq") -> bytes:
    body = struct.pack("!i", codec.PROTOCOL_V3) + b"user\0" + user.encode() + b"\0database\0" \
        + db.encode() + b"\0\0"
    return struct.pack("!i", len(body) + 4) + body


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x00\x00\x08\x00\x00\x00\x00",
    b"\xff" * 64,
    b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00",
])
def test_garbage_gets_an_error_and_server_survives(server: PgWireServer, dsn: str,
                                                   garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(garbage)
        reply = _recv_all(s)
    assert reply == b"" or reply.startswith(b"E"), reply
    if reply:
        assert b"C08P01\0" in reply and b"SFATAL\0" in reply
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_garbage_after_startup(server: PgWireServer, dsn: str) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(_startup())
        s.settimeout(2)
        assert s.recv(65536).endswith(codec.ready_for_query("I"))
        s.sendall(b"Q\xff\xff\xff\xffjunk")  # impossible length
        reply = _recv_all(s)
    assert b"C08P01\0" in reply
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(_startup())
        s.settimeout(2)
        s.recv(65536)
        s.sendall(codec.msg(b"Q", b"SELECT 1\0") + b"Z\x00\x00\x00\x04")  # unknown message
        reply = _recv_all(s, 1.0)
    assert b"T" in reply and b"C08P01\0" in reply  # the query ran, then a protocol error
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_ssl_request_is_refused_then_plain_startup(server: PgWireServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(struct.pack("!ii", 8, codec.SSL_REQUEST))
        s.settimeout(2)
        assert s.recv(1) == b"N"
        s.sendall(_startup())
        data = s.recv(65536)
    assert data.startswith(codec.auth_ok())
    for name in (b"server_version\x0016.4", b"client_encoding\x00UTF8", b"DateStyle\x00ISO, MDY",
                 b"integer_datetimes\x00on", b"standard_conforming_strings\x00on",
                 b"TimeZone\x00UTC"):
        assert name in data
    assert b"K\x00\x00\x00\x0c" in data


def test_psycopg_with_sslmode_prefer(dsn: str) -> None:
    with psycopg.connect(dsn + " sslmode=prefer") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_any_database_name_without_credentials(server: PgWireServer) -> None:
    # psql defaults the database to the OS user's name: with no credentials configured, any
    # name reaches the one database (an unknown name is refused when credentials are set:
    # test_unknown_database_with_credentials)
    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=root dbname=nope") as c:
        assert c.execute("SELECT current_database(), current_user").fetchone() == \
            ("rstq", "root")


def test_cancel_with_wrong_key_is_ignored(server: PgWireServer, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        pid = c.info.backend_pid
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(struct.pack("!iiii", 16, codec.CANCEL_REQUEST, pid, 12345))
            assert _recv_all(s, 1.0) == b""
        assert c.execute("SELECT pg_sleep(0.2)").fetchone() == (None,)


def test_pipelined_extended_protocol_with_row_limit(server: PgWireServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(_startup())
        s.settimeout(2)
        s.recv(65536)
        parse = codec.msg(b"P", b"s1\0SELECT id FROM sys_status ORDER BY id\0\0\0")
        bind = codec.msg(b"B", b"p1\0s1\0\0\0\0\0\0\0")
        describe = codec.msg(b"D", b"Pp1\0")
        exe = codec.msg(b"E", b"p1\0" + struct.pack("!i", 2))
        s.sendall(parse + bind + describe + exe + exe + codec.msg(b"S"))
        reply = b""
        while not reply.endswith(codec.ready_for_query("I")):
            reply += s.recv(65536)
    assert reply.count(b"D\x00\x00\x00") == 3
    assert b"s\x00\x00\x00\x04" in reply  # PortalSuspended after the first two rows
    assert b"SELECT 1\0" in reply


# --- SCRAM ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pw_server() -> object:
    srv = PgWireServer(TestEngine(), "127.0.0.1:0",
                       config=WireConfig(password="s3cret pw", user="alice"))
    srv.start()
    yield srv
    srv.stop()


def test_scram_psycopg(pw_server: PgWireServer) -> None:
    base = f"host=127.0.0.1 port={pw_server.port} dbname=rstq user=alice"
    with psycopg.connect(base + " password='s3cret pw'") as c:
        assert c.execute("SELECT current_user").fetchone() == ("alice",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(base + " password=wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"host=127.0.0.1 port={pw_server.port} dbname=rstq user=bob "
                        "password='s3cret pw'")


def test_unknown_database_with_credentials(pw_server: PgWireServer) -> None:
    with pytest.raises(psycopg.OperationalError, match='database "nope" does not exist') as e:
        psycopg.connect(f"host=127.0.0.1 port={pw_server.port} dbname=nope user=alice "
                        "password='s3cret pw'")
    assert 'connect to "rstq" or "postgres"' in str(e.value)
    with psycopg.connect(f"host=127.0.0.1 port={pw_server.port} dbname=postgres user=alice "
                         "password='s3cret pw'") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


async def test_scram_asyncpg(pw_server: PgWireServer) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    c = await asyncpg.connect(host="127.0.0.1", port=pw_server.port, user="alice",
                              password="s3cret pw", database="rstq")
    assert await c.fetchval("SELECT count(*) FROM sys_status") == 3
    await c.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host="127.0.0.1", port=pw_server.port, user="alice",
                              password="nope", database="rstq")


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
def test_scram_psql(pw_server: PgWireServer) -> None:
    r = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(pw_server.port), "-U", "alice",
                        "rstq", "-At", "-c", "SELECT 1"], capture_output=True, text=True,
                       env={**os.environ, "PGPASSWORD": "s3cret pw"}, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


# --- sans-IO units ------------------------------------------------------------------------------


def test_parser_incremental() -> None:
    p = codec.Parser()
    data = _startup() + codec.msg(b"Q", b"SELECT 1\0") + codec.msg(b"X")
    msgs = []
    for i in range(len(data)):
        msgs += p.feed(data[i:i + 1])
    assert [type(x).__name__ for x in msgs] == ["Startup", "Query", "Terminate"]
    assert isinstance(msgs[1], codec.Query) and msgs[1].sql == "SELECT 1"


def test_split_and_classify() -> None:
    assert sql.split_statements("SELECT ';'; -- c;\nSELECT 2;;") == \
        ["SELECT ';'", "-- c;\nSELECT 2"]
    assert sql.write_command("insert into x values (1)") == "INSERT"
    assert sql.write_command("WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a") == "DELETE"
    assert sql.write_command("SELECT 'insert' FROM t") is None
    assert sql.write_command("/* hi */ DROP TABLE t") == "DROP"


def test_infer_param_types() -> None:
    cols = {"retry_count": types.INT8, "created_at": types.TIMESTAMPTZ, "service": types.TEXT}
    got = sql.infer_param_types(
        "SELECT * FROM t WHERE retry_count > $1 AND $2 <= created_at AND service = $3 "
        "AND x = $4::int4 LIMIT $5", cols)
    assert got == [types.INT8, types.TIMESTAMPTZ, types.TEXT, types.INT4, types.INT8]
    assert sql.infer_param_types("SELECT $1", cols, [types.BOOL]) == [types.BOOL]


def test_bulk_encoding_matches_per_row() -> None:
    t = pa.table({"a": pa.array([1, None, -3], pa.int64()), "b": ["x", None, "ü"],
                  "c": pa.array([0.5, None, float("-inf")]), "d": [True, None, False]})
    oids = [types.pg_type_of(c.type) for c in t.columns]
    for fmt in (0, 1):
        bulk = bytes(types.encode_data_rows(t.columns, oids, [fmt] * 4))
        rows = []
        for i in range(t.num_rows):
            vals: list[bytes | None] = []
            for col, oid in zip(t.columns, oids, strict=True):
                v = col[i].as_py()
                vals.append(None if v is None else (types.scalar_text(v, oid).encode()
                                                    if fmt == 0 else types.scalar_binary(v, oid)))
            rows.append(codec.data_row(vals))
        assert bulk == b"".join(rows)
