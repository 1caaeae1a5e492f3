"""Compat suite: differential scenarios against restate-server (the oracle) and, later, rstq."""

from __future__ import annotations

import time

import pytest

from tests.support.harness.fixtures import *  # noqa: F401,F403
from tests.support.harness.fixtures import TIMINGS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compat: differential scenario against a Restate-compatible server")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    t = TIMINGS
    if not t.server_start and not t.scenarios:
        return
    w = terminalreporter
    w.section("compat timings")
    if t.install is not None:
        w.line(f"restate-server install check: {t.install:.2f}s")
    for label, secs in t.server_start.items():
        svc = t.service_start.get(label)
        reg = t.register.get(label)
        extra = "" if svc is None else f", service start {svc:.2f}s, register {reg or 0:.3f}s"
        w.line(f"{label}: server start {secs:.2f}s{extra}")
    if t.scenarios:
        slow = sorted(t.scenarios.items(), key=lambda kv: -kv[1])[:5]
        w.line(f"scenarios: {len(t.scenarios)} runs, {sum(t.scenarios.values()):.2f}s total; "
               "slowest: " + ", ".join(f"{k} {v:.2f}s" for k, v in slow))
    w.line(f"compat session wall time: {time.monotonic() - t.session_start:.2f}s")
