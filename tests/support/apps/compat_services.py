"""Restate services written with the official restate-sdk (``import restate``), used by the
differential compat suite (tests/support/harness/scenarios.py). They exercise every protocol
feature a client can observe through the ingress: state, run steps (retryable and terminal),
sleep, calls, one-way sends with delay, awakeables, workflow promises, terminal errors,
cancellation.

Serve with: ``hypercorn tests.support.apps.compat_services:app`` (see
tests/support/harness/service_proc.py).

All keys are chosen by the scenarios (namespaced per run), so one server can host several runs.
Process-local retry counters are keyed by the caller-chosen key, so every run starts at zero.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import restate
from restate import (
    Context,
    InvocationRetryPolicy,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

# Failure counters for the retry scenarios: per process (one per deployment), keyed by input.
ATTEMPTS: dict[str, int] = {}

greeter = Service("Greeter")
counter = VirtualObject("Counter")
mailbox = VirtualObject("Mailbox")
signup = Workflow("Signup")


# --------------------------------------------------------------------------------------------
# Counter: exclusive handlers with get/set/clear/clear_all, shared getters, state_keys.
# --------------------------------------------------------------------------------------------


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    n = await ctx.get("count", type_hint=int) or 0
    n += delta
    ctx.set("count", n)
    return n


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


@counter.handler()
async def tag(ctx: ObjectContext, label: str) -> None:
    ctx.set("label", label)


@counter.handler()
async def untag(ctx: ObjectContext) -> None:
    ctx.clear("label")


@counter.handler(kind="shared")
async def keys(ctx: ObjectSharedContext) -> list[str]:
    return sorted(await ctx.state_keys())


@counter.handler()
async def reset(ctx: ObjectContext) -> None:
    ctx.clear_all()


# --------------------------------------------------------------------------------------------
# Mailbox: side channel a running handler uses to publish e.g. its awakeable id.
# --------------------------------------------------------------------------------------------


@mailbox.handler()
async def put(ctx: ObjectContext, value: str) -> None:
    ctx.set("value", value)


@mailbox.handler(kind="shared")
async def read(ctx: ObjectSharedContext) -> str:
    return await ctx.get("value", type_hint=str) or ""


# --------------------------------------------------------------------------------------------
# Greeter: a stateless service.
# --------------------------------------------------------------------------------------------


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def no_input(ctx: Context) -> dict[str, Any]:
    return {"ok": True, "items": [1, 2.5, "x", None]}


@greeter.handler()
async def request_info(ctx: Context, _: Any) -> dict[str, Any]:
    """What the handler sees of the ingress request (forwarded headers)."""
    hdrs = {k.lower(): v for k, v in ctx.request().headers.items()}
    return {
        "ingress_path": hdrs.get("x-restate-ingress-path"),
        "x_test": hdrs.get("x-test"),
        "has_idempotency_key": "idempotency-key" in hdrs,
        "has_host": "host" in hdrs,
    }


@greeter.handler()
async def steps(ctx: Context, name: str) -> dict[str, Any]:
    a = await ctx.run_typed("upper", lambda: name.upper())
    b = await ctx.run_typed("length", lambda: len(name))
    return {"upper": a, "length": b}


@greeter.handler()
async def run_flaky(ctx: Context, key: str) -> str:
    """A ctx.run step failing retryably twice, then succeeding (per-process counter)."""

    def attempt() -> str:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        if ATTEMPTS[key] < 3:
            raise ValueError(f"transient failure {ATTEMPTS[key]}")
        return f"ok after {ATTEMPTS[key]} attempts"

    opts: RunOptions[str] = RunOptions(max_attempts=10,
                                       initial_retry_interval=timedelta(milliseconds=10))
    return await ctx.run_typed("flaky", attempt, opts)


@greeter.handler()
async def run_exhausted(ctx: Context, key: str) -> str:
    """A ctx.run step that always fails retryably; gives up after max_attempts=2."""

    def attempt() -> str:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        raise ValueError("always failing")

    opts: RunOptions[str] = RunOptions(max_attempts=2,
                                       initial_retry_interval=timedelta(milliseconds=10))
    return await ctx.run_typed("doomed", attempt, opts)


@greeter.handler()
async def run_terminal(ctx: Context, _: Any) -> str:
    """A ctx.run step raising TerminalError: recorded in the journal, fails the invocation."""

    def attempt() -> str:
        raise TerminalError("step refused", status_code=422)

    return await ctx.run_typed("refuse", attempt)


@greeter.handler()
async def run_terminal_caught(ctx: Context, _: Any) -> dict[str, Any]:
    def attempt() -> str:
        raise TerminalError("step refused", status_code=422)

    try:
        await ctx.run_typed("refuse", attempt)
    except TerminalError as e:
        return {"caught": e.message, "code": e.status_code}
    return {"caught": None}


FAST_RETRY = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=10),
                                   exponentiation_factor=1.0,
                                   max_interval=timedelta(milliseconds=10))


@greeter.handler(invocation_retry_policy=FAST_RETRY)
async def flaky_handler(ctx: Context, key: str) -> str:
    """The handler itself fails retryably twice (server-side retry policy), then succeeds."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise ValueError(f"handler failure {ATTEMPTS[key]}")
    return f"handler ok after {ATTEMPTS[key]} attempts"


