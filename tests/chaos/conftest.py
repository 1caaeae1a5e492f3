"""Chaos suite: the chaos service fixture, and the figures each test recorded
(tests/support/harness/chaos.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.harness import chaos
from tests.support.harness.hypercorn_proc import HypercornProcess


@pytest.fixture(scope="module")
def service() -> Iterator[HypercornProcess]:
    """The chaos services (tests/support/apps/chaos_services.py) behind hypercorn."""
    hc = HypercornProcess(chaos.APP).start()
    try:
        yield hc
    finally:
        hc.kill()  # no graceful exit needed: saves the 2 s hypercorn lingers


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not chaos.FIGURES:
        return
    tr = terminalreporter
    tr.section(f"chaos figures ({'long' if chaos.LONG else 'short'} run)")
    for name in sorted(chaos.FIGURES):
        tr.write_line(f"{name}: {json.dumps(chaos.FIGURES[name], sort_keys=True)}")
    path = os.environ.get("RSTQ_CHAOS_FIGURES")
    if path:
        chaos.dump_figures(path)
