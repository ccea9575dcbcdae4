"""Payments, keyed by our payment id: one Stripe PaymentIntent per order, captured or failed once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from state.common import Aggregate, Command, Event, Rejection, invalid, message, not_found, replace

CREATED, CAPTURED, FAILED, REFUND_PENDING, REFUNDED = "CREATED", "CAPTURED", "FAILED", "REFUND_PENDING", "REFUNDED"
CANCELLED = "CANCELLED"


@message
class OpenPayment(Command):
    payment_id: str
    order_id: str
    buyer_id: str
    amount_cents: int
    currency: str
    intent_id: str


@message
class CapturePayment(Command):
    """From Stripe's `payment_intent.succeeded` webhook."""

    payment_id: str
    stripe_event_id: str
    intent_id: str
    amount_cents: int | None = None


@message
class FailPayment(Command):
    """From Stripe's `payment_intent.payment_failed` webhook."""

    payment_id: str
    stripe_event_id: str
    intent_id: str
    reason: str = ""


@message
class FlagForRefund(Command):
    """Money captured that must go back: all of it (a cancelled order), or `amount_cents` of it for what
    could not be delivered (`refund_key` names that claim; `seller_id` is who had been credited for it)."""

    payment_id: str
    reason: str
    amount_cents: int | None = None
    refund_key: str = ""
    seller_id: str = ""
    fee_bps: int = 0


@message
class CancelPayment(Command):
    """From the order: it was cancelled before it was paid (its intent is cancelled at Stripe)."""

    payment_id: str
    reason: str


@message
class SettleRefund(Command):
    """Stripe refunded a claim (the payments worker's refund, or the `charge.refunded` webhook)."""

    payment_id: str
    refund_id: str
    refund_key: str = ""


@message
class PaymentCreated(Event):
    settles = False  # a saga step's fact, never the answer to the request that started it
    payment_id: str
    order_id: str
    buyer_id: str
    amount_cents: int
    currency: str
    intent_id: str
    created_at: datetime


@message
class PaymentCaptured(Event):
    TYPE = "PAYMENT_CAPTURED"
    payment_id: str
    order_id: str
    buyer_id: str
    amount_cents: int
    currency: str
    stripe_event_id: str
    captured_at: datetime


@message
class PaymentFailed(Event):
    TYPE = "PAYMENT_FAILED"
    payment_id: str
    order_id: str
    stripe_event_id: str
    reason: str
    failed_at: datetime


@message
class PaymentCancelled(Event):
    settles = False  # a saga step's fact, never the answer to the request that started it
    payment_id: str
    order_id: str
    reason: str
    cancelled_at: datetime


@message
class PaymentFlaggedForRefund(Event):
    settles = False  # a saga step's fact, never the answer to the request that started it
    payment_id: str
    order_id: str
    amount_cents: int
    reason: str
    flagged_at: datetime
    intent_id: str = ""  # what the payments worker refunds
    currency: str = ""
    refund_key: str = ""
    seller_id: str = ""
    fee_bps: int = 0


@message
class PaymentRefunded(Event):
    settles = False  # a saga step's fact, never the answer to the request that started it
    payment_id: str
    order_id: str
    amount_cents: int
    currency: str
    refund_id: str
    refunded_at: datetime
    refund_key: str = ""


@message
class StripeEventParked(Event):
    """A webhook that overtook its payment's creation (they travel on different partitions): kept, not lost."""

    payment_id: str
    kind: str  # "captured" or "failed"
    stripe_event_id: str
    intent_id: str
    reason: str


@dataclass(frozen=True)
class Payment:
    payment_id: str | None = None
    order_id: str = ""
    buyer_id: str = ""
    amount_cents: int = 0
    currency: str = ""
    intent_id: str = ""
    state: str = CREATED
    stripe_events: frozenset = frozenset()
    refund_reason: str | None = None
    parked: tuple[StripeEventParked, ...] = ()
    created_at: datetime | None = None
    captured_at: datetime | None = None
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None
    refund_id: str | None = None
    refunded_at: datetime | None = None
    claims: tuple[tuple[str, int], ...] = ()  # (refund key, cents) flagged for refund, in order
    settled: frozenset = frozenset()  # refund keys Stripe refunded
    version: int = 0

    def claimed(self, key: str) -> int | None:
        return next((cents for k, cents in self.claims if k == key), None)

    @property
    def unclaimed_cents(self) -> int:
        return self.amount_cents - sum(cents for _, cents in self.claims)

    @property
    def refunded_cents(self) -> int:
        return sum(cents for k, cents in self.claims if k in self.settled)


