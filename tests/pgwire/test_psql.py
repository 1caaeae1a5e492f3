"""The real psql (Debian's postgresql-client 15) against the wire server: the seed's queries and
the backslash commands whose catalog queries `pgwire/catalog.py` answers."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from rstq.pgwire.server import PgWireServer

PSQL = shutil.which("psql")
pytestmark = pytest.mark.skipif(PSQL is None, reason="psql not installed (.ci/run installs it)")


def psql(server: PgWireServer, *commands: str, check: bool = True,
         extra: tuple[str, ...] = (), env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    assert PSQL is not None
    args = [PSQL, "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", "rstq", "rstq",
            "-v", "ON_ERROR_STOP=1", *extra]
    for c in commands:
        args += ["-c", c]
    full_env = {**os.environ, "PGCONNECT_TIMEOUT": "5", **(env or {})}
    full_env.pop("PGPASSWORD", None) if env is None else None
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, env=full_env)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_psql_version_pinned() -> None:
    out = subprocess.run([PSQL or "psql", "--version"], capture_output=True, text=True).stdout
    assert " 15." in out, f"catalog shapes are pinned to psql 15: {out}"


def test_seed_status_query(server: PgWireServer) -> None:
    out = psql(server, "SELECT service, method, id, status FROM sys_status").stdout
    assert out.splitlines()[0].split("|")[0].strip() == "service"
    assert "Greeter | greet  | inv_1 | completed" in out
    assert "Caller  | chain  | inv_2 | suspended" in out
    assert "(3 rows)" in out


def test_seed_state_query(server: PgWireServer) -> None:
    out = psql(server, "SELECT service_name, service_key, key, value_utf8 FROM state "
                       "WHERE service_name IN ('Greeter','Caller') ORDER BY service_key").stdout
    assert "Greeter      | alice       | count     | 3" in out
    assert 'Caller       | erin        | awakeable | "sign_1"' in out
    assert "(3 rows)" in out


def test_unaligned_types(server: PgWireServer) -> None:
    out = psql(server, "SELECT id, retry_count, created_at, duration, tags, ok, cost "
                       "FROM sys_invocation ORDER BY id", extra=("-At",)).stdout
    assert out.splitlines() == [
        "inv_1|0|2026-11-25 12:00:00+00|00:00:01.5|{a,\"b c\"}|t|1.5",
        "inv_2|2|2026-11-25 12:00:01.0005+00||{}|f|-0.25",
        "inv_3|||1 day 00:00:03|||",
    ]


def test_dt(server: PgWireServer) -> None:
    out = psql(server, r"\dt").stdout
    assert "List of relations" in out
    for name in ("state", "sys_invocation", "sys_status"):
        assert f" public | {name}" in out
    assert "(3 rows)" in out
    assert "sys_status" in psql(server, r"\dt sys_*").stdout
    assert " state " not in psql(server, r"\dt sys_*").stdout


def test_d_table(server: PgWireServer) -> None:
    out = psql(server, r"\d state").stdout
    assert 'Table "public.state"' in out
    assert " service_name | text " in out
    assert " value        | bytea " in out
    assert " value_length | bigint " in out
    inv = psql(server, r"\d sys_invocation").stdout
    assert " created_at          | timestamp with time zone |" in inv
    assert " id                  | text                     |           | not null |" in inv
    assert " tags                | text[] " in inv
    plus = psql(server, r"\d+ state").stdout
    assert "The value's bytes" in plus  # column docs from the TableDef
    missing = psql(server, r"\d nosuch", check=False)
    assert 'Did not find any relation named "nosuch"' in missing.stderr


def test_d_lists_relations(server: PgWireServer) -> None:
    out = psql(server, r"\d").stdout
    assert " public | sys_status     | table | rstq" in out


def test_l_and_dn(server: PgWireServer) -> None:
    out = psql(server, r"\l").stdout
    assert "List of databases" in out
    assert " rstq | rstq  | UTF8 " in out
    out = psql(server, r"\dn").stdout
    assert "List of schemas" in out
    assert " public | rstq" in out


def test_expanded(server: PgWireServer) -> None:
    out = psql(server, r"\x", "SELECT service, method FROM sys_status WHERE id = 'inv_2'").stdout
    assert "Expanded display is on." in out
    assert "-[ RECORD 1 ]-" in out
    assert "service | Caller" in out


def test_session_commands(server: PgWireServer) -> None:
    out = psql(server, "SHOW server_version", "SET application_name = 'x'",
               "SHOW application_name", "SELECT current_database(), current_user",
               extra=("-At",)).stdout
    assert out.splitlines() == ["16.4", "SET", "x", "rstq|rstq"]
    out = psql(server, "BEGIN", "SELECT 1", "COMMIT", extra=("-At",)).stdout
    assert out.splitlines() == ["BEGIN", "1", "COMMIT"]


def test_errors_carry_sqlstate(server: PgWireServer) -> None:
    r = psql(server, "SELEC 1", check=False, extra=("-v", "VERBOSITY=verbose"))
    assert r.returncode != 0
    assert "ERROR:  42601:" in r.stderr
    r = psql(server, "SELECT * FROM nosuch", check=False, extra=("-v", "VERBOSITY=verbose"))
    assert "ERROR:  42P01:" in r.stderr
    r = psql(server, "INSERT INTO state VALUES ('a')", check=False,
             extra=("-v", "VERBOSITY=verbose"))
    assert "ERROR:  25006: cannot execute INSERT in a read-only transaction" in r.stderr
    r = psql(server, "CREATE TABLE t (a int)", check=False, extra=("-v", "VERBOSITY=verbose"))
    assert "ERROR:  25006:" in r.stderr
    # and the server is still there
    assert psql(server, "SELECT 1 AS one", extra=("-At",)).stdout.strip() == "1"
