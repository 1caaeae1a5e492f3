"""Real Postgres clients against the wire server, each as a user drives it: psql exactly as
README and `make run` print it, SQLAlchemy 2 (psycopg and asyncpg dialects) with pandas,
pgcli (its backslash commands and the completion queries it runs at start), the catalog
queries BI tools send (DBeaver/pgJDBC, Grafana), and unsigned 64-bit keys (numeric)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from psycopg import errors
from rstq.pgwire.server import PgWireServer
from sqlalchemy import ARRAY, create_engine, inspect, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.pgwire.engine import TestEngine, sample_data

PSQL = shutil.which("psql")
PGCLI = Path(sys.executable).with_name("pgcli")
TABLES = ["state", "sys_invocation", "sys_partition", "sys_status"]
BIG = 2**64 - 1  # partition keys span the whole unsigned 64-bit range
KEYS = [5, 2**63 + 1, BIG]


@pytest.fixture(scope="module")
def server() -> Iterator[PgWireServer]:
    data = sample_data()
    data["sys_partition"] = pa.table({
        "partition_id": pa.array([0, 1, 2], pa.uint32()),
        "partition_key": pa.array(KEYS, pa.uint64())})
    srv = PgWireServer(TestEngine(data), "127.0.0.1:0")
    srv.start()
    yield srv
    srv.stop()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGCONNECT_TIMEOUT="5", **extra)
    return env


# --- psql, as printed ----------------------------------------------------------------------------


@pytest.mark.skipif(PSQL is None, reason="psql not installed (.ci/run installs it)")
@pytest.mark.parametrize("names", [[], ["-U", "root"], ["-U", "Odd User", "-d", "some-db"],
                                   ["-d", "postgres"], ["-U", "rstq", "rstq"]])
def test_psql_as_printed(server: PgWireServer, names: list[str]) -> None:
    # `make run` prints `psql -h 127.0.0.1 -p 9071 -c 'SELECT * FROM sys_status'`: psql then
    # defaults the database and user to the OS user's name (root here)
    assert PSQL is not None
    r = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(server.port), *names,
                        "-c", "SELECT * FROM sys_status"],
                       capture_output=True, text=True, timeout=30, env=_env())
    assert r.returncode == 0, r.stderr
    assert "(3 rows)" in r.stdout and "Greeter" in r.stdout
    # the README's
    r = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(server.port), *names, "-c",
                        "SELECT service_name, service_key, key, value_utf8 FROM state"],
                       capture_output=True, text=True, timeout=30, env=_env())
    assert r.returncode == 0 and "(3 rows)" in r.stdout, r.stderr
    # interactive (statements on stdin), then \conninfo
    r = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(server.port), *names],
                       input="SELECT 41 + 1 AS answer;\n\\conninfo\n", capture_output=True,
                       text=True, timeout=30, env=_env())
    assert r.returncode == 0 and " 42" in r.stdout and "You are connected" in r.stdout, r.stderr


# --- SQLAlchemy (psycopg 3 dialect) and pandas ---------------------------------------------------


def _url(server: PgWireServer, dialect: str) -> str:
    return f"postgresql+{dialect}://rstq@127.0.0.1:{server.port}/rstq"


def test_sqlalchemy_psycopg(server: PgWireServer) -> None:
    eng = create_engine(_url(server, "psycopg"))
    try:
        with eng.connect() as c:  # the first connect fetches hstore's type info
            assert c.execute(text("SELECT 1")).scalar() == 1
        insp = inspect(eng)
        assert sorted(insp.get_table_names()) == TABLES
        assert insp.has_table("state") and not insp.has_table("nope")
        assert insp.get_schema_names() == ["information_schema", "public"]
        cols = {c["name"]: c for c in insp.get_columns("sys_invocation")}
        assert list(cols)[:3] == ["id", "target", "target_service_name"]
        assert cols["id"]["nullable"] is False and cols["target"]["nullable"] is True
        assert cols["id"]["comment"] == "Invocation id"
        assert str(cols["created_at"]["type"]) == "TIMESTAMP"
        assert str(cols["price"]["type"]) == "NUMERIC(10, 2)"
        assert isinstance(cols["tags"]["type"], ARRAY) and \
            str(cols["tags"]["type"].item_type) == "TEXT"
        assert "computed" not in cols["id"] and cols["id"]["default"] is None
        assert insp.get_pk_constraint("state")["constrained_columns"] == []
        assert insp.get_indexes("state") == [] and insp.get_foreign_keys("state") == []
        assert insp.get_view_names() == []
        assert insp.get_table_comment("state")["text"].startswith("Keyed state")
        df = pd.read_sql_table("sys_status", eng)
        assert list(df.columns) == ["service", "method", "id", "status", "invoked_by_service",
                                    "invoked_by_id"] and len(df) == 3
        df = pd.read_sql("SELECT id, retry_count FROM sys_invocation ORDER BY id", eng)
        assert df["id"].tolist() == ["inv_1", "inv_2", "inv_3"]
        df = pd.read_sql(text("SELECT key FROM state WHERE service_key = :k"), eng,
                         params={"k": "alice"})
        assert df["key"].tolist() == ["count"]
        # an error is the error (it was "current transaction is aborted" before)
        with pytest.raises(pd.errors.DatabaseError) as e:
            pd.read_sql("SELECT * FROM nosuch", eng)
        cause = e.value.__cause__
        assert isinstance(cause, ProgrammingError) and \
            isinstance(cause.orig, errors.UndefinedTable), e.value
        assert len(pd.read_sql("SELECT * FROM state", eng)) == 3
    finally:
        eng.dispose()


def test_sqlalchemy_asyncpg(server: PgWireServer) -> None:
    async def run() -> dict[str, Any]:
        eng = create_async_engine(_url(server, "asyncpg"))
        out: dict[str, Any] = {}
        try:
            async with eng.connect() as c:
                out["one"] = (await c.execute(text("SELECT 1"))).scalar()
                out["tables"] = await c.run_sync(lambda s: inspect(s).get_table_names())
                out["columns"] = await c.run_sync(
                    lambda s: inspect(s).get_columns("sys_invocation"))
                out["pk"] = await c.run_sync(lambda s: inspect(s).get_pk_constraint("state"))
                out["table"] = await c.run_sync(lambda s: pd.read_sql_table("state", s))
                out["query"] = await c.run_sync(lambda s: pd.read_sql(
                    text("SELECT id FROM sys_invocation WHERE retry_count >= :n"), s,
                    params={"n": 1}))
        finally:
            await eng.dispose()
        return out

    out = asyncio.run(run())
    assert out["one"] == 1 and sorted(out["tables"]) == TABLES
    cols = {c["name"]: c for c in out["columns"]}
    assert cols["id"]["nullable"] is False and "computed" not in cols["id"]
    assert isinstance(cols["attempts"]["type"], ARRAY) and \
        str(cols["attempts"]["type"].item_type) == "BIGINT"
    assert out["pk"]["constrained_columns"] == []
    assert len(out["table"]) == 3 and out["query"]["id"].tolist() == ["inv_2"]


# --- pgcli ---------------------------------------------------------------------------------------


@pytest.fixture
def pgcli_home(tmp_path: Path) -> dict[str, str]:
    return _env(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))


@pytest.mark.skipif(not PGCLI.exists(), reason="pgcli not installed (test extras)")
def test_pgcli_commands(server: PgWireServer, pgcli_home: dict[str, str]) -> None:
    r = subprocess.run([str(PGCLI), "-h", "127.0.0.1", "-p", str(server.port), "-U", "rstq",
                        "rstq", "-c", r"\dt", "-c", r"\d state", "-c", r"\dt sys_*",
                        "-c", r"\l", "-c", r"\d+ sys_invocation", "-c", r"\dn",
                        "-c", "SELECT count(*) AS n FROM sys_status"],
                       capture_output=True, text=True, timeout=60, env=pgcli_home,
                       stdin=subprocess.DEVNULL)
    out = r.stdout
    assert r.returncode == 0 and "Traceback" not in out + r.stderr, out + r.stderr
    blocks = out.split("Time: ")
    dt, d_state, dt_sys, dbs, d_inv, schemas, count = blocks[:7]
    for name in TABLES:
        assert f"| public | {name} " in dt
    assert "| value_length | bigint |" in d_state and "sys_status" not in d_state
    assert "| sys_status " in dt_sys and "| state " not in dt_sys
    assert "| rstq | rstq  | UTF8 " in dbs
    assert "| id                  | text                     |  not null |" in d_inv
    assert "Attempt numbers" in d_inv  # column docs
    assert "| public | rstq  |" in schemas
    assert "| 3 |" in count
    log = (Path(pgcli_home["XDG_CONFIG_HOME"]) / "pgcli" / "log").read_text()
    assert " ERROR " not in log, log[-2000:]


@pytest.mark.skipif(not PGCLI.exists(), reason="pgcli not installed (test extras)")
def test_pgcli_completion_queries(server: PgWireServer, pgcli_home: dict[str, str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # What pgcli's completion refresher runs at start, through pgcli's own executor.
    monkeypatch.setenv("HOME", pgcli_home["HOME"])
    from pgcli.pgexecute import PGExecute

    ex = PGExecute("rstq", "rstq", None, "127.0.0.1", server.port, "")
    assert ex.search_path() == ["pg_catalog", "public"]
    assert ex.schemata() == ["information_schema", "pg_catalog", "public"]
    tables = list(ex.tables())
    assert [t for t in tables if t[0] == "public"] == [("public", t) for t in TABLES]
    assert ("pg_catalog", "pg_class") in tables
    cols = [c for c in ex.table_columns() if c[1] == "state"]
    assert [c[2] for c in cols][:3] == ["service_name", "service_key", "key"]
    assert cols[4][3] == "bytea" and cols[0][4] is False
    assert ("information_schema", "columns") in list(ex.views())
    assert list(ex.functions()) == [] and list(ex.datatypes()) == []
    assert list(ex.foreignkeys()) == []
    assert ex.databases() == ["rstq"]
    assert ex.full_databases()[0] == [("rstq", "rstq", "UTF8", "C", "C", None)]
    assert ex.get_timezone() == "UTC"
    ex.conn.close()


# --- BI tools' introspection (DBeaver/pgJDBC, Grafana), through psycopg ------------------------

INTROSPECTION = [
    # pgJDBC / DBeaver on connect and in the navigator
    ("SELECT current_schema(), session_user", 1),
    ("SHOW search_path", 1),
    ("SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN "
     "pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 AND "
     "d.classoid = 'pg_namespace'::regclass ORDER BY nspname", 3),
    ("SELECT db.oid, db.* FROM pg_catalog.pg_database db WHERE datallowconn AND NOT "
     "datistemplate OR db.datname = %s ORDER BY db.datname", 1),
    ("SELECT c.oid, c.*, d.description, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS "
     "partition_expr, pg_catalog.pg_get_partkeydef(c.oid) AS partition_key FROM "
     "pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = c.oid "
     "AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass WHERE c.relnamespace = %s "
     "AND c.relkind NOT IN ('i', 'I', 'c')", 4),
    ("SELECT c.relname, a.*, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name, "
     "pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS def_value, dsc.description "
     "FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON "
     "(a.attrelid = c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON "
     "(a.attrelid = ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN "
     "pg_catalog.pg_description dsc ON (c.oid = dsc.objoid AND a.attnum = dsc.objsubid) "
     "WHERE NOT a.attisdropped AND c.relkind NOT IN ('i', 'I', 'c') AND "
     "c.oid = 'sys_status'::regclass ORDER BY a.attnum", 6),
    ("SELECT t.oid, t.*, c.relkind, format_type(nullif(t.typbasetype, 0), t.typtypmod) AS "
     "base_type_name, d.description FROM pg_catalog.pg_type t LEFT OUTER JOIN "
     "pg_catalog.pg_type et ON et.oid = t.typelem LEFT OUTER JOIN pg_catalog.pg_class c ON "
     "c.oid = t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid = d.objoid "
     "WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND "
     "(et.typcategory IS NULL OR et.typcategory <> 'C')", None),
    ("SELECT i.*, c.relnamespace FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c "
     "ON c.oid = i.indexrelid WHERE i.indrelid = 'state'::regclass", 0),
    ("SELECT c.oid, c.*, t.relname AS tabrelname FROM pg_catalog.pg_constraint c "
     "LEFT OUTER JOIN pg_catalog.pg_class t ON t.oid = c.conrelid WHERE "
     "c.conrelid = 16384 ORDER BY c.oid", 0),
    ("SELECT typinput = 'array_in'::regproc AS is_array, typtype, typname FROM "
     "pg_catalog.pg_type WHERE oid = %s", 1),
    ("SELECT e.typdelim FROM pg_catalog.pg_type t, pg_catalog.pg_type e WHERE t.oid = %s "
     "AND t.typelem = e.oid", 1),
    ("SELECT a.rolname, a.rolsuper, a.rolcanlogin FROM pg_catalog.pg_roles a ORDER BY 1", 1),
    ("SELECT name, setting FROM pg_catalog.pg_settings WHERE name = 'server_version'", 1),
    ("SELECT has_table_privilege('state', 'SELECT'), has_table_privilege('state', 'INSERT'), "
     "has_schema_privilege('public', 'USAGE')", 1),
    ("SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid)) FROM "
     "pg_catalog.pg_class c WHERE c.relname = 'state'", 1),
    ("SELECT 'sys_invocation'::regclass::oid, 16384::regclass, 'int4'::regtype::oid, "
     "23::regtype", 1),
    # pgJDBC resolving a type by OID and by name
    ("SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM "
     "pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid "
     "WHERE t.oid = %s", 1),
    ("SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, "
     "pg_type.oid FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, "
     "r.r from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as "
     "nspname from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as "
     "r using ( nspname ) ) as sp ON sp.nspoid = typnamespace WHERE typname = %s ORDER BY "
     "sp.r, pg_type.oid DESC LIMIT 1", 1),
    # Grafana's PostgreSQL data source (query builder)
    ("SELECT quote_ident(table_name) as table_name FROM information_schema.tables WHERE "
     "quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', "
     "'_timescaledb_cache') AND table_type = 'BASE TABLE' AND quote_ident(table_schema) IN "
     "(SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM "
     "generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), "
     "array_upper(string_to_array(current_setting('search_path'),','),1)) as i, "
     "string_to_array(current_setting('search_path'),',') s)", 4),
    ("SELECT quote_ident(table_name) AS table_name FROM information_schema.tables WHERE "
     "table_schema = 'public' ORDER BY table_name", 4),
    ("SELECT quote_ident(column_name) AS column_name, data_type AS type FROM "
     "information_schema.columns WHERE quote_ident(table_name) = 'sys_invocation' "
     "ORDER BY ordinal_position", 13),
    ("SELECT current_setting('server_version_num')::int / 100 AS version", 1),
]


@pytest.mark.parametrize("sql,rows", INTROSPECTION, ids=[q[:40] for q, _ in INTROSPECTION])
def test_bi_introspection(server: PgWireServer, sql: str, rows: int | None) -> None:
    dsn = f"host=127.0.0.1 port={server.port} user=rstq dbname=rstq"
    params = {"db.datname = %s": ["rstq"], "relnamespace = %s": [2200],
              "WHERE oid = %s": [1007], "t.oid = %s": [1007], "typname = %s": ["_int4"]}
    args = next((v for k, v in params.items() if k in sql), None)
    for binary in (False, True):
        with psycopg.connect(dsn) as c:
            got = c.cursor(binary=binary).execute(sql, args).fetchall()
        if rows is not None:
            assert len(got) == rows, got
        else:
            assert got


def test_introspection_values(server: PgWireServer) -> None:
    dsn = f"host=127.0.0.1 port={server.port} user=rstq dbname=rstq"
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT 'sys_invocation'::regclass::oid, 16384::regclass, "
                         "'int4'::regtype::oid, 23::regtype").fetchone() == \
            (16385, "state", 23, "integer")
        assert c.execute("SELECT has_table_privilege('state', 'SELECT'), "
                         "has_table_privilege('state', 'INSERT')").fetchone() == (True, False)
        cols = c.execute("SELECT column_name, ordinal_position, data_type, is_nullable FROM "
                         "information_schema.columns WHERE table_name = 'sys_invocation' "
                         "ORDER BY ordinal_position LIMIT 2").fetchall()
        assert cols == [("id", 1, "text", "NO"), ("target", 2, "text", "YES")]
        row = c.execute("SELECT version(), current_schema(), current_database()").fetchone()
        assert row is not None and row[0].startswith("PostgreSQL 16.4") and \
            row[1:] == ("public", "rstq")
        for name, value in [("transaction_isolation", "repeatable read"),
                            ("standard_conforming_strings", "on"), ("server_version", "16.4"),
                            ("transaction isolation level", "repeatable read")]:
            assert c.execute(f"SHOW {name}").fetchone() == (value,)
        # column names as Postgres gives them
        cur = c.execute("SELECT c.relname, count(*), c.oid::regclass, 1 FROM pg_catalog.pg_class c "
                        "GROUP BY c.relname, c.oid LIMIT 1")
        assert [d.name for d in cur.description or []] == ["relname", "count", "oid",
                                                            "?column?"]


# --- unsigned 64-bit values (partition keys) ----------------------------------------------------


def test_partition_key_is_numeric(server: PgWireServer) -> None:
    want = [Decimal(k) for k in KEYS]
    dsn = f"host=127.0.0.1 port={server.port} user=rstq dbname=rstq"
    q = "SELECT partition_key FROM sys_partition ORDER BY partition_id"
    with psycopg.connect(dsn) as c:
        for binary in (False, True):
            assert [r[0] for r in c.cursor(binary=binary).execute(q)] == want
        assert c.execute("SELECT partition_id FROM sys_partition WHERE partition_key = %s",
                         [BIG]).fetchall() == [(2,)]
        # pandas turns Decimal into float unless told not to
        df = pd.read_sql_query(q, create_engine(_url(server, "psycopg")), coerce_float=False)
        assert df["partition_key"].tolist() == want

    async def run() -> tuple[list[Any], list[Any]]:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="rstq",
                                     database="rstq")
        try:
            rows = [r[0] for r in await conn.fetch(q)]
            ids = [r[0] for r in await conn.fetch(
                "SELECT partition_id FROM sys_partition WHERE partition_key = $1", BIG)]
            return rows, ids
        finally:
            await conn.close()

    rows, ids = asyncio.run(run())
    assert rows == want and ids == [2]  # asyncpg read 2**64-1 as -1 when it was bigint
    if PSQL is not None:
        r = subprocess.run([PSQL, "-X", "-At", "-h", "127.0.0.1", "-p", str(server.port),
                            "-c", q], capture_output=True, text=True, timeout=30, env=_env())
        assert r.stdout.split() == [str(k) for k in KEYS], r.stderr
        r = subprocess.run([PSQL, "-X", "-h", "127.0.0.1", "-p", str(server.port),
                            "-c", r"\d sys_partition"], capture_output=True, text=True,
                           timeout=30, env=_env())
        assert " partition_key | numeric(20,0) " in r.stdout, r.stdout + r.stderr
