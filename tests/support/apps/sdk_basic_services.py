"""Official restate-sdk services for discovery tests (served by hypercorn, see
tests/support/harness/hypercorn_proc.py).

Greeter (SERVICE), Counter (VIRTUAL_OBJECT: exclusive add/reset, shared get), Wf (WORKFLOW:
run + shared signal) and Tuned (a SERVICE using the v3/v4 manifest options).
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from restate.retry_policy import InvocationRetryPolicy

from tests.support.apps.lifespan import with_lifespan

greeter = Service("Greeter", description="says hello", metadata={"team": "rstq"})
counter = VirtualObject("Counter")
wf = Workflow("Wf")
tuned = Service(
    "Tuned",
    inactivity_timeout=timedelta(seconds=30),
    abort_timeout=timedelta(minutes=2),
    journal_retention=timedelta(hours=2),
    idempotency_retention=timedelta(hours=3),
    ingress_private=True,
    invocation_retry_policy=InvocationRetryPolicy(
        initial_interval=timedelta(milliseconds=100),
        exponentiation_factor=1.5,
        max_interval=timedelta(seconds=10),
        max_attempts=5,
        on_max_attempts="kill",
    ),
)


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"hello {name}"


@counter.handler()
async def add(ctx: ObjectContext, v: int) -> int:
    n = await ctx.get("n", type_hint=int) or 0
    ctx.set("n", n + v)
    return n + v


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("n", type_hint=int) or 0


@counter.handler()
async def reset(ctx: ObjectContext) -> None:
    ctx.clear_all()


@wf.main()
async def run(ctx: WorkflowContext, x: str) -> str:
    v = await ctx.promise("p", type_hint=str).value()
    return f"wf {x} {v}"


@wf.handler()
async def signal(ctx: WorkflowSharedContext, v: str) -> None:
    await ctx.promise("p", type_hint=str).resolve(v)


@tuned.handler(
    inactivity_timeout=timedelta(seconds=5),
    invocation_retry_policy=InvocationRetryPolicy(max_attempts=3, on_max_attempts="pause"),
)
async def slow(ctx: Context, n: int) -> int:
    return n


_sdk_app = restate.app(services=[greeter, counter, wf, tuned])


app = with_lifespan(_sdk_app)
