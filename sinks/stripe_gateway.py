"""Stripe, with the official SDK: create, cancel and refund PaymentIntents (each safe to repeat) and verify webhooks.

Transient errors (connection, rate limit, Stripe's 5xx) are retried with backoff by tenacity; what
Stripe refuses for good is raised to the caller.
"""

from __future__ import annotations

from functools import lru_cache

import stripe
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from buyit.settings import Settings

WEBHOOK_TOLERANCE_S = 300
CACHED_SECRETS = 10_000
TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)
_retried = retry(retry=retry_if_exception_type(TRANSIENT), stop=stop_after_attempt(4),
                 wait=wait_exponential(multiplier=0.2, max=2), reraise=True)


class StripeGateway:
    """The one place that talks to Stripe (or localstripe, through `STRIPE_API_BASE`)."""

    def __init__(self, settings: Settings):
        self._client = stripe.StripeClient(settings.stripe_api_key, base_addresses=(
            {"api": settings.stripe_api_base} if settings.stripe_api_base else {}), max_network_retries=0)
        self._secret = settings.stripe_webhook_secret
        # An intent's client secret never changes: a buyer polling its order asks Stripe once, not per poll.
        self.client_secret = lru_cache(maxsize=CACHED_SECRETS)(self._fetch_client_secret)

    @_retried
    def create_intent(self, order_id: str, payment_id: str, amount_cents: int, currency: str) -> str:
        """One PaymentIntent per payment (its id): the payment id is the idempotency key, so a retry cannot
        charge twice."""
        intent = self._client.v1.payment_intents.create(
            params={"amount": amount_cents, "currency": currency.lower(), "payment_method_types": ["card"],
                    "metadata": {"orderId": order_id, "paymentId": payment_id}},
            options={"idempotency_key": f"buyit-{payment_id}"})
        return intent.id

    @_retried
    def _fetch_client_secret(self, intent_id: str) -> str:
        """The secret a buyer's browser confirms the intent with (`client_secret`, cached in this process
        only): fetched when asked, never written anywhere by us."""
        return self._client.v1.payment_intents.retrieve(intent_id).client_secret

    @_retried
    def cancel_intent(self, intent_id: str) -> str:
        """Cancel a PaymentIntent so its client secret can no longer be paid. Returns its status: "canceled",
        or "succeeded" when the money already arrived (that capture is refunded on its own path)."""
        try:
            return self._client.v1.payment_intents.cancel(intent_id).status
        except stripe.InvalidRequestError:
            status = self._client.v1.payment_intents.retrieve(intent_id).status
            if status not in ("canceled", "succeeded"):
                raise
            return status

    @_retried
    def refund(self, intent_id: str, amount_cents: int, payment_id: str, refund_key: str = "") -> str:
        """Refund `amount_cents` of the intent's capture once per claim (`refund_key`): an existing refund of
        ours for that claim is returned as is.

        The idempotency key protects a retried request; the lookup protects a replay after a crash
        (and fakes such as localstripe that ignore idempotency keys)."""
        status = self._client.v1.payment_intents.retrieve(intent_id).status
        if status != "succeeded":  # Stripe took no money on it: there is nothing to give back
            raise stripe.InvalidRequestError(f"PaymentIntent {intent_id} is {status}, not succeeded", "payment_intent")
        for existing in self._client.v1.refunds.list(params={"payment_intent": intent_id}).data:
            meta = existing.metadata.to_dict() if existing.metadata else {}
            if meta.get("paymentId") == payment_id and meta.get("refundKey", "") == refund_key:
                return existing.id
        refund = self._client.v1.refunds.create(
            params={"payment_intent": intent_id, "amount": amount_cents,
                    "metadata": {"paymentId": payment_id, "refundKey": refund_key}},
            options={"idempotency_key": f"buyit-refund-{payment_id}-{refund_key}"})
        return refund.id

    def verify(self, payload: bytes, signature: str | None) -> dict:
        """The webhook's event if its signature checks out (ValueError otherwise)."""
        if not signature:
            raise ValueError("missing Stripe-Signature")
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._secret, tolerance=WEBHOOK_TOLERANCE_S)
        except stripe.SignatureVerificationError as err:
            raise ValueError(str(err)) from err
        return event.to_dict() if hasattr(event, "to_dict") else dict(event)
