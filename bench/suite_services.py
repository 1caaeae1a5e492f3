"""Services for bench/suite.py, one definition built twice: with the official restate-sdk
(``app``, the default) and with rstq.sdk (``app`` when $BENCH_SDK=rstq); the two SDKs share
the API, only the module differs.

* BenchGreeter/<key>/greet   virtual object, ctx.get + ctx.set
* BenchSteps/three           service, three ctx.run steps
* BenchSteps/two             service, two ctx.run steps (the SQL data shape)
* BenchChainA/<key>/go       object -> BenchChainB/<key>/go (object) -> BenchChainLeaf/leaf
* BenchTimer/fire            service fired by delayed sends: appends "<tag> <lateness ms>" to
                             the file named by $BENCH_FIRE_LOG (lateness = now - body["due"])
"""

from __future__ import annotations

import os
import time
from types import ModuleType
from typing import Any

from tests.support.apps.lifespan import with_lifespan


def build(sdk: ModuleType) -> list[Any]:
    greeter = sdk.VirtualObject("BenchGreeter")
    steps = sdk.Service("BenchSteps")
    chain_a = sdk.VirtualObject("BenchChainA")
    chain_b = sdk.VirtualObject("BenchChainB")
    leaf = sdk.Service("BenchChainLeaf")
    timer = sdk.Service("BenchTimer")

    @greeter.handler()
    async def greet(ctx: Any, who: str) -> str:
        n = (await ctx.get("count", type_hint=int) or 0) + 1
        ctx.set("count", n)
        return f"Hello {who} #{n}"

    @steps.handler()
    async def three(ctx: Any, who: str) -> str:
        a = await ctx.run_typed("one", lambda: who.upper())
        b = await ctx.run_typed("two", lambda: len(who))
        c = await ctx.run_typed("three", lambda: who[::-1])
        return f"{a}:{b}:{c}"

    @steps.handler()
    async def two(ctx: Any, who: str) -> str:
        a = await ctx.run_typed("one", lambda: who.upper())
        b = await ctx.run_typed("two", lambda: len(who))
        return f"{a}:{b}"

    @leaf.handler(name="leaf")
    async def leaf_handler(ctx: Any, who: str) -> str:
        return f"leaf {who}"

    @chain_b.handler(name="go")
    async def go_b(ctx: Any, who: str) -> str:
        return "b>" + await ctx.service_call(leaf_handler, arg=who)

    @chain_a.handler(name="go")
    async def go_a(ctx: Any, who: str) -> str:
        return "a>" + await ctx.object_call(go_b, key=ctx.key(), arg=who)

    @timer.handler()
    async def fire(ctx: Any, msg: dict[str, Any]) -> None:
        late = time.time() * 1000 - float(msg["due"])
        path = os.environ.get("BENCH_FIRE_LOG")
        if path:
            with open(path, "a") as f:
                f.write(f"{msg['tag']} {late:.1f}\n")

    return [greeter, steps, chain_a, chain_b, leaf, timer]


def _official() -> Any:
    import restate

    return with_lifespan(restate.app(services=build(restate)))


def _rstq_sdk() -> Any:
    import rstq.sdk

    return with_lifespan(rstq.sdk.app(services=build(rstq.sdk)))


# $BENCH_SDK=rstq serves the rstq.sdk build (only that SDK is imported), else restate-sdk.
app = _rstq_sdk() if os.environ.get("BENCH_SDK") == "rstq" else _official()
