"""asyncpg (its own protocol implementation, binary everywhere, Describe-Statement driven)."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest
from rstq.pgwire.server import PgWireServer


async def connect(server: PgWireServer) -> asyncpg.Connection:
    return await asyncpg.connect(host="127.0.0.1", port=server.port, user="rstq",
                                 database="rstq")


async def test_fetch_with_params(server: PgWireServer) -> None:
    c = await connect(server)
    try:
        rows = await c.fetch("SELECT service, method, id, status FROM sys_status "
                             "WHERE service = $1 ORDER BY id", "Greeter")
        assert [r["id"] for r in rows] == ["inv_1", "inv_3"]
        # parameter types come from the compared columns: int and datetime, not only str
        rows = await c.fetch("SELECT id FROM sys_invocation WHERE retry_count >= $1 "
                             "AND created_at < $2", 1, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        assert [r["id"] for r in rows] == ["inv_2"]
        assert await c.fetchval("SELECT $1::bigint + 1", 41) == 42
        assert await c.fetchval("SELECT value FROM state WHERE service_key = $1", "alice") == b"3"
        assert await c.fetchval("SELECT count(*) FROM state WHERE value = $1", b"1") == 1
    finally:
        await c.close()


async def test_types_and_array_introspection(server: PgWireServer) -> None:
    c = await connect(server)
    try:
        # attempts is bigint[]: asyncpg has no built-in codec and introspects pg_type for it
        rows = await c.fetch("SELECT * FROM sys_invocation ORDER BY id")
        r0 = rows[0]
        assert r0["created_at"] == dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
        assert r0["duration"] == dt.timedelta(seconds=1.5)
        assert r0["tags"] == ["a", "b c"] and r0["attempts"] == [1]
        assert r0["ok"] is True and r0["cost"] == 1.5
        assert rows[1]["attempts"] == [1, 2] and rows[1]["tags"] == []
        assert rows[2]["retry_count"] is None
    finally:
        await c.close()


async def test_cursor_uses_portal_row_limits(server: PgWireServer) -> None:
    c = await connect(server)
    try:
        async with c.transaction():
            ids = [r["id"] async for r in c.cursor("SELECT id FROM sys_status ORDER BY id",
                                                   prefetch=2)]
        assert ids == ["inv_1", "inv_2", "inv_3"]
        async with c.transaction():
            cur = await c.cursor("SELECT id FROM sys_status ORDER BY id")
            assert [r["id"] for r in await cur.fetch(2)] == ["inv_1", "inv_2"]
            assert [r["id"] for r in await cur.fetch(5)] == ["inv_3"]
    finally:
        await c.close()


async def test_errors_and_cancel(server: PgWireServer) -> None:
    c = await connect(server)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await c.fetch("SELECT * FROM nosuch")
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await c.fetch("SELEC 1")
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await c.execute("DELETE FROM state")
        # a timeout makes asyncpg send a CancelRequest on a separate connection
        with pytest.raises(asyncio.TimeoutError):
            await c.fetch("SELECT pg_sleep(5)", timeout=0.3)
        assert await c.fetchval("SELECT 7 AS seven") == 7
    finally:
        await c.close()
