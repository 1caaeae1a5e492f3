"""Greeter: the "hello world" of durable state.

``Greeter`` is a *virtual object*: every key (here: a person's name) has its own isolated,
durable key-value state, and exclusive handlers for one key run one at a time, so the
read-modify-write below needs no locks and can never lose an update::

    curl -X POST http://127.0.0.1:8080/Greeter/alice/greet
    # "Hello alice, you have been greeted 1 times"
    curl -X POST http://127.0.0.1:8080/Greeter/alice/count
    # 1
"""

from __future__ import annotations

import rstq.sdk as restate
from rstq.sdk import ObjectContext, ObjectSharedContext

greeter = restate.VirtualObject("Greeter")

# State key under which each name's counter is stored.
COUNT = "count"


@greeter.handler()
async def greet(ctx: ObjectContext) -> str:
    """Greet the object's key (the name) and remember how often we did.

    Exclusive handler (the default kind): calls for the same name are queued and run one after
    the other; calls for different names run in parallel.
    """
    name = ctx.key()
    count = (await ctx.get(COUNT, type_hint=int) or 0) + 1
    # The state update is journaled together with the invocation's completion: either both
    # happen or neither does, even if the service or the server crashes in between.
    ctx.set(COUNT, count)
    return f"Hello {name}, you have been greeted {count} times"


@greeter.handler(kind="shared")
async def count(ctx: ObjectSharedContext) -> int:
    """How often the name was greeted.

    A *shared* handler may only read state; it runs concurrently with other handlers of the same
    key (it does not wait for queued ``greet`` calls).
    """
    return await ctx.get(COUNT, type_hint=int) or 0
