"""rstq.sdk.testing + Client + typed proxies + combinators, end to end on an rstq server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import pytest
from rstq.sdk import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
    gather,
    select,
)
from rstq.sdk.testing import TestEnv, serve

pytestmark = [pytest.mark.timeout(120)]


@dataclass
class Seat:
    row: int
    number: str


tickets = VirtualObject("Ticket")
booking = Service("Booking")


@tickets.handler()
async def reserve(ctx: ObjectContext, seat: Seat) -> bool:
    if await ctx.get("seat", type_hint=Seat) is not None:
        return False
    ctx.set("seat", seat)
    return True


@tickets.handler(kind="shared")
async def holder(ctx: ObjectSharedContext) -> Seat | None:
    return await ctx.get("seat", type_hint=Seat)


@tickets.handler()
async def release(ctx: ObjectContext) -> None:
    ctx.clear("seat")


class TicketApi(Protocol):
    """Typed view of the Ticket object (checked by mypy at the call sites)."""

    __service_name__ = "Ticket"

    async def reserve(self, seat: Seat) -> bool: ...

    async def release(self) -> None: ...


@booking.handler()
async def book(ctx: Context, ticket: str) -> dict[str, object]:
    ok = await ctx.rpc(TicketApi, key=ticket).reserve(Seat(3, "C"))
    ctx.send(TicketApi, key=ticket, delay=timedelta(milliseconds=200)).release()
    return {"reserved": ok}


@booking.handler()
async def race(ctx: Context, _: None) -> list[object]:
    _, never = ctx.awakeable(type_hint=str)
    return await select(awk=never, timeout=ctx.sleep(timedelta(milliseconds=50)))


@booking.handler()
async def fan_out(ctx: Context, n: int) -> list[int]:
    futs = [ctx.run_typed(f"sq{i}", lambda i=i: i * i) for i in range(n)]  # type: ignore[misc]
    await gather(*futs)
    return [await f for f in futs]


@booking.handler()
async def random_stable(ctx: Context, _: None) -> list[object]:
    return [ctx.random().randint(0, 1000), str(ctx.uuid()), await ctx.time() > 0]


@booking.handler()
async def refuse(ctx: Context, _: None) -> None:
    await ctx.run_typed("x", _boom, RunOptions(max_attempts=1))


def _boom() -> None:
    raise TerminalError("no seats", 409)


@pytest.fixture(scope="module", params=["bidi", "request_response"])
def env(request: pytest.FixtureRequest) -> Iterator[TestEnv]:
    with serve([tickets, booking], http2=request.param == "bidi") as e:
        yield e


def test_client_and_typed_proxies(env: TestEnv) -> None:
    c = env.client
    assert c.call(book, "t1") == {"reserved": True}
    assert c.call(holder, key="t1") == Seat(3, "C")
    assert c.call(book, "t1") == {"reserved": False}
    sent = c.send(reserve, Seat(1, "A"), key="t2", idempotency_key="k")
    assert sent.invocation_id.startswith("inv_1")
    assert c.attach(sent.invocation_id) is True
    assert c.send(reserve, Seat(1, "A"), key="t2", idempotency_key="k").invocation_id == \
        sent.invocation_id


def test_combinators_and_determinism(env: TestEnv) -> None:
    c = env.client
    assert c.call(race, None) == ["timeout", None]
    assert c.call(fan_out, 4) == [0, 1, 4, 9]
    r = c.call(random_stable, None)
    assert isinstance(r[0], int) and r[2] is True
    with pytest.raises(TerminalError) as ei:
        c.call(refuse, None)
    assert (ei.value.status_code, ei.value.message) == (409, "no seats")
