"""restate-sdk services with the same handler behaviour as the lab services that produced
/work/shared/reference/restate-wire-transcripts.txt (restate-lab/svc.py), wrapped in the wire tap
(tests/support/net/tap.py, file ``$RSTQ_TAP_FILE``). Used by tests/compat/test_transcripts.py.

Differences from the lab, for deterministic tests: ``Greeter/flaky`` counts attempts per input
key (not per process) and retries fast (10 ms); every key is chosen by the test.

Serve with: ``hypercorn tests.support.apps.transcript_services:app``.
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import (
    Context,
    InvocationRetryPolicy,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

from tests.support.net.tap import tap

greeter = Service("Greeter")
counter = VirtualObject("Counter")
holder = VirtualObject("Holder")
wf = Workflow("Wf")
lazy = VirtualObject("Lazy", enable_lazy_state=True)

ATTEMPTS: dict[str, int] = {}


@counter.handler()
async def add(ctx: ObjectContext, v: int) -> int:
    n = await ctx.get("n", type_hint=int) or 0
    n += v
    ctx.set("n", n)
    return n


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("n", type_hint=int) or 0


@counter.handler()
async def keys(ctx: ObjectContext) -> list[str]:
    ctx.set("a", 1)
    ctx.clear("n")
    return await ctx.state_keys()


@holder.handler()
async def put(ctx: ObjectContext, v: str) -> None:
    ctx.set("v", v)


@holder.handler(kind="shared")
async def read(ctx: ObjectSharedContext) -> str:
    return await ctx.get("v", type_hint=str) or ""


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    r = await ctx.run_typed("side", lambda: f"side-{name}")
    await ctx.sleep(timedelta(milliseconds=300))
    n = await ctx.object_call(add, key=name, arg=1)
    ctx.object_send(add, key=name, arg=10, send_delay=timedelta(milliseconds=500))
    return f"hello {name} {r} {n}"


@greeter.handler()
async def wait_awk(ctx: Context, key: str) -> str:
    awk_id, fut = ctx.awakeable(type_hint=str)
    ctx.object_send(put, key=key, arg=awk_id)
    v = await fut
    return f"awakeable got {v}"


@greeter.handler()
async def fail_terminal(ctx: Context) -> str:
    raise restate.TerminalError("nope", status_code=409)


@greeter.handler(invocation_retry_policy=InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=10), exponentiation_factor=1.0,
    max_interval=timedelta(milliseconds=10)))
async def flaky(ctx: Context, key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] % 3 != 0:
        raise ValueError(f"transient failure #{ATTEMPTS[key]}")
    return "ok after retries"


@wf.main()
async def run(ctx: WorkflowContext, x: str) -> str:
    ctx.set("status", "waiting")
    v = await ctx.promise("p", type_hint=str).value()
    ctx.set("status", "done")
    return f"wf {x} {v}"


@wf.handler()
async def signal(ctx: WorkflowSharedContext, v: str) -> None:
    await ctx.promise("p", type_hint=str).resolve(v)


@lazy.handler()
async def bump(ctx: ObjectContext) -> list[object]:
    n = await ctx.get("n", type_hint=int) or 0
    ctx.set("n", n + 1)
    ks = await ctx.state_keys()
    return [n, ks]


app = tap(restate.app(services=[greeter, counter, holder, wf, lazy]))
