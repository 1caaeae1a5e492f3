"""Unit-level: the client commands through click's CliRunner against a scripted fake admin API
(exit codes, confirmation, token), and the pure pieces (waits_for, key parsing)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner
from rstq.cli.invocations import waits_for
from rstq.cli.main import main
from rstq.cli.top import split_keys

INV = "inv_1gl7Passa5Sq6f3gaEox8hN28QlyriImCl"


class FakeAdmin:
    """Answers from `routes[(method, path)] = (status, json body)`; records requests."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                if n:
                    self.rfile.read(n)
                fake.requests.append((self.command, self.path,
                                      {k.lower(): v for k, v in self.headers.items()}))
                status, body = fake.routes.get((self.command, self.path), (404, None))
                raw = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake() -> Iterator[FakeAdmin]:
    f = FakeAdmin()
    yield f
    f.close()


def run(fake: FakeAdmin, *args: str, input: str | None = None,
        env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, [*args, "--admin", fake.url], input=input,
                              env={"RSTQ_ADMIN_TOKEN": "", **(env or {})})


def test_exit_codes_follow_the_answer(fake: FakeAdmin) -> None:
    base = f"/invocations/{INV}"
    fake.routes[("PATCH", f"{base}/kill")] = (409, {"message": f"The invocation '{INV}' was "
                                                               "already completed."})
    fake.routes[("PATCH", f"{base}/pause")] = (404, {"message": "does not exist"})
    fake.routes[("PATCH", f"{base}/resume")] = (500, {"message": "boom"})
    fake.routes[("GET", "/services")] = (401, {"message": "missing or invalid credentials"})
    assert run(fake, "inv", "kill", INV, "--yes").exit_code == 5
    assert run(fake, "inv", "pause", INV).exit_code == 4
    r = run(fake, "inv", "resume", INV)
    assert r.exit_code == 1 and "boom" in r.output
    r = run(fake, "services", "list")
    assert r.exit_code == 6 and "RSTQ_ADMIN_TOKEN" in r.output
    r = run(fake, "inv", "kill", INV, "--yes", "--json")
    assert r.exit_code == 5 and json.loads(r.stdout)["exit_code"] == 5


def test_destructive_commands_ask(fake: FakeAdmin) -> None:
    fake.routes[("PATCH", f"/invocations/{INV}/cancel")] = (202, None)
    r = run(fake, "inv", "cancel", INV)  # no input: EOF = not confirmed
    assert r.exit_code == 10 and not any(m == "PATCH" for m, _, _ in fake.requests)
    r = run(fake, "inv", "cancel", INV, input="n\n")
    assert r.exit_code == 10 and not any(m == "PATCH" for m, _, _ in fake.requests)
    r = run(fake, "inv", "cancel", INV, input="y\n")
    assert r.exit_code == 0 and "cancelled" in r.output
    assert [p for m, p, _ in fake.requests if m == "PATCH"] == [f"/invocations/{INV}/cancel"]
    r = run(fake, "inv", "pause", INV)  # not destructive: no question (404 here)
    assert r.exit_code == 4


def test_token_is_sent(fake: FakeAdmin) -> None:
    fake.routes[("GET", "/deployments")] = (200, {"deployments": []})
    r = run(fake, "deployments", "list", "--json", env={"RSTQ_ADMIN_TOKEN": "s3cret"})
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    assert fake.requests[-1][2].get("authorization") == "Bearer s3cret"
    r = run(fake, "deployments", "list", "--token", "other")
    assert fake.requests[-1][2].get("authorization") == "Bearer other"


NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def entry(index: int, kind: str, completed: bool | None, **kw: Any) -> dict[str, Any]:
    return {"index": index, "entry_type": f"Command: {kind}", "completed": completed, **kw}


def test_waits_for() -> None:
    base = {"id": INV, "target_service_name": "Greeter", "target_service_key": "alice"}
    assert waits_for({**base, "status": "completed"}, []) == []
    [w] = waits_for({**base, "status": "pending"}, [], lock_holder="inv_other")
    assert (w.kind, w.ref) == ("lock", "inv_other") and "held by inv_other" in w.what
    ws = waits_for({**base, "status": "suspended", "suspended_waiting_for_signals": [1, 17]}, [
        entry(0, "Input", None),
        entry(1, "Sleep", False, sleep_wakeup_at=NOW),
        entry(2, "Call", False, invoked_id="inv_callee", invoked_target="Svc/h"),
        entry(3, "Run", True, name="done"),
        entry(4, "Run", False, name="charge"),
        entry(5, "GetPromise", False, promise_name="p"),
    ], callee_status={"inv_callee": "backing-off"})
    assert [w.kind for w in ws] == ["timer", "call", "run", "promise", "awakeable"]
    assert ws[0].until == NOW
    assert ws[1].ref == "inv_callee" and "backing-off" in ws[1].what
    assert ws[4].ref is not None and ws[4].ref.startswith("sign_1") and ws[4].ref.endswith(
        "AAAAEQ")  # signal 17
    [w] = waits_for({**base, "status": "backing-off", "retry_count": 2, "next_retry_at": NOW,
                     "last_failure": "boom", "last_failure_error_code": "500"}, [])
    assert w.kind == "retry" and w.what == "retry #3 after: [500] boom" and w.until == NOW
    [w] = waits_for({**base, "status": "running"}, [])
    assert w.kind == "attempt"


def test_split_keys() -> None:
    assert split_keys("\x1b[A\x1b[Bj\r\x1bq") == ["up", "down", "j", "enter", "esc", "q"]
    assert split_keys("/Pay\x7f\n") == ["/", "P", "a", "y", "backspace", "enter"]
    assert split_keys("\x1b[5~x") == ["x"]  # unknown sequences are skipped
