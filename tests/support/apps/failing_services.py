"""A handler that always raises (official restate-sdk), for the "failing handler" tests: how a
failure is logged, kept (sys_journal_events, `rstq inv describe`) and stopped (cancel while
backing off). Serve with `hypercorn tests.support.apps.failing_services:app`."""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import Context, InvocationRetryPolicy

ATTEMPTS: dict[str, int] = {}  # per process, keyed by the caller's key

failing = restate.Service("Failing")

# A constant 1 s backoff: the invocation spends most of its time backing off.
STEADY = InvocationRetryPolicy(initial_interval=timedelta(seconds=1), exponentiation_factor=1.0,
                               max_interval=timedelta(seconds=1))


@failing.handler(invocation_retry_policy=STEADY)
async def always(ctx: Context, key: str) -> str:
    """Raises before awaiting anything, on every attempt: it never sees a cancellation."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    raise ValueError(f"always failing ({key}, attempt {ATTEMPTS[key]})")


@failing.handler()
async def attempts(ctx: Context, key: str) -> int:
    """How many attempts of `always` this process saw for `key` (read it, do not journal it)."""
    return ATTEMPTS.get(key, 0)


app = restate.app([failing])
