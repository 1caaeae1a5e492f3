"""Payment: an idempotent side effect plus an awakeable completed by an external system.

``Payment/pay`` shows the two tools for talking to the outside world durably:

1. ``ctx.run_typed``: the charge at the (fake) payment provider runs at most once successfully;
   its result is journaled, so retries and replays reuse it instead of charging again. The
   provider call carries an idempotency token derived from the journal (``ctx.uuid()``), so even
   a retry of the side effect itself (crash after the charge, before the journal entry was
   stored) is deduplicated by the provider.
2. ``ctx.awakeable()``: a durable promise that somebody *outside* the handler completes by id.
   Real providers confirm asynchronously (webhook, 3-D Secure, ...). Here ``PaymentProvider``
   plays the provider: ``pay`` hands it the awakeable id with a one-way send, it waits a little
   (durable ``ctx.sleep``) and resolves the awakeable with ``ctx.resolve_awakeable``. While
   ``pay`` waits, it holds no thread, and on restate-server / rstq it may even be suspended.

Try it::

    curl -X POST http://127.0.0.1:8080/Payment/pay \\
         -H 'content-type: application/json' -d '{"user_id": "alice", "amount_cents": 4000}'

Confirm by hand instead: with ``"auto_confirm": false`` nobody resolves the awakeable, and
``pay`` logs its id together with the curl line that resolves (or rejects) it from outside::

    curl -X POST http://127.0.0.1:8080/Payment/pay/send \\
         -H 'content-type: application/json' \\
         -d '{"user_id": "bob", "amount_cents": 1500, "auto_confirm": false}'
    # the examples' log shows: ... awakeable sign_1... ; then:
    curl -X POST http://127.0.0.1:8080/restate/awakeables/sign_1.../resolve \\
         -H 'content-type: application/json' -d '"confirmed by hand"'
    # or: curl -X POST http://127.0.0.1:8080/restate/awakeables/sign_1.../reject -d 'declined'
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from typing import NotRequired, TypedDict

import rstq.sdk as restate
from rstq.sdk import Context, TerminalError

# Like logging.getLogger, but drops records while the handler replays its journal.
logger = restate.getLogger(__name__)

payment = restate.Service("Payment")
payment_provider = restate.Service("PaymentProvider")

# Only used to print copy-pasteable curl lines (examples/run.py sets it).
INGRESS = os.environ.get("EXAMPLES_INGRESS_URL", "http://127.0.0.1:8080")


class PaymentRequest(TypedDict):
    user_id: str
    amount_cents: int
    description: NotRequired[str]
    # False: nobody confirms automatically; resolve the logged awakeable id with curl.
    auto_confirm: NotRequired[bool]
    # How long the simulated provider takes to confirm (default 500 ms).
    confirm_delay_ms: NotRequired[int]


class Charge(TypedDict):
    charge_id: str
    user_id: str
    amount_cents: int
    status: str


class Receipt(TypedDict):
    payment_id: str
    charge_id: str
    user_id: str
    amount_cents: int
    description: str
    confirmation: str


class ConfirmationRequest(TypedDict):
    awakeable_id: str
    charge_id: str
    delay_ms: int


def charge_card(idempotency_key: str, user_id: str, amount_cents: int) -> Charge:
    """Stand-in for the payment provider's "create charge" API (no network).

    A real provider deduplicates by ``Idempotency-Key``; this pure function models that: the same
    key always yields the same charge id.
    """
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
    return {"charge_id": f"ch_{digest}", "user_id": user_id, "amount_cents": amount_cents,
            "status": "pending_confirmation"}


@payment.handler()
async def pay(ctx: Context, req: PaymentRequest) -> Receipt:
    """Charge ``req["amount_cents"]`` to ``req["user_id"]`` and wait for the confirmation."""
    if req.get("amount_cents", 0) <= 0 or not req.get("user_id"):
        # A TerminalError is not retried: it completes the invocation with this failure
        # (HTTP 400 at the ingress).
        raise TerminalError("a payment needs a user_id and a positive amount_cents",
                            status_code=400)

    # Deterministic: the same value on every retry/replay of this invocation (seeded by the
    # invocation id; str(ctx.request().id) would work as well).
    payment_id = str(ctx.uuid())
    charge = await ctx.run_typed("charge card", charge_card, idempotency_key=payment_id,
                                 user_id=req["user_id"], amount_cents=req["amount_cents"])

    # A durable promise, completed from outside by id: by PaymentProvider below or by curl.
    confirmation_id, confirmation = ctx.awakeable(type_hint=str)
    if req.get("auto_confirm", True):
        request = ConfirmationRequest(awakeable_id=confirmation_id,
                                      charge_id=charge["charge_id"],
                                      delay_ms=req.get("confirm_delay_ms", 500))
        # One-way send: enqueued durably, runs independently of this invocation.
        ctx.service_send(confirm, arg=request)
        logger.info("payment %s of %s: charge %s awaits confirmation (awakeable %s)",
                    payment_id, req["user_id"], charge["charge_id"], confirmation_id)
    else:
        # restate.getLogger() drops records while the handler replays its journal.
        logger.warning("payment %s of %s: charge %s awaits manual confirmation, awakeable %s ; "
                       "resolve: curl -X POST %s/restate/awakeables/%s/resolve "
                       "-H 'content-type: application/json' -d '\"ok\"'",
                       payment_id, req["user_id"], charge["charge_id"], confirmation_id,
                       INGRESS, confirmation_id)

    # Rejecting the awakeable (".../reject") raises a TerminalError here, failing the payment.
    confirmed = await confirmation
    return {"payment_id": payment_id, "charge_id": charge["charge_id"],
            "user_id": req["user_id"], "amount_cents": req["amount_cents"],
            "description": req.get("description", ""), "confirmation": confirmed}


@payment_provider.handler()
async def confirm(ctx: Context, req: ConfirmationRequest) -> None:
    """The provider's asynchronous confirmation (its "webhook"), after a short durable sleep."""
    await ctx.sleep(timedelta(milliseconds=req["delay_ms"]))
    ctx.resolve_awakeable(req["awakeable_id"], f"confirmed {req['charge_id']}")
