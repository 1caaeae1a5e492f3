"""Typed proxies are checked by mypy: right calls pass, wrong argument/result types fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

GOOD = '''
from datetime import timedelta
from typing import Protocol
from rstq.sdk import Context, SendHandle

class TicketApi(Protocol):
    async def reserve(self, ticket_id: str) -> bool: ...

class SessionApi(Protocol):
    def expire(self, session_id: str) -> SendHandle: ...

async def handler(ctx: Context) -> bool:
    ctx.send(SessionApi, delay=timedelta(minutes=15)).expire("s1")
    return await ctx.rpc(TicketApi, key="k").reserve("t1")
'''

BAD = GOOD + '''
async def wrong(ctx: Context) -> str:
    return await ctx.rpc(TicketApi).reserve(42)
'''


@pytest.mark.timeout(300)
def test_mypy_checks_typed_proxies(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    # mypy cannot follow the package-dir mapping: give it an rstq/{sdk,protocol} symlink tree
    (tmp_path / "stubs" / "rstq").mkdir(parents=True)
    (tmp_path / "stubs" / "rstq" / "__init__.py").write_text("")
    (tmp_path / "stubs" / "rstq" / "sdk").symlink_to(REPO / "sdk")
    (tmp_path / "stubs" / "rstq" / "protocol").symlink_to(REPO / "protocol")  # the SDK's codec
    env = {**os.environ, "MYPYPATH": str(tmp_path / "stubs")}
    good = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           str(tmp_path / "good.py")], capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stdout
    bad = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          str(tmp_path / "bad.py")], capture_output=True, text=True, env=env)
    assert 'incompatible type "int"; expected "str"' in bad.stdout
    assert 'has type "bool", expected "str"' in bad.stdout or "bool" in bad.stdout
