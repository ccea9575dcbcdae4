"""Stripe at the edge: create PaymentIntents (retried safely) and verify webhooks, with the official SDK."""

from __future__ import annotations

import stripe
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from buyit.settings import Settings

WEBHOOK_TOLERANCE_S = 300


class StripeGateway:
    """The one place that talks to Stripe (or localstripe, through `STRIPE_API_BASE`)."""

    def __init__(self, settings: Settings):
        self._client = stripe.StripeClient(settings.stripe_api_key, base_addresses=(
            {"api": settings.stripe_api_base} if settings.stripe_api_base else {}), max_network_retries=0)
        self._secret = settings.stripe_webhook_secret

    @retry(retry=retry_if_exception_type((stripe.APIConnectionError, stripe.RateLimitError)),
           stop=stop_after_attempt(4), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def create_intent(self, order_id: str, payment_id: str, amount_cents: int, currency: str) -> tuple[str, str]:
        """One PaymentIntent per payment: the payment id is the idempotency key, so a retry cannot charge twice."""
        intent = self._client.payment_intents.create(
            params={"amount": amount_cents, "currency": currency.lower(), "payment_method_types": ["card"],
                    "metadata": {"orderId": order_id, "paymentId": payment_id}},
            options={"idempotency_key": f"buyit-{payment_id}"})
        return intent.id, intent.client_secret

    @retry(retry=retry_if_exception_type((stripe.APIConnectionError, stripe.RateLimitError)),
           stop=stop_after_attempt(4), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def cancel_intent(self, intent_id: str) -> None:
        """Cancel a PaymentIntent so its client secret can no longer be paid; one already cancelled is fine."""
        try:
            self._client.payment_intents.cancel(intent_id)
        except stripe.InvalidRequestError:
            if self._client.payment_intents.retrieve(intent_id).status != "canceled":
                raise

    def verify(self, payload: bytes, signature: str | None) -> dict:
        """The webhook's event if its signature checks out (ValueError otherwise)."""
        if not signature:
            raise ValueError("missing Stripe-Signature")
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._secret, tolerance=WEBHOOK_TOLERANCE_S)
        except stripe.SignatureVerificationError as err:
            raise ValueError(str(err)) from err
        return event.to_dict() if hasattr(event, "to_dict") else dict(event)
