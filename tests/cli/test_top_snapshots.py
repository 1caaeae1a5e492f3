"""Snapshot tests of `rstq top` screens: a fake data source with fixed data, rendered on a
fixed-size recording console, compared as text with tests/cli/snapshots/*.txt.

Regenerate after an intended change: `UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/cli`.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pytest
from rich.console import Console, RenderableType
from rstq.cli.invocations import InvocationDetail, describe_renderable, waits_for
from rstq.cli.top import Bucket, Top, TopData, Waiting, trace_renderable

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
SLEEPER = "inv_1gl7Passa5Sq6f3gaEox8hN28QlyriImCl"
PAYER = "inv_10mYz3vCqSdA1rK3euwSumHIGSQu6GvvcR"
FLAKY = "inv_1hxxG6DT77tO3gMa72c5BfJsaMJiCnjVct"
QUEUED = "inv_1cHWwCxvOXbm6ECTuq8zOOvAB2fq2pR2q5"
HOLDER = "inv_12rFPRG11duu0ULo4qHrQZ59mxICms3uJX"


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def inv(inv_id: str, target: str, status: str, modified_s: float,
        **kw: object) -> dict[str, object]:
    parts = target.split("/")
    row: dict[str, object] = {
        "id": inv_id, "target": target, "status": status, "target_service_name": parts[0],
        "target_service_key": parts[1] if len(parts) == 3 else None,
        "target_service_ty": "virtual_object" if len(parts) == 3 else "service",
        "created_at": ago(modified_s + 5), "modified_at": ago(modified_s), "retry_count": 0,
        "next_retry_at": None, "scheduled_start_at": None, "suspended_waiting_for_signals": None,
        "suspended_waiting_for_completions": None, "last_failure": None,
        "last_failure_error_code": None}
    row.update(kw)
    return row


SLEEP_JOURNAL = [
    {"index": 0, "entry_type": "Command: Input", "name": None, "completed": None,
     "invoked_id": None, "invoked_target": None, "sleep_wakeup_at": None, "promise_name": None,
     "entry_json": '{"Command":{"Input":{"value":{"content":"{\\"delay_ms\\": 3600000}"}}}}',
     "appended_at": ago(605)},
    {"index": 1, "entry_type": "Command: Sleep", "name": None, "completed": False,
     "invoked_id": None, "invoked_target": None,
     "sleep_wakeup_at": NOW + dt.timedelta(minutes=50), "promise_name": None,
     "entry_json": '{"Command":{"Sleep":{"result_completion_id":1}}}', "appended_at": ago(600)},
]


class FakeSource:
    def __init__(self) -> None:
        self.fetched: list[str | None] = []

    def fetch(self, service: str | None) -> TopData:
        self.fetched.append(service)
        rows = [
            (inv(SLEEPER, "PaymentProvider/confirm", "suspended", 600), SLEEP_JOURNAL[1:]),
            (inv(PAYER, "Payment/pay", "suspended", 300,
                 suspended_waiting_for_signals=[17, 1]), []),
            (inv(QUEUED, "Greeter/alice/greet", "pending", 120), []),
            (inv(FLAKY, "Payment/refund", "backing-off", 30, retry_count=7,
                 next_retry_at=NOW + dt.timedelta(seconds=16), last_failure="connection refused",
                 last_failure_error_code="500"), []),
        ]
        waiting = [Waiting(r, tuple(waits_for(r, j, lock_holder=HOLDER if r["id"] == QUEUED
                                              else None)))
                   for r, j in rows if service is None or r["target_service_name"] == service]
        buckets = [Bucket(NOW - dt.timedelta(minutes=9 - i), started=s, completed=c, failed=f,
                          p50_ms=p50, p95_ms=p50 * 3 if p50 else None)
                   for i, (s, c, f, p50) in enumerate([
                       (0, 0, 0, None), (3, 3, 0, 12.0), (10, 9, 1, 14.0), (25, 24, 0, 11.0),
                       (40, 41, 2, 18.0), (38, 37, 0, 15.0), (20, 22, 1, 13.0), (12, 12, 0, 12.0),
                       (30, 28, 3, 40.0), (8, 6, 0, 20.0)])]
        partitions = [{"partition_id": i, "applied_lsn": 1000 + 37 * i,
                       "durable_lsn": 1000 + 37 * i, "first_lsn": 1 + i,
                       "snapshot_lsn": 900 + 30 * i, "invocations": 10 + i,
                       "cmd_per_s": None if i == 3 else 4.0 * i} for i in range(4)]
        retried = [{"id": FLAKY, "target": "Payment/refund", "status": "backing-off",
                    "retry_count": 7, "next_retry_at": NOW + dt.timedelta(seconds=16),
                    "last_failure": "connection refused", "last_failure_error_code": "500"}]
        failures = [{"id": "inv_1hxxG6DT77tO3gMa72c5BfJsaMJiCnjVc1", "target": "Payment/pay",
                     "completed_at": ago(42),
                     "completion_failure": "[400] a payment needs a user_id and a positive "
                                           "amount_cents"}]
        by_status = {"suspended": 2, "pending": 1, "backing-off": 1, "completed": 230}
        return TopData(NOW, "http://127.0.0.1:9070", service, by_status, buckets, 60,
                       partitions, waiting, retried, failures,
                       ["Greeter", "Payment", "PaymentProvider"])

    def detail(self, invocation_id: str) -> RenderableType:
        row = inv(invocation_id, "PaymentProvider/confirm", "suspended", 600,
                  pinned_deployment_id="dp_13MfWZFir37znMjuZ5ybMfT",
                  pinned_service_protocol_version=6, invoked_by="ingress")
        timers = [{"timer_id": f"sleep:{invocation_id}:1", "kind": "sleep",
                   "fire_at": NOW + dt.timedelta(minutes=50)}]
        d = InvocationDetail(row, SLEEP_JOURNAL, timers, [], None, [],
                             waits_for(row, SLEEP_JOURNAL))
        return describe_renderable(d, NOW)

    def trace(self, invocation_id: str) -> RenderableType:
        return trace_renderable(invocation_id, {"spans": []})


def render(top: Top, width: int = 120, height: int = 40) -> str:
    con = Console(width=width, height=height, record=True, file=io.StringIO(),
                  color_system=None, force_terminal=False, legacy_windows=False)
    con.print(top.screen(width, height))
    return "\n".join(line.rstrip() for line in con.export_text().splitlines()) + "\n"


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        if not os.environ.get("UPDATE_SNAPSHOTS") and os.environ.get("CI"):
            pytest.fail(f"missing snapshot {path}")
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"screen differs from {path} (UPDATE_SNAPSHOTS=1 to accept)"


def test_main_screen() -> None:
    text = render(Top(FakeSource()))
    check("top_main", text)
    assert "▶  " + SLEEPER in text
    flat = " ".join(text.replace("│", " ").split())
    assert "the awakeable sign_1" in flat and "the lock of Greeter/alice, held by" in flat
    assert "retry #8 after: [500] connection refused, in 16.0s" in flat


def test_selection_and_filter_input() -> None:
    top = Top(FakeSource())
    top.key("down")
    top.key("down")
    top.key("/")
    for ch in "Payment":
        top.key(ch)
    check("top_filter_input", render(top))
    assert top.selected_id() == QUEUED


def test_filtered_by_service() -> None:
    src = FakeSource()
    top = Top(src)
    for k in ["s", "s"]:  # cycle: Greeter, Payment
        top.key(k)
    assert src.fetched == [None, "Greeter", "Payment"]
    check("top_filtered_payment", render(top, 100, 30))
    top.key("a")
    assert top.service is None


def test_journal_and_trace_views() -> None:
    top = Top(FakeSource())
    top.key("enter")
    assert top.st.view == "journal" and top.st.subject == SLEEPER
    text = render(top)
    check("top_journal", text)
    assert "Command: Sleep" in text and "waiting" in text
    top.key("t")
    check("top_trace", render(top, 100, 12))
    top.key("esc")
    assert top.st.view == "main"
    assert top.key("q") is False