def initial_state() -> Payment:
    return Payment()


def decide(state: Payment, command: Command) -> list[Event] | Rejection:
    match command:
        case OpenPayment() if state.payment_id is not None:
            return []
        case OpenPayment():
            created = PaymentCreated(payment_id=command.payment_id, order_id=command.order_id,
                                     buyer_id=command.buyer_id, amount_cents=command.amount_cents,
                                     currency=command.currency, intent_id=command.intent_id,
                                     created_at=command.now)
            return [created, *_unpark(evolve(state, created), command)]
        case (CapturePayment() | FailPayment()) if state.payment_id is None:
            if any(p.stripe_event_id == command.stripe_event_id for p in state.parked):
                return []
            return [StripeEventParked(payment_id=command.payment_id, stripe_event_id=command.stripe_event_id,
                                      kind="captured" if isinstance(command, CapturePayment) else "failed",
                                      intent_id=command.intent_id, reason=getattr(command, "reason", ""))]
        case _ if state.payment_id is None:
            return not_found("payment")
        case CapturePayment() | FailPayment() if command.intent_id != state.intent_id:
            return invalid("the PaymentIntent does not belong to this payment")
        case CapturePayment() | FailPayment() if command.stripe_event_id in state.stripe_events:
            return []  # the same Stripe event delivered again
        case CapturePayment() if state.state in (CAPTURED, REFUND_PENDING, REFUNDED):
            return []  # captured once; a second event for the same intent changes nothing
        case CapturePayment():
            # A capture after a failure is still money received: record it (the order flags a refund if needed).
            return [PaymentCaptured(payment_id=state.payment_id, order_id=state.order_id, buyer_id=state.buyer_id,
                                    amount_cents=state.amount_cents, currency=state.currency,
                                    stripe_event_id=command.stripe_event_id, captured_at=command.now)]
        case FailPayment() if state.state != CREATED:
            return []  # a failure after capture or failure changes nothing
        case FailPayment():
            return [PaymentFailed(payment_id=state.payment_id, order_id=state.order_id,
                                  stripe_event_id=command.stripe_event_id, reason=command.reason,
                                  failed_at=command.now)]
        case CancelPayment() if state.state != CREATED:
            return []  # failed, captured or cancelled already: that stands (a capture is refunded on its path)
        case CancelPayment():
            return [PaymentCancelled(payment_id=state.payment_id, order_id=state.order_id, reason=command.reason,
                                     cancelled_at=command.now)]
        case FlagForRefund() if state.claimed(command.refund_key) is not None:
            return []  # flagged once
        case FlagForRefund() if state.state not in (CAPTURED, REFUND_PENDING, REFUNDED):
            return invalid("only captured money can be refunded")
        case FlagForRefund() if command.amount_cents is not None and command.amount_cents <= 0:
            return invalid("a refund is of at least one cent")
        case FlagForRefund():
            cents = min(state.unclaimed_cents, command.amount_cents or state.unclaimed_cents)
            if cents <= 0:
                return []  # everything is on its way back already
            return [PaymentFlaggedForRefund(payment_id=state.payment_id, order_id=state.order_id,
                                            amount_cents=cents, reason=command.reason,
                                            flagged_at=command.now, intent_id=state.intent_id,
                                            currency=state.currency, refund_key=command.refund_key,
                                            seller_id=command.seller_id, fee_bps=command.fee_bps)]
        case SettleRefund() if command.refund_key in state.settled:
            return []
        case SettleRefund() if state.claimed(command.refund_key) is None:
            return Rejection("invalid_transition", f"a {state.state} payment has no such refund to settle", 409)
        case SettleRefund():
            return [PaymentRefunded(payment_id=state.payment_id, order_id=state.order_id,
                                    amount_cents=state.claimed(command.refund_key), currency=state.currency,
                                    refund_id=command.refund_id, refunded_at=command.now,
                                    refund_key=command.refund_key)]
    return invalid(f"payments do not handle {type(command).__name__}")


