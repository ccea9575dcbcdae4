"""What BuyIt asks of Stripe after a fact: a PaymentIntent for an allocated order, the cancellation of
one no order will use, the refund of money that bought nothing.

Pure: the payments worker (`dataflows/payments.py`) reads the order and payment events, asks
`owed_to_stripe` what each one calls for, and makes the call outside any decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from state.common import Event, derived_id
from state.order import OrderAllocated, OrderCancelled, PaymentIntentUnused
from state.payment import PaymentFlaggedForRefund


@dataclass(frozen=True)
class CreateIntent:
    """Every item of the order is held: the buyer can pay for it."""

    order_id: str
    payment_id: str
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class CancelIntent:
    """The order was cancelled: its PaymentIntent must no longer take a card."""

    order_id: str
    intent_id: str


@dataclass(frozen=True)
class RefundCapture:
    """Money was captured for an order that cannot be fulfilled: give it back."""

    payment_id: str
    order_id: str
    intent_id: str
    amount_cents: int
    refund_key: str = ""  # which claim of the payment ("" : all of it)


def owed_to_stripe(event: Event) -> CreateIntent | CancelIntent | RefundCapture | None:
    """The Stripe call an event calls for, if any."""
    match event:
        case OrderAllocated() if event.payment_id:
            return CreateIntent(order_id=event.order_id, payment_id=event.payment_id,
                                amount_cents=event.amount_cents, currency=event.currency)
        case PaymentIntentUnused():
            return CancelIntent(order_id=event.order_id, intent_id=event.intent_id)
        case OrderCancelled(intent_id=str() as intent_id) if intent_id:
            return CancelIntent(order_id=event.order_id, intent_id=intent_id)
        case PaymentFlaggedForRefund() if event.intent_id:
            return RefundCapture(payment_id=event.payment_id, order_id=event.order_id, intent_id=event.intent_id,
                                 amount_cents=event.amount_cents, refund_key=event.refund_key)
    return None


def payment_attempt(payment_id: str) -> str:
    """The correlation id of the answer that says how creating the payment's intent went (the attach,
    or the cancellation): the checkout request waits for it."""
    return derived_id(payment_id, "payment-attempt")
