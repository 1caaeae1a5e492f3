"""A client for a running server's `POST /query`: SQL answers as pyarrow tables (or pandas).

    import rstq.query
    db = rstq.query.connect()            # RSTQ_ADMIN_URL, default http://127.0.0.1:9070
    db.sql("SELECT status, count(*) FROM sys_invocation GROUP BY status")   # pyarrow.Table
    db.df("SELECT * FROM state")          # pandas.DataFrame (needs the `pandas` extra)

Works against restate-server 1.7 too (same endpoint, same tables where Restate has them).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from rstq.query import tables as t
from rstq.query.api import QueryError, TableDef

DEFAULT_ADMIN_URL = "http://127.0.0.1:9070"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ServerUnreachable(QueryError):
    """No server answers at the admin URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the rstq admin API at {url} ({reason}): is "
                         "`rstq server` running? (set --admin / RSTQ_ADMIN_URL)", "08001")
        self.url = url


def admin_url(url: str | None = None) -> str:
    return (url or os.environ.get("RSTQ_ADMIN_URL") or DEFAULT_ADMIN_URL).rstrip("/")


class RemoteEngine:
    """`QueryEngine` over HTTP. Parameters are not supported by `POST /query`."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 timeout_s: float = 60.0) -> None:
        self.url = admin_url(url)
        self.token = token if token is not None else os.environ.get("RSTQ_ADMIN_TOKEN")
        self.timeout_s = timeout_s

    def tables(self) -> Sequence[TableDef]:
        return t.TABLES

    def sql(self, query: str, params: Sequence[object] | None = None,
            timeout_s: float | None = None) -> pa.Table:
        if params:
            raise QueryError("POST /query takes no parameters: inline them", "0A000")
        headers = {"content-type": "application/json", "accept": ARROW_STREAM}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(f"{self.url}/query", method="POST", headers=headers,
                                     data=json.dumps({"query": query}).encode())
        try:
            with urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            raise _http_error(e.code, e.read()) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise ServerUnreachable(self.url, str(reason)) from None
        return pa.ipc.open_stream(body).read_all()

    def df(self, query: str) -> Any:
        """The answer as a pandas DataFrame."""
        return self.sql(query).to_pandas()


def _http_error(status: int, body: bytes) -> QueryError:
    try:
        doc = json.loads(body)
        message, state = str(doc.get("message")), doc.get("sqlstate")
    except (ValueError, AttributeError):
        message, state = body.decode(errors="replace").strip() or f"HTTP {status}", None
    return QueryError(message, str(state) if state else ("42000" if status < 500 else "XX000"))


def connect(url: str | None = None, token: str | None = None) -> RemoteEngine:
    return RemoteEngine(url, token)
