"""Orders and payments: reads, and the Stripe webhook."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import stripe
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from ingest_api.auth import AdminOnly, BuyerOrAdmin
from ingest_api.commands import checked_id, command_id, now, pending, refusal, send
from ingest_api.errors import ApiError, not_found
from ingest_api.reads import json_value
from state.order import CancelOrder
from state.payment import CapturePayment, FailPayment, SettleRefund

log = logging.getLogger(__name__)
router = APIRouter(tags=["orders"])

ORDER_STATUSES = ("PENDING", "CONFIRMED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED")
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=500)]


def _public_order(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("paymentIntentId", "version")}


@router.get("/api/orders")
async def list_orders(request: Request, actor: BuyerOrAdmin, status: str | None = None,
                      buyerId: Annotated[str | None, Query(max_length=128)] = None, limit: Limit = 20,
                      cursor: Cursor = None):
    """The caller's orders (an admin's: everyone's, or one buyer's with `buyerId`), optionally by status."""
    where, params = [], []
    if not actor.is_admin or buyerId is not None:
        where.append("buyer_id = %s")
        params.append(actor.user_id if not actor.is_admin else checked_id(buyerId, "buyer"))
    if status is not None:
        if status not in ORDER_STATUSES:
            raise ApiError(422, "invalid", f"status must be one of {', '.join(ORDER_STATUSES)}")
        where.append("status = %s")
        params.append(status)
    rows, next_cursor = await request.app.state.reads.page(" AND ".join(where), params, "order_id", cursor, limit,
                                                           "SELECT body, order_id FROM orders")
    return {"items": [_public_order(json_value(r["body"])) for r in rows], "nextCursor": next_cursor}


async def _buyers(request: Request, table: str, key: str, value: str, actor) -> dict:
    """The view body of a row only its buyer (or an admin) may see; 404 for anyone else."""
    what = table.rstrip("s")
    checked_id(value, what)
    row = await request.app.state.reads.one(f"SELECT buyer_id, body FROM {table} WHERE {key} = %s", value)
    if row is None or not (actor.is_admin or row["buyer_id"] == actor.user_id):
        raise not_found(what)
    return json_value(row["body"])


@router.get("/api/orders/{order_id}")
async def get_order(request: Request, order_id: str, actor: BuyerOrAdmin):
    """One order with its items and shipments (its buyer or an admin). While it waits to be paid its
    buyer also gets the PaymentIntent's `clientSecret` (fetched from Stripe, never stored by us), so a
    checkout answered `202` can still be paid."""
    body = await _buyers(request, "orders", "order_id", order_id, actor)
    order = _public_order(body)
    if body.get("buyerId") == actor.user_id and body.get("status") == "PENDING" and body.get("paymentIntentId"):
        try:
            order["clientSecret"] = await run_in_threadpool(request.app.state.stripe.client_secret,
                                                            body["paymentIntentId"])
        except stripe.StripeError as err:  # the order itself is still worth answering
            log.warning("no client secret for order %s: %s", order_id, err)
            order["clientSecret"] = None
    return order


@router.post("/api/orders/{order_id}/cancel")
async def cancel_order(request: Request, order_id: str, actor: BuyerOrAdmin):
    """Cancel a PENDING order (its buyer or an admin): its stock is released, and the payments worker
    cancels its PaymentIntent at Stripe so the client secret can no longer be paid."""
    checked_id(order_id, "order")
    command = CancelOrder(command_id=command_id(request, actor), now=now(), actor=actor, order_id=order_id,
                          reason="cancelled_by_buyer")
    result = await send(request, "order", order_id, command)
    if result is None:
        return pending(command.command_id)
    if not result.ok:
        raise refusal(result)
    return _public_order(result.body)


PAYMENT_STATES = ("CREATED", "CAPTURED", "FAILED", "CANCELLED", "REFUND_PENDING", "REFUNDED")


@router.get("/api/payments")
async def list_payments(request: Request, actor: AdminOnly, state: str | None = None,
                        orderId: Annotated[str | None, Query(max_length=128)] = None, limit: Limit = 20,
                        cursor: Cursor = None):
    """Payments, optionally in one state (e.g. `REFUND_PENDING`: money owed back) or of one order (admins)."""
    where, params = [], []
    if state is not None:
        if state not in PAYMENT_STATES:
            raise ApiError(422, "invalid", f"state must be one of {', '.join(PAYMENT_STATES)}")
        where.append("state = %s")
        params.append(state)
    if orderId is not None:
        where.append("order_id = %s")
        params.append(checked_id(orderId, "order"))
    rows, next_cursor = await request.app.state.reads.page(" AND ".join(where), params, "payment_id", cursor, limit,
                                                           "SELECT body, payment_id FROM payments")
    return {"items": [{k: v for k, v in json_value(r["body"]).items() if k != "version"} for r in rows],
            "nextCursor": next_cursor}


@router.get("/api/payments/{payment_id}")
async def get_payment(request: Request, payment_id: str, actor: BuyerOrAdmin):
    """A payment (its buyer or an admin)."""
    return {k: v for k, v in (await _buyers(request, "payments", "payment_id", payment_id, actor)).items()
            if k != "version"}


@router.post("/api/payments/webhooks/stripe")
async def stripe_webhook(request: Request):
    """Stripe's signed events: `payment_intent.succeeded` captures, `payment_intent.payment_failed` fails,
    `charge.refunded` settles a refund.

    Each Stripe event becomes one command whose id derives from the event id, so
    any number of deliveries has one effect. Unknown event types are acknowledged.
    """
    payload = await request.body()
    try:
        event = request.app.state.stripe.verify(payload, request.headers.get("stripe-signature"))
    except ValueError as err:
        raise ApiError(400, "invalid_signature", f"the webhook signature does not verify: {err}") from err
    kind = event.get("type")
    if kind not in ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"):
        return {"received": True, "ignored": kind}
    obj = (event.get("data") or {}).get("object") or {}
    # a charge names its PaymentIntent; a PaymentIntent is one
    intent_id = str(obj.get("payment_intent") or "") if kind == "charge.refunded" else str(obj.get("id", ""))
    event_id = str(event.get("id", ""))
    payment_id = (obj.get("metadata") or {}).get("paymentId")
    if not payment_id:
        row = await request.app.state.reads.one("SELECT payment_id FROM payments WHERE intent_id = %s", intent_id)
        payment_id = row and row["payment_id"]
    if not event_id:
        raise ApiError(400, "bad_request", "the Stripe event has no id")
    if not payment_id:  # not 2xx: Stripe delivers it again, by when the payment may be known
        log.warning("Stripe event %s for unknown PaymentIntent %s", event_id, intent_id)
        raise ApiError(404, "not_found", f"no payment for PaymentIntent {intent_id!r} yet; deliver it again")
    command_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"stripe-event:{event_id}"))
    if kind == "payment_intent.succeeded":
        command = CapturePayment(command_id=command_id, now=now(), payment_id=payment_id, stripe_event_id=event_id,
                                 intent_id=intent_id, amount_cents=obj.get("amount_received") or obj.get("amount"))
    elif kind == "charge.refunded":
        refund = ((obj.get("refunds") or {}).get("data") or [{}])[0]
        command = SettleRefund(command_id=command_id, now=now(), payment_id=payment_id,
                               refund_id=str(refund.get("id") or obj.get("id") or event_id),
                               refund_key=str((refund.get("metadata") or {}).get("refundKey") or ""))
    else:
        error = obj.get("last_payment_error") or {}
        command = FailPayment(command_id=command_id, now=now(), payment_id=payment_id, stripe_event_id=event_id,
                              intent_id=intent_id, reason=str(error.get("message") or error.get("code") or "failed"))
    try:
        await request.app.state.bus.send("payment", payment_id, command, wait=False)
    except RuntimeError as err:  # not recorded: let Stripe deliver it again
        raise ApiError(503, "unavailable", f"the event could not be recorded: {err}") from err
    return {"received": True}
