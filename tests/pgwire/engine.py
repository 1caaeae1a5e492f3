"""A small QueryEngine over datafusion.SessionContext with in-memory tables named like rstq's,
so the wire server is tested without the real query layer."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Sequence

import pyarrow as pa
from datafusion import SessionConfig, SessionContext
from rstq.query.api import Column, QueryError, TableDef

T0 = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)

TABLES = (
    TableDef("state", "Keyed state of virtual objects and workflows, latest value per key.", (
        Column("service_name", pa.string(), "Service name"),
        Column("service_key", pa.string(), "Object or workflow key"),
        Column("key", pa.string(), "State key"),
        Column("value_utf8", pa.string(), "The value as UTF-8 (NULL when not valid UTF-8)"),
        Column("value", pa.binary(), "The value's bytes"),
        Column("value_length", pa.int64(), "Length of value in bytes"),
    )),
    TableDef("sys_invocation", "One row per invocation.", (
        Column("id", pa.string(), "Invocation id", nullable=False),
        Column("target", pa.string(), "service/key/handler"),
        Column("target_service_name", pa.string(), "Target service"),
        Column("target_handler_name", pa.string(), "Target handler"),
        Column("status", pa.string(), "pending, running, suspended, completed, ..."),
        Column("retry_count", pa.int64(), "Attempts so far"),
        Column("created_at", pa.timestamp("us", tz="UTC"), "When it was invoked"),
        Column("duration", pa.duration("us"), "Time from creation to completion"),
        Column("tags", pa.list_(pa.string()), "Free-form tags"),
        Column("attempts", pa.list_(pa.int64()), "Attempt numbers"),
        Column("ok", pa.bool_(), "Completed successfully"),
        Column("cost", pa.float64(), "Some float"),
        Column("price", pa.decimal128(10, 2), "Some decimal"),
    )),
    TableDef("sys_status", "Compact status view.", (
        Column("service", pa.string(), "Service"),
        Column("method", pa.string(), "Handler"),
        Column("id", pa.string(), "Invocation id"),
        Column("status", pa.string(), "Status"),
        Column("invoked_by_service", pa.string(), "Calling service, if any"),
        Column("invoked_by_id", pa.string(), "Calling invocation, if any"),
    )),
)


def sample_data() -> dict[str, pa.Table]:
    state = pa.table({
        "service_name": ["Greeter", "Greeter", "Caller"],
        "service_key": ["alice", "bob", "erin"],
        "key": ["count", "count", "awakeable"],
        "value_utf8": ["3", "1", '"sign_1"'],
        "value": [b"3", b"1", b'"sign_1"'],
        "value_length": pa.array([1, 1, 8], pa.int64()),
    }, schema=TABLES[0].schema)
    inv = pa.table({
        "id": ["inv_1", "inv_2", "inv_3"],
        "target": ["Greeter/alice/greet", "Caller/erin/chain", "Greeter/bob/greet"],
        "target_service_name": ["Greeter", "Caller", "Greeter"],
        "target_handler_name": ["greet", "chain", "greet"],
        "status": ["completed", "suspended", "completed"],
        "retry_count": pa.array([0, 2, None], pa.int64()),
        "created_at": pa.array([T0, T0 + dt.timedelta(seconds=1, microseconds=500), None],
                               pa.timestamp("us", tz="UTC")),
        "duration": pa.array([dt.timedelta(milliseconds=1500), None,
                              dt.timedelta(days=1, seconds=3)], pa.duration("us")),
        "tags": pa.array([["a", "b c"], [], None], pa.list_(pa.string())),
        "attempts": pa.array([[1], [1, 2], None], pa.list_(pa.int64())),
        "ok": [True, False, None],
        "cost": [1.5, -0.25, None],
        "price": pa.array([None, None, None], pa.decimal128(10, 2)),
    }, schema=TABLES[1].schema)
    status = pa.table({
        "service": ["Greeter", "Caller", "Greeter"],
        "method": ["greet", "chain", "greet"],
        "id": ["inv_1", "inv_2", "inv_3"],
        "status": ["completed", "suspended", "completed"],
        "invoked_by_service": [None, None, "Caller"],
        "invoked_by_id": [None, None, "inv_2"],
    }, schema=TABLES[2].schema)
    return {"state": state, "sys_invocation": inv, "sys_status": status}


def _sqlstate(msg: str) -> str:
    if re.search(r"table '.*' not found|table .* not found", msg, re.I):
        return "42P01"
    if "ParserError" in msg or "sql parser error" in msg.lower():
        return "42601"
    if "No field named" in msg or "Schema error" in msg:
        return "42703"
    if "not supported" in msg.lower() or "NotImplemented" in msg:
        return "0A000"
    return "XX000"


class TestEngine:
    """QueryEngine over DataFusion; `pg_sleep(s)` sleeps (for cancel tests)."""

    __test__ = False

    def __init__(self, tables: dict[str, pa.Table] | None = None) -> None:
        self.ctx = SessionContext(SessionConfig().with_information_schema(True))
        self.data = tables or sample_data()
        self.defs = list(TABLES)
        for name, tbl in self.data.items():
            self.ctx.register_record_batches(name, [tbl.to_batches()])
            if name not in {d.name for d in self.defs}:
                self.defs.append(TableDef(name, "", tuple(
                    Column(f.name, f.type, "") for f in tbl.schema)))
        self.lock = threading.Lock()
        self.queries: list[str] = []

    def tables(self) -> Sequence[TableDef]:
        return self.defs

    def sql(self, query: str, params: Sequence[object] | None = None,
            timeout_s: float | None = None) -> pa.Table:
        self.queries.append(query)
        m = re.fullmatch(r"\s*select\s+pg_sleep\(\s*([\d.]+)\s*\)\s*;?\s*", query, re.I)
        if m:
            time.sleep(float(m.group(1)))
            return pa.table({"pg_sleep": pa.array([None], pa.null())})
        try:
            values = {str(i + 1): v for i, v in enumerate(params or [])} or None
            return self.ctx.sql(query, param_values=values).to_arrow_table()
        except Exception as e:  # DataFusion raises plain Exceptions
            raise QueryError(str(e), _sqlstate(str(e))) from e