def _unpark(state: Payment, command: Command) -> list[Event]:
    """Apply the webhooks that arrived before the payment existed, in the order they came."""
    events: list[Event] = []
    for parked in state.parked:
        kind = CapturePayment if parked.kind == "captured" else FailPayment
        early = kind(command_id=command.command_id, now=command.now, payment_id=state.payment_id,
                     stripe_event_id=parked.stripe_event_id, intent_id=parked.intent_id,
                     **({"reason": parked.reason} if parked.kind == "failed" else {}))
        outcome = decide(state, early)
        if isinstance(outcome, list):
            for event in outcome:
                state = evolve(state, event)
            events += outcome
    return events


def evolve(state: Payment, event: Event) -> Payment:
    match event:
        case PaymentCreated():
            new = Payment(payment_id=event.payment_id, order_id=event.order_id, buyer_id=event.buyer_id,
                          amount_cents=event.amount_cents, currency=event.currency, intent_id=event.intent_id,
                          created_at=event.created_at, parked=state.parked,
                          version=state.version)
        case StripeEventParked():
            new = replace(state, parked=state.parked + (event,))
        case PaymentCaptured():
            new = replace(state, state=CAPTURED, captured_at=event.captured_at,
                          stripe_events=state.stripe_events | {event.stripe_event_id})
        case PaymentFailed():
            new = replace(state, state=FAILED, failed_at=event.failed_at,
                          stripe_events=state.stripe_events | {event.stripe_event_id})
        case PaymentCancelled():
            new = replace(state, state=CANCELLED, cancelled_at=event.cancelled_at)
        case PaymentFlaggedForRefund():
            new = replace(state, state=REFUND_PENDING, refund_reason=state.refund_reason or event.reason,
                          claims=state.claims + ((event.refund_key, event.amount_cents),))
        case PaymentRefunded():
            new = replace(state, refund_id=event.refund_id, refunded_at=event.refunded_at,
                          settled=state.settled | {event.refund_key})
            new = replace(new, state=_after_refunds(new))
        case _:
            new = state
    return replace(new, version=state.version + 1)


def _after_refunds(state: Payment) -> str:
    """REFUND_PENDING while a claim waits for Stripe; then REFUNDED if all the money went back, else
    CAPTURED (part of it was kept: the goods that were delivered)."""
    if any(key not in state.settled for key, _ in state.claims):
        return REFUND_PENDING
    return REFUNDED if state.refunded_cents >= state.amount_cents else CAPTURED


def settled(state: Payment) -> bool:
    """Nothing of the payment is under way: decided by Stripe, nothing parked, every refund claim settled."""
    return (state.payment_id is not None and state.state != CREATED and not state.parked
            and all(key in state.settled for key, _ in state.claims))


def view(state: Payment) -> dict | None:
    if state.payment_id is None:
        return None
    when = lambda v: v.isoformat() if v else None  # noqa: E731
    return {"paymentId": state.payment_id, "orderId": state.order_id, "buyerId": state.buyer_id,
            "state": state.state, "amountCents": state.amount_cents, "currency": state.currency,
            "paymentIntentId": state.intent_id,
            "refundReason": state.refund_reason, "createdAt": when(state.created_at),
            "capturedAt": when(state.captured_at), "failedAt": when(state.failed_at),
            "cancelledAt": when(state.cancelled_at),
            "refundId": state.refund_id, "refundedAt": when(state.refunded_at),
            "refundedCents": state.refunded_cents,
            "refundPendingCents": sum(c for _, c in state.claims) - state.refunded_cents, "version": state.version}


AGGREGATE = Aggregate("payment", initial_state, decide, evolve, view, settled=settled)
