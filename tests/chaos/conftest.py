"""Chaos suite: prints the figures each test recorded (tests/support/chaos.py)."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.support import chaos


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
