"""psycopg 3 (libpq) against the wire server: parameters of every common type, text and binary
results, prepared statements, transactions, errors by SQLSTATE, cancel, pandas.read_sql."""

from __future__ import annotations

import datetime as dt
import threading
import time
import warnings
from decimal import Decimal

import psycopg
import pytest
from psycopg import errors


def test_seed_query(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        q = "SELECT service, method, id, status FROM sys_status ORDER BY id"
        rows = c.execute(q).fetchall()
        assert rows[0] == ("Greeter", "greet", "inv_1", "completed")
        assert len(rows) == 3
        assert c.info.server_version == 160004
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.info.parameter_status("integer_datetimes") == "on"


PARAMS = ["key7", 42, 2.5, b"\x00\xff", None, True, dt.datetime(2024, 5, 6, 7, 8, 9, 123456,
                                                                 tzinfo=dt.UTC)]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("prepare", [False, True])
def test_param_types_roundtrip(dsn: str, binary: bool, prepare: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        cur = c.cursor(binary=binary)
        for _ in range(2):  # the second run reuses the prepared statement
            cur.execute("SELECT %s AS s, %s AS i, %s AS f, %s AS b, %s AS n, %s AS t, %s AS ts",
                        PARAMS, prepare=prepare)
            assert cur.fetchone() == tuple(PARAMS)


@pytest.mark.parametrize("placeholder", ["%s", "%b", "%t"])
def test_filter_with_params(dsn: str, placeholder: str) -> None:
    with psycopg.connect(dsn) as c:
        q = f"SELECT service_key, value FROM state WHERE service_name = {placeholder} " \
            f"AND value_length = {placeholder} ORDER BY service_key"
        assert c.execute(q, ["Greeter", 1]).fetchall() == [("alice", b"3"), ("bob", b"1")]
        q = f"SELECT id FROM sys_invocation WHERE created_at > {placeholder}"
        assert c.execute(q, [dt.datetime(2026, 11, 25, 12, 0, 0, 1, tzinfo=dt.UTC)]
                         ).fetchall() == [("inv_2",)]


@pytest.mark.parametrize("binary", [False, True])
def test_result_types(dsn: str, binary: bool) -> None:
    with psycopg.connect(dsn) as c:
        cur = c.cursor(binary=binary)
        cur.execute("SELECT * FROM sys_invocation ORDER BY id")
        rows = cur.fetchall()
        names = [d.name for d in cur.description or []]
        r0 = dict(zip(names, rows[0], strict=True))
        assert r0["created_at"] == dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
        assert r0["duration"] == dt.timedelta(seconds=1, milliseconds=500)
        assert r0["tags"] == ["a", "b c"]
        assert r0["attempts"] == [1]
        assert r0["ok"] is True and r0["cost"] == 1.5 and r0["retry_count"] == 0
        r2 = dict(zip(names, rows[2], strict=True))
        assert r2["duration"] == dt.timedelta(days=1, seconds=3)
        assert r2["tags"] is None and r2["retry_count"] is None
        assert dict(zip(names, rows[1], strict=True))["tags"] == []
        cur.execute("SELECT CAST(1.25 AS DECIMAL(10,2)) AS d, CAST(-1000.5 AS DECIMAL(12,3)) AS e")
        assert cur.fetchone() == (Decimal("1.25"), Decimal("-1000.500"))


def test_errors_by_sqlstate(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        with pytest.raises(errors.SyntaxError):
            c.execute("SELEC 1")
        c.rollback()
        with pytest.raises(errors.UndefinedTable):
            c.execute("SELECT * FROM nosuch")
        c.rollback()
        with pytest.raises(errors.ReadOnlySqlTransaction):
            c.execute("INSERT INTO state (key) VALUES (%s)", ["k"])
        c.rollback()
        with pytest.raises(errors.ReadOnlySqlTransaction):
            c.execute("CREATE TABLE t (a int)")
        c.rollback()
        # in a failed transaction everything is refused until ROLLBACK
        with pytest.raises(errors.UndefinedTable):
            c.execute("SELECT * FROM nosuch")
        with pytest.raises(errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT 1 AS x").fetchone() == (1,)


def test_transactions_and_session_commands(dsn: str) -> None:
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.commit()
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        c.execute("SET TIME ZONE 'UTC'")
        c.execute("SET application_name TO 'notebook'")
        assert c.execute("SHOW application_name").fetchone() == ("notebook",)
        assert c.execute("SELECT current_setting('application_name')").fetchone() == ("notebook",)
        assert c.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
        v = c.execute("SELECT version()").fetchone()
        assert v is not None and str(v[0]).startswith("PostgreSQL 16.4")
        assert c.execute("SELECT current_database(), current_schema()").fetchone() == \
            ("rstq", "public")
        with pytest.raises(errors.UndefinedObject):
            c.execute("SHOW no_such_setting")
        c.rollback()
    with psycopg.connect(dsn, autocommit=True) as c:
        with c.transaction():
            assert c.execute("SELECT count(*) FROM state").fetchone() == (3,)


def test_executemany_and_fetch_sizes(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        cur = c.cursor()
        cur.execute("SELECT * FROM state ORDER BY service_key")
        assert cur.fetchmany(2)[1][1] == "bob"
        assert len(cur.fetchall()) == 1
        # a no-row result and an empty query
        assert c.execute("SELECT * FROM state WHERE key = %s", ["nope"]).fetchall() == []
        cur.executemany("SELECT %s::bigint", [(1,), (2,)])


def test_cancel(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        def cancel_soon() -> None:
            time.sleep(0.3)
            c.cancel_safe()

        t = threading.Thread(target=cancel_soon)
        t.start()
        started = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            c.execute("SELECT pg_sleep(5)")
        t.join()
        assert time.monotonic() - started < 3
        assert c.execute("SELECT 2 AS two").fetchone() == (2,)


def test_pandas_read_sql(dsn: str) -> None:
    pd = pytest.importorskip("pandas")
    with psycopg.connect(dsn) as c, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy; DBAPI works
        df = pd.read_sql("SELECT service, method, id, status FROM sys_status WHERE service = %s "
                         "ORDER BY id", c, params=["Greeter"])
        assert list(df.columns) == ["service", "method", "id", "status"]
        assert df["id"].tolist() == ["inv_1", "inv_3"]
        df = pd.read_sql("SELECT id, created_at, retry_count FROM sys_invocation ORDER BY id", c)
        assert str(df["created_at"].dtype).startswith("datetime64")
        assert df["retry_count"].iloc[1] == 2
