"""What BuyIt owes Stripe after a fact: cancel an intent no order will use, refund money that bought nothing.

Pure: the payments worker (`dataflows/payments.py`) reads the order and payment events, asks
`owed_to_stripe` what each one calls for, and makes the call outside any decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from state.common import Event
from state.order import OrderCancelled
from state.payment import PaymentFlaggedForRefund


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


def owed_to_stripe(event: Event) -> CancelIntent | RefundCapture | None:
    """The Stripe call an event calls for, if any."""
    match event:
        case OrderCancelled(intent_id=str() as intent_id) if intent_id:
            return CancelIntent(order_id=event.order_id, intent_id=intent_id)
        case PaymentFlaggedForRefund() if event.intent_id:
            return RefundCapture(payment_id=event.payment_id, order_id=event.order_id, intent_id=event.intent_id,
                                 amount_cents=event.amount_cents)
    return None
