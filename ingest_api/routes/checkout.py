"""Checkout: cart → order with hard allocations → Stripe PaymentIntent, all or nothing."""

from __future__ import annotations

import logging

import stripe
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from buyit.settings import get_settings
from ingest_api.auth import BuyerOrAdmin
from ingest_api.commands import checked_id, command_id, now, pending, refusal, send
from ingest_api.errors import ApiError, not_found
from state.cart import Checkout
from state.common import derived_id
from state.order import AttachPayment, CancelOrder

log = logging.getLogger(__name__)
router = APIRouter(tags=["checkout"])


@router.post("/api/cart/checkout", status_code=201)
async def checkout(request: Request, actor: BuyerOrAdmin):
    """One order (one shipment per seller), every item hard-allocated, one PaymentIntent for the total.

    Retrying with the same `Idempotency-Key` returns the same order and client secret.
    """
    settings = get_settings()
    cid = command_id(request, actor)
    order_id, payment_id = derived_id(cid, "order"), derived_id(cid, "payment")
    result = await send(request, "cart", actor.user_id, Checkout(
        command_id=cid, now=now(), actor=actor, buyer_id=actor.user_id, order_id=order_id, payment_id=payment_id,
        allocation_ttl_s=settings.buyit_hard_reservation_ttl_s, fee_bps=settings.buyit_platform_fee_bps))
    if result is None:
        return pending(cid)
    if not result.ok:
        raise refusal(result)
    total, currency = result.body["totalCents"], result.body["currency"]
    try:
        intent_id, client_secret = await run_in_threadpool(
            request.app.state.stripe.create_intent, order_id, payment_id, total, currency)
    except stripe.StripeError as err:
        log.warning("PaymentIntent for order %s failed: %s", order_id, err)
        await send(request, "order", order_id, CancelOrder(command_id=derived_id(cid, "cancel"), now=now(),
                                                            actor=actor, order_id=order_id,
                                                            reason="payment_creation_failed"))
        raise ApiError(502, "payment_unavailable", "the payment could not be created; the order was cancelled",
                       orderId=order_id) from err
    attached = await send(request, "order", order_id, AttachPayment(
        command_id=derived_id(cid, f"attach/{intent_id}"), now=now(), actor=actor, order_id=order_id, payment_id=payment_id,
        intent_id=intent_id, client_secret=client_secret))
    if attached is None or (not attached.ok and attached.error == "not_ready"):
        return pending(cid)
    if not attached.ok and attached.error == "order_cancelled":
        # cancelled while the intent was being made (its buyer, or expiry): the order never learnt of
        # this intent, so the payments worker cannot cancel it; do it here
        await run_in_threadpool(_cancel_quietly, request.app.state.stripe, intent_id)
    if not attached.ok:
        raise refusal(attached)
    body = attached.body
    return JSONResponse({"orderId": body["orderId"], "paymentId": body["paymentId"],
                         "clientSecret": body["clientSecret"],
                         "checkoutUrl": f"{settings.public_url}/checkout/{body['paymentId']}"}, 201)


def _cancel_quietly(gateway, intent_id: str) -> None:
    try:
        gateway.cancel_intent(intent_id)
    except stripe.StripeError as err:
        log.warning("could not cancel the unused PaymentIntent %s: %s", intent_id, err)


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
