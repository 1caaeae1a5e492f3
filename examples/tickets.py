"""Ticket reservation cart: virtual objects calling each other, plus a durable timer.

* ``TicketObject`` (key: ticket id) owns one ticket's status: AVAILABLE -> RESERVED -> SOLD.
  Its handlers are exclusive, so two carts racing for the same ticket are serialized: exactly one
  ``reserve`` returns true.
* ``CartObject`` (key: user id) holds the user's reserved tickets. ``add_ticket`` reserves the
  ticket with a durable request-response call and schedules ``expire_ticket`` 15 minutes later
  with a delayed one-way send. That timer is stored by the server: it fires even if the service
  and the server restart in between. ``checkout`` pays (``Payment/pay``), marks the tickets sold
  and empties the cart.

Try it::

    curl -X POST http://127.0.0.1:8080/CartObject/alice/add_ticket \\
         -H 'content-type: application/json' -d '"seat-1A"'          # true
    curl -X POST http://127.0.0.1:8080/CartObject/bob/add_ticket \\
         -H 'content-type: application/json' -d '"seat-1A"'          # false: taken
    curl -X POST http://127.0.0.1:8080/CartObject/alice/checkout      # the receipt
    curl -X POST http://127.0.0.1:8080/TicketObject/seat-1A/status    # "SOLD"
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

import rstq.sdk as restate
from rstq.sdk import ObjectContext, ObjectSharedContext, TerminalError

from examples.payment import PaymentRequest, Receipt, pay

ticket_object = restate.VirtualObject("TicketObject")
cart_object = restate.VirtualObject("CartObject")

AVAILABLE, RESERVED, SOLD = "AVAILABLE", "RESERVED", "SOLD"
RESERVATION_TIMEOUT = timedelta(minutes=15)
TICKET_PRICE_CENTS = 40_00


class CheckoutResult(TypedDict):
    tickets: list[str]
    receipt: Receipt


# ---------------------------------------------------------------------------------------------
# TicketObject: one ticket's lifecycle
# ---------------------------------------------------------------------------------------------


@ticket_object.handler()
async def reserve(ctx: ObjectContext) -> bool:
    """Reserve the ticket if it is available; true on success."""
    status = await ctx.get("status", type_hint=str) or AVAILABLE
    if status != AVAILABLE:
        return False
    ctx.set("status", RESERVED)
    return True


@ticket_object.handler()
async def unreserve(ctx: ObjectContext) -> None:
    """Give a reservation back (a sold ticket stays sold)."""
    status = await ctx.get("status", type_hint=str) or AVAILABLE
    if status != SOLD:
        ctx.clear("status")  # no state == AVAILABLE


@ticket_object.handler()
async def mark_as_sold(ctx: ObjectContext) -> None:
    """Turn the reservation into a sale."""
    status = await ctx.get("status", type_hint=str) or AVAILABLE
    if status == RESERVED:
        ctx.set("status", SOLD)


@ticket_object.handler(kind="shared")
async def status(ctx: ObjectSharedContext) -> str:
    """AVAILABLE, RESERVED or SOLD."""
    return await ctx.get("status", type_hint=str) or AVAILABLE


# ---------------------------------------------------------------------------------------------
# CartObject: one user's cart
# ---------------------------------------------------------------------------------------------


@cart_object.handler()
async def add_ticket(ctx: ObjectContext, ticket_id: str) -> bool:
    """Reserve ``ticket_id`` and put it in the cart for 15 minutes; false if it is taken."""
    # A durable call: its result is journaled, so a retry of add_ticket does not reserve twice.
    # While it runs this cart is locked (exclusive handler); the ticket object is locked only
    # for the duration of its own reserve handler.
    reserved = await ctx.object_call(reserve, key=ticket_id, arg=None)
    if not reserved:
        return False
    tickets = await ctx.get("tickets", type_hint=list[str]) or []
    tickets.append(ticket_id)
    ctx.set("tickets", tickets)
    # A durable timer: the server delivers this message in 15 minutes, whatever happens
    # to the service in the meantime.
    ctx.object_send(expire_ticket, key=ctx.key(), arg=ticket_id, send_delay=RESERVATION_TIMEOUT)
    return True


@cart_object.handler()
async def expire_ticket(ctx: ObjectContext, ticket_id: str) -> None:
    """The reservation timed out: drop the ticket if it is still in the cart and release it.

    After a checkout the cart is empty, so the pending timers of sold tickets do nothing.
    """
    tickets = await ctx.get("tickets", type_hint=list[str]) or []
    if ticket_id not in tickets:
        return
    tickets.remove(ticket_id)
    ctx.set("tickets", tickets)
    ctx.object_send(unreserve, key=ticket_id, arg=None)


@cart_object.handler()
async def checkout(ctx: ObjectContext) -> CheckoutResult:
    """Pay for everything in the cart, mark the tickets sold and empty the cart."""
    tickets = await ctx.get("tickets", type_hint=list[str]) or []
    if not tickets:
        raise TerminalError("the cart is empty", status_code=400)
    # A request-response call to another service; Payment/pay waits for the provider's
    # confirmation (an awakeable), which can take a while: the cart stays locked meanwhile, so
    # it cannot change half-way through the checkout.
    request = PaymentRequest(user_id=ctx.key(), amount_cents=TICKET_PRICE_CENTS * len(tickets),
                             description="tickets " + ", ".join(tickets))
    receipt: Receipt = await ctx.service_call(pay, arg=request)
    for ticket_id in tickets:
        ctx.object_send(mark_as_sold, key=ticket_id, arg=None)
    ctx.clear("tickets")
    return {"tickets": tickets, "receipt": receipt}


@cart_object.handler(kind="shared")
async def get_tickets(ctx: ObjectSharedContext) -> list[str]:
    """The tickets currently in the cart."""
    return await ctx.get("tickets", type_hint=list[str]) or []
