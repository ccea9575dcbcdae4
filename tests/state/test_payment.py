"""Payments: one capture per intent however often Stripe reports it, and webhooks that overtake the payment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from state import payment as p
from state import sagas
from state.common import Stamp
from tests.state.given import Rejected, assert_outcome, fold

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def opened(**kw) -> p.PaymentCreated:
    return p.PaymentCreated(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667, currency="USD",
                            intent_id="pi_1", created_at=NOW, **kw)


def capture(event_id="evt_1", intent="pi_1") -> p.CapturePayment:
    return p.CapturePayment(command_id=f"c-{event_id}", now=NOW, payment_id="pay", stripe_event_id=event_id,
                            intent_id=intent)


def fail(event_id="evt_f") -> p.FailPayment:
    return p.FailPayment(command_id=f"c-{event_id}", now=NOW, payment_id="pay", stripe_event_id=event_id,
                         intent_id="pi_1", reason="declined")


def captured(event_id="evt_1") -> p.PaymentCaptured:
    return p.PaymentCaptured(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667, currency="USD",
                             stripe_event_id=event_id, captured_at=NOW)


def parked(event_id="evt_1") -> p.StripeEventParked:
    return p.StripeEventParked(payment_id="pay", kind="captured", stripe_event_id=event_id, intent_id="pi_1",
                               reason="")


def flagged() -> p.PaymentFlaggedForRefund:
    return p.PaymentFlaggedForRefund(payment_id="pay", order_id="o", amount_cents=7667, reason="order_cancelled",
                                     flagged_at=NOW, intent_id="pi_1", currency="USD")


def refunded(refund_id="re_1") -> p.PaymentRefunded:
    return p.PaymentRefunded(payment_id="pay", order_id="o", amount_cents=7667, currency="USD", refund_id=refund_id,
                             refunded_at=NOW)


@pytest.mark.parametrize("given, when, then", [
    pytest.param([opened()], capture(), [captured()], id="capture"),
    pytest.param([opened()], fail(), [p.PaymentFailed(payment_id="pay", order_id="o", stripe_event_id="evt_f",
                                                      reason="declined", failed_at=NOW)], id="failure"),
    pytest.param([opened(), p.PaymentCaptured(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667,
                                              currency="USD", stripe_event_id="evt_1", captured_at=NOW)],
                 capture("evt_1"), [], id="same_event_again_is_a_no_op"),
    pytest.param([opened(), p.PaymentCaptured(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667,
                                              currency="USD", stripe_event_id="evt_1", captured_at=NOW)],
                 capture("evt_2"), [], id="second_event_for_a_captured_intent_is_a_no_op"),
    pytest.param([opened()], capture(intent="pi_other"), Rejected("invalid", 422), id="another_intent_is_refused"),
    pytest.param([], capture(), [parked()], id="webhook_before_the_payment_is_parked"),
    pytest.param([p.StripeEventParked(payment_id="pay", kind="captured", stripe_event_id="evt_1",
                                      intent_id="pi_1", reason="")], capture(), [], id="parked_once"),
])
def test_decide(given, when, then):
    assert_outcome(p.decide(fold(p, given), when), then)


def test_a_parked_capture_applies_when_the_payment_opens():
    state = fold(p, [p.StripeEventParked(payment_id="pay", kind="captured", stripe_event_id="evt_1",
                                         intent_id="pi_1", reason="")])
    outcome = p.decide(state, p.OpenPayment(command_id="open", now=NOW, payment_id="pay", order_id="o",
                                            buyer_id="b", amount_cents=7667, currency="USD", intent_id="pi_1"))
    assert outcome == [opened(), captured()]
    final = fold(p, [parked(), *outcome])
    assert final.state == p.CAPTURED and final.version == 3


CAPTURED = [opened(), p.PaymentCaptured(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667,
                                        currency="USD", stripe_event_id="evt_1", captured_at=NOW)]
FLAGGED = [*CAPTURED, p.PaymentFlaggedForRefund(payment_id="pay", order_id="o", amount_cents=7667,
                                                reason="order_cancelled", flagged_at=NOW, intent_id="pi_1",
                                                currency="USD")]


def flag() -> p.FlagForRefund:
    return p.FlagForRefund(command_id="flag", now=NOW, payment_id="pay", reason="order_cancelled")


def settle(refund_id="re_1") -> p.SettleRefund:
    return p.SettleRefund(command_id=f"settle-{refund_id}", now=NOW, payment_id="pay", refund_id=refund_id)


@pytest.mark.parametrize("given, when, then", [
    pytest.param(CAPTURED, flag(), [flagged()], id="captured_money_is_flagged_for_refund"),
    pytest.param(FLAGGED, flag(), [], id="flagged_once"),
    pytest.param([opened()], flag(), Rejected("invalid", 422), id="money_never_captured_is_not_refunded"),
    pytest.param(FLAGGED, settle(), [refunded()], id="a_refund_settles_what_was_flagged"),
    pytest.param([*FLAGGED, p.PaymentRefunded(payment_id="pay", order_id="o", amount_cents=7667, currency="USD",
                                              refund_id="re_1", refunded_at=NOW)],
                 settle("re_1"), [], id="settled_once_whichever_report_comes_second"),
    pytest.param(CAPTURED, settle(), Rejected("invalid_transition", 409), id="nothing_to_settle_for_a_kept_capture"),
    pytest.param([*FLAGGED, p.PaymentRefunded(payment_id="pay", order_id="o", amount_cents=7667, currency="USD",
                                              refund_id="re_1", refunded_at=NOW)],
                 capture("evt_9"), [], id="a_refunded_payment_is_never_captured_again"),
    pytest.param([opened()], settle(), Rejected("invalid_transition", 409), id="nothing_to_settle_before_a_capture"),
])
def test_refunds(given, when, then):
    assert_outcome(p.decide(fold(p, given), when), then)


def test_the_flag_names_the_intent_and_the_books_hear_of_the_refund_owed_then_paid():
    state = fold(p, CAPTURED)
    [flagged] = p.decide(state, flag())
    assert (flagged.intent_id, flagged.amount_cents, flagged.currency) == ("pi_1", 7667, "USD")
    stamp = Stamp(NOW, "cause")
    [(aggregate, key, owed)] = sagas.after_payment(flagged, fold(p, FLAGGED), stamp)
    assert (aggregate, key, type(owed).__name__, owed.amount_cents) == ("ledger", "pay", "PostRefundOwed", 7667)
    [refunded] = p.decide(fold(p, FLAGGED), settle())
    final = fold(p, [*FLAGGED, refunded])
    assert (final.state, final.refund_id) == (p.REFUNDED, "re_1")
    [(aggregate, key, paid)] = sagas.after_payment(refunded, final, stamp)
    assert (aggregate, type(paid).__name__, paid.amount_cents, paid.refund_id) == ("ledger", "PostRefund", 7667,
                                                                                     "re_1")


def test_what_is_owed_to_stripe():
    from state.order import OrderAllocated, OrderCancelled, PaymentIntentUnused
    from state.stripe_actions import CancelIntent, CreateIntent, RefundCapture, owed_to_stripe
    assert owed_to_stripe(OrderCancelled(order_id="o", reason="cancelled_by_buyer", cancelled_at=NOW,
                                         intent_id="pi_1")) == CancelIntent("o", "pi_1")
    assert owed_to_stripe(OrderCancelled(order_id="o", reason="allocation_failed", cancelled_at=NOW)) is None
    assert owed_to_stripe(FLAGGED[-1]) == RefundCapture("pay", "o", "pi_1", 7667)
    assert owed_to_stripe(CAPTURED[-1]) is None
    assert owed_to_stripe(OrderAllocated(order_id="o", payment_id="pay", amount_cents=7667, currency="USD")) == \
        CreateIntent("o", "pay", 7667, "USD")
    assert owed_to_stripe(OrderAllocated(order_id="o")) is None  # recorded before orders named their payment
    assert owed_to_stripe(PaymentIntentUnused(order_id="o", intent_id="pi_2", reason="superseded")) == \
        CancelIntent("o", "pi_2")


def part(amount, key):
    return p.FlagForRefund(command_id=f"flag-{key}", now=NOW, payment_id="pay", reason="sale_shortfall",
                           amount_cents=amount, refund_key=key, seller_id="s", fee_bps=1000)


def test_claims_on_part_of_a_payment():
    state = fold(p, CAPTURED)
    [first] = p.decide(state, part(3000, "shortfall/a"))
    assert (first.amount_cents, first.refund_key, first.seller_id) == (3000, "shortfall/a", "s")
    state = fold(p, [*CAPTURED, first])
    assert p.decide(state, part(3000, "shortfall/a")) == []  # the same claim again
    [second] = p.decide(state, part(9999, "shortfall/b"))
    assert second.amount_cents == 7667 - 3000  # never more than what is left
    state = fold(p, [*CAPTURED, first, second])
    assert p.decide(state, part(1, "shortfall/c")) == []  # nothing left to claim
    assert_outcome(p.decide(state, part(0, "shortfall/d")), Rejected("invalid", 422))
    [paid_a] = p.decide(state, settle_key("shortfall/a"))
    state = fold(p, [*CAPTURED, first, second, paid_a])
    assert (state.state, state.refunded_cents) == (p.REFUND_PENDING, 3000)  # b still waits
    [paid_b] = p.decide(state, settle_key("shortfall/b"))
    state = fold(p, [*CAPTURED, first, second, paid_a, paid_b])
    assert (state.state, state.refunded_cents) == (p.REFUNDED, 7667)
    assert_outcome(p.decide(state, settle_key("shortfall/z")), Rejected("invalid_transition", 409))


def settle_key(key):
    return p.SettleRefund(command_id=f"settle-{key}", now=NOW, payment_id="pay", refund_id=f"re-{key}", refund_key=key)


def test_a_partly_refunded_payment_is_captured_still():
    state = fold(p, CAPTURED)
    [claim] = p.decide(state, part(1000, "shortfall/a"))
    [paid] = p.decide(fold(p, [*CAPTURED, claim]), settle_key("shortfall/a"))
    state = fold(p, [*CAPTURED, claim, paid])
    assert (state.state, p.view(state)["refundedCents"], p.view(state)["refundPendingCents"]) == (p.CAPTURED, 1000, 0)
    assert p.decide(state, capture("evt_late")) == []


def cancel_payment():
    return p.CancelPayment(command_id="cancel", now=NOW, payment_id="pay", reason="cancelled_by_buyer")


CANCELLED_PAYMENT = [opened(), p.PaymentCancelled(payment_id="pay", order_id="o", reason="cancelled_by_buyer",
                                                  cancelled_at=NOW)]


@pytest.mark.parametrize("given, when, then", [
    pytest.param([opened()], cancel_payment(), CANCELLED_PAYMENT[1:], id="an_unpaid_payment_is_cancelled_with_its_order"),
    pytest.param(CANCELLED_PAYMENT, cancel_payment(), [], id="cancelled_once"),
    pytest.param(CAPTURED, cancel_payment(), [], id="a_capture_stands_and_is_refunded_on_its_own_path"),
    pytest.param([opened(), p.PaymentFailed(payment_id="pay", order_id="o", stripe_event_id="e", reason="declined",
                                            failed_at=NOW)], cancel_payment(), [], id="a_failure_stays_a_failure"),
    pytest.param(CANCELLED_PAYMENT, capture(), [captured()], id="money_that_arrives_anyway_is_recorded"),
])
def test_cancel(given, when, then):
    assert_outcome(p.decide(fold(p, given), when), then)
    if then == CANCELLED_PAYMENT[1:]:
        assert p.view(fold(p, [*given, *p.decide(fold(p, given), when)]))["state"] == p.CANCELLED
