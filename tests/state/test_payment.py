"""Payments: one capture per intent however often Stripe reports it, and webhooks that overtake the payment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from state import payment as p
from tests.state.given import fold

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def opened(**kw) -> p.PaymentCreated:
    return p.PaymentCreated(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667, currency="USD",
                            intent_id="pi_1", client_secret="pi_1_secret", created_at=NOW, **kw)


def capture(event_id="evt_1", intent="pi_1") -> p.CapturePayment:
    return p.CapturePayment(command_id=f"c-{event_id}", now=NOW, payment_id="pay", stripe_event_id=event_id,
                            intent_id=intent)


def fail(event_id="evt_f") -> p.FailPayment:
    return p.FailPayment(command_id=f"c-{event_id}", now=NOW, payment_id="pay", stripe_event_id=event_id,
                         intent_id="pi_1", reason="declined")


def kinds(outcome) -> list[str]:
    return [type(e).__name__ for e in outcome] if isinstance(outcome, list) else [outcome.code]


@pytest.mark.parametrize("given, when, then", [
    pytest.param([opened()], capture(), ["PaymentCaptured"], id="capture"),
    pytest.param([opened()], fail(), ["PaymentFailed"], id="failure"),
    pytest.param([opened(), p.PaymentCaptured(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667,
                                              currency="USD", stripe_event_id="evt_1", captured_at=NOW)],
                 capture("evt_1"), [], id="same_event_again_is_a_no_op"),
    pytest.param([opened(), p.PaymentCaptured(payment_id="pay", order_id="o", buyer_id="b", amount_cents=7667,
                                              currency="USD", stripe_event_id="evt_1", captured_at=NOW)],
                 capture("evt_2"), [], id="second_event_for_a_captured_intent_is_a_no_op"),
    pytest.param([opened()], capture(intent="pi_other"), ["invalid"], id="another_intent_is_refused"),
    pytest.param([], capture(), ["StripeEventParked"], id="webhook_before_the_payment_is_parked"),
    pytest.param([p.StripeEventParked(payment_id="pay", kind="captured", stripe_event_id="evt_1",
                                      intent_id="pi_1", reason="")], capture(), [], id="parked_once"),
])
def test_decide(given, when, then):
    assert kinds(p.decide(fold(p, given), when)) == then


def test_a_parked_capture_applies_when_the_payment_opens():
    state = fold(p, [p.StripeEventParked(payment_id="pay", kind="captured", stripe_event_id="evt_1",
                                         intent_id="pi_1", reason="")])
    outcome = p.decide(state, p.OpenPayment(command_id="open", now=NOW, payment_id="pay", order_id="o",
                                            buyer_id="b", amount_cents=7667, currency="USD", intent_id="pi_1",
                                            client_secret="s"))
    assert kinds(outcome) == ["PaymentCreated", "PaymentCaptured"]
    final = fold(p, [p.StripeEventParked(payment_id="pay", kind="captured", stripe_event_id="evt_1",
                                         intent_id="pi_1", reason=""), *outcome])
    assert final.state == p.CAPTURED and final.version == 3
