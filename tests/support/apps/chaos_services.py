"""Official restate-sdk services for the chaos suite (tests/chaos), served by hypercorn.

Every workload ends in `Counter/<key>/add(1)`, so the effect of each logical request is one
increment of a known counter, checked exactly by the test:

* `Counter.add` / `Counter.get`: keyed counters (called directly, with idempotency keys);
* `Chain.start` -> `Chain.hop` -> `Counter.add`: a call chain across partitions;
* `Chain.later`: a delayed one-way send from a handler (`object_send(..., send_delay)`);
* `Sleeper.nap`: a durable sleep, then the increment;
* `Waiter.wait`: an awakeable resolved from outside; its id is published in a file (written
  in a `ctx.run`), the test resolves it through the ingress, the handler adds the value;
* `Steps.run`: three `ctx.run` steps; each execution appends `<req> <step> <token>` to a file
  (fsynced) and returns its fresh token. The handler's output is the journaled tokens, so the
  test can check that no step ran again once its result was journaled: the last execution
  recorded for each step must be the journaled one.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import restate
from restate import Context, ObjectContext, ObjectSharedContext, Service, VirtualObject

# Small timeouts, so that paused processes and black-holed connections cost seconds: after 1 s
# without news the request side closes (the handler suspends); an attempt is aborted at 4 s.
TIMEOUTS: dict[str, Any] = {"inactivity_timeout": timedelta(seconds=1),
                            "abort_timeout": timedelta(seconds=4)}
counter = VirtualObject("Counter", **TIMEOUTS)
chain = Service("Chain", **TIMEOUTS)
sleeper = Service("Sleeper", **TIMEOUTS)
waiter = Service("Waiter", **TIMEOUTS)
steps = Service("Steps", **TIMEOUTS)


@counter.handler()
async def add(ctx: ObjectContext, v: int) -> int:
    n = (await ctx.get("n", type_hint=int) or 0) + v
    ctx.set("n", n)
    return n


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("n", type_hint=int) or 0


@chain.handler()
async def start(ctx: Context, key: str) -> int:
    return await ctx.service_call(hop, key)


@chain.handler()
async def hop(ctx: Context, key: str) -> int:
    return await ctx.object_call(add, key, 1)


@chain.handler()
async def later(ctx: Context, req: dict[str, Any]) -> str:
    ctx.object_send(add, req["key"], 1, send_delay=timedelta(milliseconds=int(req["ms"])))
    return "sent"


@sleeper.handler()
async def nap(ctx: Context, req: dict[str, Any]) -> int:
    await ctx.sleep(timedelta(milliseconds=int(req["ms"])))
    return await ctx.object_call(add, req["key"], 1)


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@waiter.handler()
async def wait(ctx: Context, req: dict[str, Any]) -> int:
    awk_id, promise = ctx.awakeable(type_hint=int)

    def publish() -> str:
        tmp = req["file"] + ".tmp"
        with open(tmp, "w") as f:
            f.write(awk_id)
        os.replace(tmp, req["file"])
        return awk_id

    await ctx.run_typed("publish", publish)
    v = await promise
    return await ctx.object_call(add, req["key"], v)


@steps.handler()
async def run(ctx: Context, req: dict[str, Any]) -> list[str]:
    tokens: list[str] = []
    for step in ("s1", "s2", "s3"):
        def execute(step: str = step) -> str:
            token = uuid.uuid4().hex[:12]
            _append(req["file"], f"{req['req']} {step} {token}")
            return token

        tokens.append(await ctx.run_typed(step, execute))
    await ctx.object_call(add, req["key"], 1)
    return tokens


app = restate.app([counter, chain, sleeper, waiter, steps])
