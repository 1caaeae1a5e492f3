"""The wire endpoint as the composition root plugs it in (AppConfig.pgwire_bind), over the real
query engine."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pandas as pd
import psycopg
import pytest
from psycopg import errors
from rstq.app import App, AppConfig, build
from rstq.core.server import ServerConfig
from sqlalchemy import create_engine, inspect


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[App]:
    cfg = ServerConfig(data_dir=tmp_path / "data", partitions=2, ingress_bind=None,
                       admin_bind=None)
    srv = build(cfg, AppConfig(pgwire_bind="127.0.0.1:0"))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
    assert srv.pgwire_port is not None


def _psycopg_checks(port: int) -> None:
    dsn = f"host=127.0.0.1 port={port} user=rstq dbname=rstq"
    with psycopg.connect(dsn) as c:
        rows = c.execute("SELECT service, method, id, status FROM sys_status").fetchall()
        assert rows == []
        cur = c.execute("SELECT id, status FROM sys_invocation WHERE status = %s", ["running"])
        assert [d.name for d in cur.description or []] == ["id", "status"]
        assert cur.fetchall() == []
        assert c.execute("SELECT count(*) FROM state WHERE service_name = %s",
                         ["Greeter"]).fetchone() == (0,)
        with pytest.raises(errors.UndefinedTable):
            c.execute("SELECT * FROM nosuch")
        c.rollback()
        with pytest.raises(errors.ReadOnlySqlTransaction):
            c.execute("INSERT INTO state (key) VALUES ('k')")
        c.rollback()
        cur = c.cursor(binary=True)
        cur.execute("SELECT * FROM sys_invocation")
        assert cur.fetchall() == []


async def test_psycopg_over_real_engine(server: App) -> None:
    assert server.pgwire_port is not None
    await asyncio.to_thread(_psycopg_checks, server.pgwire_port)


async def test_asyncpg_over_real_engine(server: App) -> None:
    c = await asyncpg.connect(host="127.0.0.1", port=server.pgwire_port, user="rstq",
                              database="rstq")
    try:
        assert await c.fetch("SELECT * FROM sys_invocation WHERE id = $1", "inv_x") == []
        assert await c.fetchval("SELECT count(*) FROM state") == 0
    finally:
        await c.close()


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
async def test_psql_catalog_over_real_engine(server: App) -> None:
    def psql(cmd: str) -> str:
        r = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(server.pgwire_port),
                            "-U", "rstq", "rstq", "-c", cmd], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    dt = await asyncio.to_thread(psql, r"\dt")
    for name in ("state", "sys_invocation", "sys_status", "sys_journal"):
        assert f" public | {name} " in dt
    d = await asyncio.to_thread(psql, r"\d state")
    assert 'Table "public.state"' in d and " service_name " in d
    out = await asyncio.to_thread(psql, "SELECT service, method, id, status FROM sys_status")
    assert "(0 rows)" in out


# --- what a new user does first (issue 18): psql as printed, SQLAlchemy, numeric keys, errors ---


@pytest.fixture
async def admin_server(tmp_path: Path) -> AsyncIterator[App]:
    cfg = ServerConfig(data_dir=tmp_path / "data", partitions=2, ingress_bind=None,
                       admin_bind="127.0.0.1:0")
    srv = build(cfg, AppConfig(pgwire_bind="127.0.0.1:0"))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**env, "PGCONNECT_TIMEOUT": "5"}


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
async def test_psql_as_make_run_prints_it(server: App) -> None:
    # examples/run.py prints `psql -h 127.0.0.1 -p 9071 -c 'SELECT * FROM sys_status'`; psql
    # then asks for the OS user's database (e.g. "root")
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(server.pgwire_port), *args],
                              capture_output=True, text=True, timeout=30, env=_env())

    r = await asyncio.to_thread(run, "-c", "SELECT * FROM sys_status")
    assert r.returncode == 0 and "(0 rows)" in r.stdout, r.stderr
    r = await asyncio.to_thread(run, "-U", "someone", "-d", "any name", "-c", r"\dt")
    assert r.returncode == 0 and " public | sys_journal " in r.stdout, r.stderr


async def test_uint64_keys_are_numeric(server: App) -> None:
    # the last partition ends at 2**64 - 1: above bigint, so asyncpg read it as -1
    q = "SELECT end_partition_key FROM sys_partition ORDER BY partition_id"
    c = await asyncpg.connect(host="127.0.0.1", port=server.pgwire_port, user="rstq",
                              database="rstq")
    try:
        got = [r[0] for r in await c.fetch(q)]
    finally:
        await c.close()
    assert got[-1] == Decimal(2**64 - 1) and all(v > 0 for v in got)

    def with_psycopg() -> list[object]:
        with psycopg.connect(f"host=127.0.0.1 port={server.pgwire_port} user=rstq") as conn:
            return [r[0] for r in conn.cursor(binary=True).execute(q)]

    assert await asyncio.to_thread(with_psycopg) == got


async def test_sqlalchemy_over_real_engine(server: App) -> None:
    def run() -> tuple[list[str], list[str], int]:
        eng = create_engine(f"postgresql+psycopg://rstq@127.0.0.1:{server.pgwire_port}/rstq")
        try:
            insp = inspect(eng)
            cols = [c["name"] for c in insp.get_columns("sys_journal")]
            return insp.get_table_names(), cols, len(pd.read_sql_table("sys_invocation", eng))
        finally:
            eng.dispose()

    tables, cols, n = await asyncio.to_thread(run)
    assert {"state", "sys_invocation", "sys_journal", "sys_partition"} <= set(tables)
    assert cols[:3] == ["partition_key", "id", "index"] and n == 0


async def test_errors_read_well_on_the_wire_and_post_query(admin_server: App) -> None:
    port = admin_server.pgwire_port

    def wire(sql: str) -> psycopg.Error:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=rstq") as conn:
            try:
                conn.execute(sql)
            except psycopg.Error as e:
                return e
        raise AssertionError(f"{sql} did not fail")

    e = await asyncio.to_thread(wire, "SELECT * FROM sys_invocations")
    assert isinstance(e, errors.UndefinedTable)
    msg = e.diag.message_primary or ""
    assert msg.startswith('table "sys_invocations" does not exist; did you mean '
                          '"sys_invocation"? (tables: ') and "sys_journal" in msg, msg
    e = await asyncio.to_thread(wire, "SELECT statu FROM sys_invocation")
    assert isinstance(e, errors.UndefinedColumn)
    assert e.diag.message_primary == 'column "statu" does not exist; did you mean "status"?'
    e = await asyncio.to_thread(wire, "SELECT nosuch FROM sys_partition")
    assert (e.diag.message_primary or "").startswith(
        'column "nosuch" does not exist (sys_partition has: partition_id, ')
    e = await asyncio.to_thread(wire, "SELECT lenght('a')")
    assert e.diag.message_primary == "function lenght() does not exist; did you mean length()?"
    e = await asyncio.to_thread(wire, "SELEC 1")
    assert isinstance(e, errors.SyntaxError)
    assert e.diag.message_primary == "syntax error: expected an SQL statement, found SELEC " \
        "(line 1, column 1)"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_server.server.admin_port}"
                                 ) as http:
        r = await http.post("/query", json={"query": "SELECT * FROM nosuch"})
        assert r.status_code == 500 and r.json()["sqlstate"] == "42P01"
        assert r.json()["message"].startswith(
            'Datafusion error: table "nosuch" does not exist (tables: '), r.json()
        r = await http.post("/query", json={"query": "SELECT statu FROM sys_invocation"})
        assert r.json()["message"] == \
            'Datafusion error: column "statu" does not exist; did you mean "status"?'