@greeter.handler(invocation_retry_policy=InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=10), max_attempts=2, on_max_attempts="kill"))
async def always_failing(ctx: Context, key: str) -> str:
    """Fails retryably on every attempt; the server kills it after 2 attempts."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    raise ValueError(f"handler failure {ATTEMPTS[key]}")


@greeter.handler()
async def attempts(ctx: Context, key: str) -> int:
    """How many attempts this process saw for ``key`` (non-deterministic on purpose: only
    read it for invocations that already finished)."""
    return ATTEMPTS.get(key, 0)


@greeter.handler()
async def fail_terminal(ctx: Context, _: Any) -> str:
    raise TerminalError("nope, conflict", status_code=409)


@greeter.handler()
async def sleepy(ctx: Context, millis: int) -> str:
    await ctx.sleep(timedelta(milliseconds=millis))
    return f"slept {millis}ms"


@greeter.handler()
async def orchestrate(ctx: Context, key: str) -> dict[str, Any]:
    """service call + object call + delayed one-way object send + one-way service send."""
    greeting = await ctx.service_call(greet, arg="orchestra")
    first = await ctx.object_call(add, key=key, arg=5)
    ctx.object_send(add, key=key, arg=10, send_delay=timedelta(milliseconds=200))
    ctx.service_send(greet, arg="fire-and-forget")
    ctx.object_send(tag, key=key, arg="sent")
    return {"greeting": greeting, "first": first}


@greeter.handler()
async def wait_awakeable(ctx: Context, key: str) -> str:
    """Creates an awakeable, publishes its id via Mailbox/<key>/put (one-way), waits for it."""
    awk_id, fut = ctx.awakeable(type_hint=str)
    ctx.object_send(put, key=key, arg=awk_id)
    value = await fut
    return f"awakeable resolved with {value}"


@greeter.handler()
async def resolve_other(ctx: Context, req: dict[str, str]) -> None:
    """Resolves somebody else's awakeable from inside a handler (CompleteAwakeable)."""
    ctx.resolve_awakeable(req["id"], req["value"])


@greeter.handler()
async def long_sleep(ctx: Context, key: str) -> str:
    """Announces itself via Mailbox/<key>, then sleeps 10 minutes (cancelled by the test)."""
    ctx.object_send(put, key=key, arg="sleeping")
    await ctx.sleep(timedelta(minutes=10))
    return "woke up"


# --------------------------------------------------------------------------------------------
# Signup: a workflow with durable promises.
# --------------------------------------------------------------------------------------------


@signup.main()
async def run(ctx: WorkflowContext, name: str) -> str:
    ctx.set("status", "waiting")
    approver = await ctx.promise("approval", type_hint=str).value()
    ctx.set("status", "done")
    return f"{name} approved by {approver}"


@signup.handler()
async def approve(ctx: WorkflowSharedContext, who: str) -> None:
    await ctx.promise("approval", type_hint=str).resolve(who)


@signup.handler()
async def deny(ctx: WorkflowSharedContext, why: str) -> None:
    await ctx.promise("approval", type_hint=str).reject(why, 403)


@signup.handler()
async def peek(ctx: WorkflowSharedContext) -> str | None:
    return await ctx.promise("approval", type_hint=str).peek()


@signup.handler()
async def status(ctx: WorkflowSharedContext) -> str:
    return await ctx.get("status", type_hint=str) or "none"


app = restate.app(services=[greeter, counter, mailbox, signup])
