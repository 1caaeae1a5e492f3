"""The examples/ applications, run against a real Restate-compatible server.

These prove the examples themselves are correct (they are the code users copy): greeter
counting, the ticket cart (reserve, double reserve, expiry, checkout) and the payment with an
awakeable resolved by the simulated provider or by hand through the ingress.

Only the ``server`` fixture knows which server runs: anything with ``start()``, ``stop()``,
``ingress_url``, ``admin_url`` and ``register(uri, use_http_11=False)`` (see
tests.support.harness.fixtures.CompatServer). To also run on another server, add its name to
:data:`EXAMPLE_SERVERS` (and a factory to ``tests.support.harness.fixtures.SERVER_FACTORIES``).

No blind sleeps: eventual effects (one-way sends) are awaited with bounded polling.
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.harness.fixtures import CompatServer, running_server
from tests.support.harness.restate_server import REPO_ROOT
from tests.support.harness.service_proc import ServiceProcess
from tests.support.net.ports import free_port

EXAMPLES_APP = "examples.app:app"
EXAMPLE_SERVERS = ["restate", "rstq"]  # the examples must behave the same on both

T = TypeVar("T")


@pytest.fixture(scope="module", params=EXAMPLE_SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[CompatServer]:
    yield from running_server(request.param)


@dataclass
class Examples:
    server: CompatServer
    service: ServiceProcess
    client: httpx.Client

    def call(self, path: str, body: Any = None, *, status: int = 200) -> Any:
        """POST ``body`` as JSON to the ingress ``path``; assert ``status``; return the JSON."""
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        resp = self.client.post(f"{self.server.ingress_url}/{path.lstrip('/')}", **kwargs)
        assert resp.status_code == status, (path, resp.status_code, resp.text,
                                            self.service.logs()[-3000:])
        return resp.json() if resp.content else None


@pytest.fixture(scope="module")
def examples(server: CompatServer) -> Iterator[Examples]:
    """examples.app:app served over h2c (BIDI mode) and registered with ``server``."""
    with ServiceProcess(EXAMPLES_APP, http2=True) as svc, httpx.Client(timeout=30.0) as client:
        deployment = server.register(svc.url)
        names = {s["name"] for s in deployment["services"]}
        assert names == {"Greeter", "TicketObject", "CartObject", "Payment", "PaymentProvider"}
        yield Examples(server, svc, client)


def eventually(fn: Callable[[], T], predicate: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Poll ``fn`` until ``predicate`` holds on its result (bounded); return that result."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = fn()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -------------------------------------------------------------------------------------------
# Greeter
# -------------------------------------------------------------------------------------------


def test_greeter_counts_per_name(examples: Examples) -> None:
    alice, bob = unique("alice"), unique("bob")
    assert examples.call(f"Greeter/{alice}/count") == 0
    for n in (1, 2, 3):
        assert examples.call(f"Greeter/{alice}/greet") == (
            f"Hello {alice}, you have been greeted {n} times")
    assert examples.call(f"Greeter/{bob}/greet") == f"Hello {bob}, you have been greeted 1 times"
    assert examples.call(f"Greeter/{alice}/count") == 3
    assert examples.call(f"Greeter/{bob}/count") == 1


def test_greeter_concurrent_greets_are_serialized(examples: Examples) -> None:
    name = unique("carol")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: examples.call(f"Greeter/{name}/greet"), range(8)))
    counts = sorted(int(re.search(r"greeted (\d+) times", a).group(1))  # type: ignore[union-attr]
                    for a in answers)
    assert counts == list(range(1, 9))  # exclusive handler: no lost update
    assert examples.call(f"Greeter/{name}/count") == 8


# -------------------------------------------------------------------------------------------
# Tickets
# -------------------------------------------------------------------------------------------


def ticket_status(examples: Examples, ticket: str) -> str:
    return str(examples.call(f"TicketObject/{ticket}/status"))


def test_tickets_reserve_double_reserve_and_checkout(examples: Examples) -> None:
    alice, bob = unique("alice"), unique("bob")
    seat_a, seat_b = unique("seat-a"), unique("seat-b")
    assert ticket_status(examples, seat_a) == "AVAILABLE"

    assert examples.call(f"CartObject/{alice}/add_ticket", seat_a) is True
    assert examples.call(f"CartObject/{alice}/add_ticket", seat_b) is True
    assert ticket_status(examples, seat_a) == "RESERVED"
    # Taken: neither another user nor the same user can reserve it again.
    assert examples.call(f"CartObject/{bob}/add_ticket", seat_a) is False
    assert examples.call(f"CartObject/{alice}/add_ticket", seat_a) is False
    assert examples.call(f"CartObject/{alice}/get_tickets") == [seat_a, seat_b]
    assert examples.call(f"CartObject/{bob}/get_tickets") == []

    result = examples.call(f"CartObject/{alice}/checkout")
    assert result["tickets"] == [seat_a, seat_b]
    receipt = result["receipt"]
    assert receipt["user_id"] == alice
    assert receipt["amount_cents"] == 2 * 40_00
    assert receipt["description"] == f"tickets {seat_a}, {seat_b}"
    assert receipt["confirmation"] == f"confirmed {receipt['charge_id']}"
    assert examples.call(f"CartObject/{alice}/get_tickets") == []

    # mark_as_sold is a one-way send: eventually both tickets are SOLD, and stay unavailable.
    eventually(lambda: [ticket_status(examples, s) for s in (seat_a, seat_b)],
               lambda statuses: statuses == ["SOLD", "SOLD"])
    assert examples.call(f"CartObject/{bob}/add_ticket", seat_a) is False
    examples.call(f"TicketObject/{seat_a}/unreserve")  # a sold ticket stays sold
    assert ticket_status(examples, seat_a) == "SOLD"

    # Nothing to pay for: a terminal error, surfaced by the ingress with its status code.
    err = examples.call(f"CartObject/{alice}/checkout", status=400)
    assert "the cart is empty" in err["message"]


def test_tickets_expiry_releases_the_reservation(examples: Examples) -> None:
    alice, bob = unique("alice"), unique("bob")
    seat = unique("seat")
    assert examples.call(f"CartObject/{alice}/add_ticket", seat) is True
    # The real timer fires after 15 minutes; deliver the expiry message now instead.
    examples.call(f"CartObject/{alice}/expire_ticket", seat)
    assert examples.call(f"CartObject/{alice}/get_tickets") == []
    eventually(lambda: ticket_status(examples, seat), lambda st: st == "AVAILABLE")
    assert examples.call(f"CartObject/{bob}/add_ticket", seat) is True
    # An expiry for a ticket no longer in that cart does nothing.
    examples.call(f"CartObject/{alice}/expire_ticket", seat)
    assert ticket_status(examples, seat) == "RESERVED"
    assert examples.call(f"CartObject/{bob}/get_tickets") == [seat]


# -------------------------------------------------------------------------------------------
# Payment
# -------------------------------------------------------------------------------------------


def test_payment_confirmed_by_provider(examples: Examples) -> None:
    user = unique("dave")
    receipt = examples.call("Payment/pay", {"user_id": user, "amount_cents": 1234,
                                            "description": "coffee"})
    assert receipt["user_id"] == user
    assert receipt["amount_cents"] == 1234
    assert receipt["description"] == "coffee"
    # The charge id is the fake provider's answer for the idempotency token (the payment id).
    digest = hashlib.sha256(receipt["payment_id"].encode()).hexdigest()[:16]
    assert receipt["charge_id"] == f"ch_{digest}"
    assert receipt["confirmation"] == f"confirmed ch_{digest}"


def test_payment_rejects_invalid_requests(examples: Examples) -> None:
    err = examples.call("Payment/pay", {"user_id": unique("eve"), "amount_cents": 0}, status=400)
    assert "positive amount_cents" in err["message"]


def awakeable_id_from_log(examples: Examples, user: str) -> str:
    pattern = re.compile(rf"payment \S+ of {re.escape(user)}: .*?awakeable (sign_1[A-Za-z0-9_-]+)")
    match = eventually(lambda: pattern.search(examples.service.logs()), lambda m: m is not None)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("outcome", ["resolve", "reject"])
def test_payment_awakeable_completed_from_outside(examples: Examples, outcome: str) -> None:
    """``auto_confirm: false``: the id is logged and completed through the ingress (curl)."""
    user = unique("frank")
    ingress = examples.server.ingress_url
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(examples.client.post, f"{ingress}/Payment/pay",
                              json={"user_id": user, "amount_cents": 500, "auto_confirm": False})
        awakeable_id = awakeable_id_from_log(examples, user)
        assert not pending.done()  # waiting for the confirmation
        if outcome == "resolve":
            resp = examples.client.post(f"{ingress}/restate/awakeables/{awakeable_id}/resolve",
                                        json="confirmed by hand")
        else:
            resp = examples.client.post(f"{ingress}/restate/awakeables/{awakeable_id}/reject",
                                        content=b"card declined")
        assert resp.status_code == 202, resp.text
        answer = pending.result(timeout=30)
    if outcome == "resolve":
        assert answer.status_code == 200, answer.text
        assert answer.json()["user_id"] == user
        assert answer.json()["confirmation"] == "confirmed by hand"
    else:
        assert answer.status_code == 500, answer.text
        assert "card declined" in answer.json()["message"]


# -------------------------------------------------------------------------------------------
# The launcher (make run), without a server: serves the examples and says how to register them
# -------------------------------------------------------------------------------------------


def test_launcher_serves_examples_without_server(tmp_path: Path) -> None:
    admin_port, ingress_port, examples_port = free_port(), free_port(), free_port()
    cmd = [sys.executable, str(REPO_ROOT / "examples" / "run.py"), "--no-server",
           "--admin-url", f"http://127.0.0.1:{admin_port}",
           "--ingress-url", f"http://127.0.0.1:{ingress_port}",
           "--bind", f"127.0.0.1:{examples_port}", "--log-dir", str(tmp_path / "logs")]
    out_path = tmp_path / "out.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        text = eventually(out_path.read_text,
                          lambda t: "Ctrl-C stops" in t or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, text
        assert "Not registered" in text
        assert (f"curl -X POST http://127.0.0.1:{admin_port}/deployments "
                f"-H 'content-type: application/json' -d "
                f"'{{\"uri\": \"http://127.0.0.1:{examples_port}\"}}'") in text
        assert f"curl -X POST http://127.0.0.1:{ingress_port}/Greeter/alice/greet" in text
        # The examples answer discovery like any Restate deployment.
        resp = httpx.get(f"http://127.0.0.1:{examples_port}/discover",
                         headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"})
        assert resp.status_code == 200, resp.text
        assert {s["name"] for s in resp.json()["services"]} >= {"Greeter", "CartObject"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:  # let the launcher stop its child, then make sure
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
