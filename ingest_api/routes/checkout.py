"""Checkout: cart → order with hard allocations → Stripe PaymentIntent, all or nothing."""

from __future__ import annotations

import logging
import time

import stripe
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from buyit.settings import get_settings
from ingest_api.auth import BuyerOrAdmin
from ingest_api.commands import RETRY_AFTER_S, checked_id, command_id, now, pending, refusal, send
from ingest_api.errors import ApiError, not_found
from ingest_api.reads import json_value
from state.cart import Checkout, Listing
from state.common import derived_id
from state.stripe_actions import payment_attempt

log = logging.getLogger(__name__)
router = APIRouter(tags=["checkout"])


@router.post("/api/cart/checkout", status_code=201)
async def checkout(request: Request, actor: BuyerOrAdmin):
    """One order (one shipment per seller), every item hard-allocated, one PaymentIntent for the total.

    The payments worker creates the intent once the stock is allocated; this waits for it (within the
    command wait, else `202`: the order shows its client secret once the intent exists). Retrying with
    the same `Idempotency-Key` returns the same order and client secret.
    """
    settings = get_settings()
    cid = command_id(request, actor)
    order_id, payment_id = derived_id(cid, "order"), derived_id(cid, "payment")
    started = time.monotonic()
    result = await send(request, "cart", actor.user_id, Checkout(
        command_id=cid, now=now(), actor=actor, buyer_id=actor.user_id, order_id=order_id, payment_id=payment_id,
        allocation_ttl_s=settings.buyit_hard_reservation_ttl_s, fee_bps=settings.buyit_platform_fee_bps,
        listings=await _listings(request, actor.user_id)))
    if result is None:
        return pending(cid, orderId=order_id, paymentId=payment_id)
    if not result.ok:
        raise refusal(result)
    intent_id = await _intent_of(request, order_id, payment_id,
                                 max(0.0, settings.buyit_command_wait_s - (time.monotonic() - started)))
    if intent_id is None:  # the order appears on GET /api/orders/{orderId}, with its client secret once made
        return pending(cid, orderId=order_id, paymentId=payment_id)
    try:
        client_secret = await run_in_threadpool(request.app.state.stripe.client_secret, intent_id)
    except stripe.StripeError as err:
        raise ApiError(503, "unavailable", "Stripe did not answer; the order stands, ask for it again",
                       retry_after=RETRY_AFTER_S, orderId=order_id) from err
    return JSONResponse({"orderId": order_id, "paymentId": payment_id, "clientSecret": client_secret,
                         "checkoutUrl": f"{settings.public_url}/checkout/{payment_id}"}, 201)


# The buyer's open cart's products as the catalog lists them now: the cart refuses an item no longer for
# sale and takes a changed price before anything is charged.
_LISTINGS = """SELECT p.product_id, p.price_cents, p.currency, p.status FROM carts c
               CROSS JOIN LATERAL jsonb_array_elements(c.items) AS i
               JOIN products p ON p.product_id = i->>'productId'
               WHERE c.buyer_id = %s AND c.status = 'ACTIVE'"""


async def _listings(request: Request, buyer_id: str) -> tuple[Listing, ...]:
    rows = await request.app.state.reads.all(_LISTINGS, buyer_id)
    return tuple(Listing(product_id=r["product_id"], price_cents=r["price_cents"], currency=r["currency"].strip(),
                         active=r["status"] == "ACTIVE") for r in rows)


async def _intent_of(request: Request, order_id: str, payment_id: str, wait_s: float) -> str | None:
    """The order's PaymentIntent: from the view if it is attached already (a retry), else from the
    answer to the payments worker's attempt; None if that is not in within `wait_s`."""
    row = await request.app.state.reads.one("SELECT body FROM orders WHERE order_id = %s", order_id)
    body = json_value(row["body"]) if row else {}
    if body.get("paymentIntentId"):
        return body["paymentIntentId"]
    attempt = await request.app.state.bus.wait(payment_attempt(payment_id), wait_s)
    if attempt is None:
        return None
    if not attempt.ok:
        raise refusal(attempt)
    answer = attempt.body or {}
    if answer.get("cancelReason") == "payment_creation_failed":
        raise ApiError(502, "payment_unavailable", "the payment could not be created; the order was cancelled",
                       orderId=order_id)
    if answer.get("status") == "CANCELLED":
        raise ApiError(409, "order_cancelled", "the order was cancelled", orderId=order_id,
                       reason=answer.get("cancelReason"))
    return answer.get("paymentIntentId")


@router.get("/checkout/{payment_id}", include_in_schema=False, response_class=HTMLResponse)
async def checkout_page(request: Request, payment_id: str):
    """A bare page naming what is to be paid; a storefront confirms the intent with Stripe.js."""
    checked_id(payment_id, "payment")
    row = await request.app.state.reads.one("SELECT amount_cents, currency, state FROM payments WHERE payment_id = %s",
                                            payment_id)
    if row is None:
        raise not_found("payment")
    amount = f"{row['amount_cents'] / 100:.2f} {row['currency'].strip()}"
    return f"<!doctype html><title>BuyIt checkout</title><h1>Pay {amount}</h1><p>Payment {payment_id}: {row['state']}</p>"
