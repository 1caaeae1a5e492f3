"""Services for bench/invoke.py, written with the official restate-sdk.

Two ASGI apps with distinct service names, so one server can host both deployments at once:

* ``app``    : BenchGreeter (virtual object), BenchPlain, BenchSteps  -> register normally (BIDI)
* ``app_rr`` : BenchGreeterRR (virtual object)                        -> register use_http_11
"""

from __future__ import annotations

import restate
from restate import Context, ObjectContext, Service, VirtualObject

from tests.support.apps.lifespan import with_lifespan


def _greeter(name: str) -> VirtualObject:
    obj = VirtualObject(name)

    @obj.handler()
    async def greet(ctx: ObjectContext, who: str) -> str:
        n = (await ctx.get("count", type_hint=int) or 0) + 1
        ctx.set("count", n)
        return f"Hello {who} #{n}"

    return obj


greeter = _greeter("BenchGreeter")
greeter_rr = _greeter("BenchGreeterRR")
plain = Service("BenchPlain")
steps = Service("BenchSteps")


@plain.handler()
async def hello(ctx: Context, who: str) -> str:
    return f"Hello {who}"


@steps.handler()
async def three(ctx: Context, who: str) -> str:
    a = await ctx.run_typed("one", lambda: who.upper())
    b = await ctx.run_typed("two", lambda: len(who))
    c = await ctx.run_typed("three", lambda: who[::-1])
    return f"{a}:{b}:{c}"


app = with_lifespan(restate.app(services=[greeter, plain, steps]))
app_rr = with_lifespan(restate.app(services=[greeter_rr]))
