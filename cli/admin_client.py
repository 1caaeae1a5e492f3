"""A small typed client for the admin HTTP API, with errors a person (and a script) can act on.

    client = AdminClient("http://127.0.0.1:9070", token=None)
    client.list_deployments()                 # JSON documents, as the server answers them
    client.invocation_op("inv_1…", "cancel")  # HTTP status on success, AdminError otherwise
    client.sql("SELECT …")                    # a pyarrow.Table (POST /query)

Every failure is an `AdminError` whose `exit_code` is one of the documented CLI exit codes
(`EXIT_*` below), so commands can map any failure to a stable code.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Final

import pyarrow as pa

DEFAULT_ADMIN_URL: Final = "http://127.0.0.1:9070"

# Exit codes of every `rstq` client command (documented in README, "Command line").
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the server refused or failed the request (message says why)
EXIT_USAGE: Final = 2  # bad arguments (click's own code)
EXIT_UNREACHABLE: Final = 3  # nothing answers at the admin URL
EXIT_NOT_FOUND: Final = 4  # the invocation / service / deployment does not exist
EXIT_CONFLICT: Final = 5  # not possible in the current state (e.g. kill a completed invocation)
EXIT_UNAUTHORIZED: Final = 6  # missing or wrong RSTQ_ADMIN_TOKEN
EXIT_ABORTED: Final = 10  # a destructive command was not confirmed

JsonObj = dict[str, Any]


class AdminError(Exception):
    """A failed admin request: `message` for people, `exit_code` for scripts."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status
        self.code = code


class Unreachable(AdminError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the rstq admin API at {url} ({reason}). Is `rstq server` "
                         "running? Point to it with --admin URL or RSTQ_ADMIN_URL.",
                         EXIT_UNREACHABLE)
        self.url = url


def resolve_admin_url(url: str | None = None) -> str:
    return (url or os.environ.get("RSTQ_ADMIN_URL") or DEFAULT_ADMIN_URL).rstrip("/")


def _exit_code_for(status: int) -> int:
    if status == 401 or status == 403:
        return EXIT_UNAUTHORIZED
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (409, 412, 425):
        return EXIT_CONFLICT
    return EXIT_FAILED


class AdminClient:
    def __init__(self, url: str | None = None, token: str | None = None,
                 timeout_s: float = 30.0) -> None:
        self.url = resolve_admin_url(url)
        self.token = token if token is not None else os.environ.get("RSTQ_ADMIN_TOKEN") or None
        self.timeout_s = timeout_s

    # --- transport -------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: object = None,
                query: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body) of a 2xx answer; any other answer raises AdminError."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, method=method, headers=headers, data=data)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as e:
            raise self._http_error(method, path, e.code, e.read()) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            raise Unreachable(self.url, str(getattr(e, "reason", e))) from None

    def _http_error(self, method: str, path: str, status: int, raw: bytes) -> AdminError:
        code = None
        try:
            doc = json.loads(raw)
            message = str(doc.get("message") or f"HTTP {status}")
            code = doc.get("restate_code") or doc.get("sqlstate")
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace").strip()
        if status == 401:
            message = (message or "unauthorized") + " (set RSTQ_ADMIN_TOKEN or --token)"
        if not message:
            message = f"{method} {path}: HTTP {status}"
        return AdminError(message, _exit_code_for(status), status, str(code) if code else None)

    def get_json(self, path: str, query: dict[str, str] | None = None) -> Any:
        _, raw = self.request("GET", path, query=query)
        return json.loads(raw) if raw else None

    # --- server ----------------------------------------------------------------------------------

    def health(self) -> bool:
        self.request("GET", "/health")
        return True

    def version(self) -> JsonObj:
        return dict(self.get_json("/version"))

    # --- deployments -----------------------------------------------------------------------------

    def list_deployments(self) -> list[JsonObj]:
        return list(self.get_json("/deployments")["deployments"])

    def get_deployment(self, deployment_id: str) -> JsonObj:
        return dict(self.get_json(f"/deployments/{_q(deployment_id)}"))

    def register_deployment(self, uri: str, *, force: bool = False, use_http_11: bool = False,
                            headers: dict[str, str] | None = None,
                            dry_run: bool = False) -> tuple[int, JsonObj]:
        body: JsonObj = {"uri": uri, "force": force, "use_http_11": use_http_11,
                         "dry_run": dry_run}
        if headers:
            body["additional_headers"] = headers
        status, raw = self.request("POST", "/deployments", body)
        return status, dict(json.loads(raw))

    def remove_deployment(self, deployment_id: str) -> None:
        self.request("DELETE", f"/deployments/{_q(deployment_id)}", query={"force": "true"})

    # --- services --------------------------------------------------------------------------------

    def list_services(self) -> list[JsonObj]:
        return list(self.get_json("/services")["services"])

    def get_service(self, name: str) -> JsonObj:
        return dict(self.get_json(f"/services/{_q(name)}"))

    def replace_state(self, service: str, key: str, new_state: dict[str, bytes]) -> None:
        """Replace the whole state of one object key (a logged StateMutation on its partition)."""
        body = {"object_key": key, "new_state": {k: list(v) for k, v in new_state.items()}}
        self.request("POST", f"/services/{_q(service)}/state", body)

    # --- invocations -----------------------------------------------------------------------------

    def invocation_op(self, invocation_id: str, op: str) -> int:
        """PATCH /invocations/{id}/{op}; op in cancel, kill, purge, pause, resume."""
        status, _ = self.request("PATCH", f"/invocations/{_q(invocation_id)}/{op}")
        return status

    # --- SQL and traces --------------------------------------------------------------------------

    def sql(self, query: str) -> pa.Table:
        from rstq.query.api import QueryError
        from rstq.query.client import RemoteEngine, ServerUnreachable

        try:
            return RemoteEngine(self.url, self.token or "", self.timeout_s).sql(query)
        except ServerUnreachable as e:
            raise Unreachable(self.url, str(e).split("(", 1)[-1].split(")", 1)[0]) from None
        except QueryError as e:
            exit_code = EXIT_UNAUTHORIZED if "credentials" in str(e) else EXIT_FAILED
            raise AdminError(f"query failed [{e.sqlstate}]: {e}", exit_code) from None

    def rows(self, query: str) -> list[JsonObj]:
        return list(self.sql(query).to_pylist())

    def trace(self, invocation_id: str) -> Any:
        """GET /traces/{id} (the tracing API); AdminError(EXIT_NOT_FOUND) when unavailable."""
        return self.get_json(f"/traces/{_q(invocation_id)}")


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def sql_str(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
