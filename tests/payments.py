"""Test helpers for Stripe: pay through localstripe, or post Stripe-signed events ourselves."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import stripe


def stripe_client(stack) -> stripe.StripeClient:
    return stripe.StripeClient(stack.settings.stripe_api_key,
                               base_addresses={"api": stack.env["STRIPE_API_BASE"]}, max_network_retries=0)


def pay(stack, client_secret: str) -> str:
    """Confirm the PaymentIntent with a test card, as Stripe.js would; localstripe then sends the webhook."""
    client = stripe_client(stack)
    intent_id = client_secret.split("_secret_")[0]
    method = client.payment_methods.create(params={"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    # localstripe confirms only an intent that already carries its payment method
    client.payment_intents.update(intent_id, params={"payment_method": method.id})
    client.payment_intents.confirm(intent_id)
    return intent_id


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
