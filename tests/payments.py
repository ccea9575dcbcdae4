"""Test helpers for Stripe: pay through localstripe, or post Stripe-signed events ourselves."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from buyit.demo import intent_of, pay_with_test_card  # noqa: F401 (intent_of is the tests' too)


def pay(stack, client_secret: str) -> str:
    """Confirm the PaymentIntent with a test card; localstripe then sends the signed webhook."""
    return pay_with_test_card(stack.env["STRIPE_API_BASE"], stack.settings.stripe_api_key, client_secret)


def stripe_client(stack):
    """The Stripe SDK pointed at the stack's localstripe, to look at what BuyIt did there."""
    import stripe
    return stripe.StripeClient(stack.settings.stripe_api_key,
                               base_addresses={"api": stack.env["STRIPE_API_BASE"]}, max_network_retries=0)


def intent_status(stack, intent_id: str) -> str:
    """The PaymentIntent's status at the stack's localstripe."""
    return stripe_client(stack).v1.payment_intents.retrieve(intent_id).status


def refunds_at_stripe(stack, intent_id: str) -> list:
    """The refunds localstripe made of the intent's capture."""
    return stripe_client(stack).v1.refunds.list(params={"payment_intent": intent_id}).data


def signed_event(secret: str, kind: str, intent_id: str, payment_id: str, order_id: str, amount: int,
                 event_id: str | None = None, timestamp: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its `Stripe-Signature` header, signed the way Stripe signs."""
    event = {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind,
             "created": int(time.time()), "data": {"object": {
                 "id": intent_id, "object": "payment_intent", "amount": amount, "amount_received": amount,
                 "metadata": {"orderId": order_id, "paymentId": payment_id},
                 "last_payment_error": {"message": "card declined"} if kind.endswith("failed") else None}}}
    body = json.dumps(event).encode()
    ts = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={ts},v1={signature}"
