"""Services for the crash tests, written once for both SDKs (`build(sdk)`); this module serves
them with the official restate-sdk, `rstq_sdk_crash_services` with rstq.sdk.

Tally: a counter per key. Steps: three `ctx.run` steps; each execution appends a line to a
marker file named in the input, and step 2 waits for a `go` file so the test can kill the
service process while it runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import restate


def _mark(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def build(sdk: ModuleType) -> Any:
    """The ASGI app of Tally and Steps on `sdk` (restate or rstq.sdk: the same API)."""
    tally = sdk.VirtualObject("Tally")
    steps = sdk.Service("Steps")

    @tally.handler()
    async def add(ctx: Any, v: int) -> int:
        n = (await ctx.get("n", type_hint=int) or 0) + v
        ctx.set("n", n)
        return n

    @tally.handler(kind="shared")
    async def get(ctx: Any) -> int:
        return await ctx.get("n", type_hint=int) or 0

    @steps.handler()
    async def run3(ctx: Any, marker: str) -> str:
        def step1() -> str:
            _mark(marker, "step1")
            return "a"

        def step2() -> str:
            _mark(marker, "step2")
            deadline = time.monotonic() + 60
            while not Path(marker + ".go").exists():  # the test kills us here the first time
                if time.monotonic() > deadline:
                    raise TimeoutError("no go file")
                time.sleep(0.02)
            return "b"

        def step3() -> str:
            _mark(marker, "step3")
            return "c"

        a = await ctx.run("step1", step1)
        b = await ctx.run("step2", step2)
        c = await ctx.run("step3", step3)
        return a + b + c

    return sdk.app([tally, steps])


app = build(restate)
