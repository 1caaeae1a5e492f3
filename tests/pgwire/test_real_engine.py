"""The wire endpoint as the composition root plugs it in (AppConfig.pgwire_bind), over the real
query engine."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import psycopg
import pytest
from psycopg import errors
from rstq.app import App, AppConfig, build
from rstq.core.server import ServerConfig


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
