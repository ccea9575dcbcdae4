"""Money, audited from the raw events alone: every cent captured is recognised as a sale, refunded, or
owed back, per currency, and each sale's books follow the spec's split computed here with exact
fractions, not with the code under test.

The randomised market of test_invariants.py runs through the real decision operator, with Stripe's
disorder (captures after failures, the same event several times) and a simulated payments worker
that refunds what is flagged, sometimes late, sometimes twice, leaving some refunds still owed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from fractions import Fraction

import pytest

from dataflows import decider
from state import payment
from state.common import type_name
from tests.sim.world import World
from tests.test_invariants import ROUNDS, Market

FEE = Fraction(1000, 10_000)


def fee_cents(subtotal: int) -> int:
    """10 % of a seller's subtotal, half up to the cent."""
    exact = subtotal * FEE
    return int(exact + Fraction(1, 2))


def unique(events: list[dict]) -> list[dict]:
    """Each fact once (a redelivered command can publish an event again, under the same id)."""
    return list({e["eventId"]: e for e in events}.values())


class RefundingMarket(Market):
    """The market, plus what the payments worker does with a flagged capture: refund it, not always at once."""

    def __init__(self, world: World):
        super().__init__(world, currencies=("USD", "EUR"))
        self.seen = 0

    def refund_flagged(self) -> None:
        w = self.w
        flagged = [e for e in w.events[self.seen:] if e["type"] == "PaymentFlaggedForRefund"]
        self.seen = len(w.events)
        for event in flagged:
            if w.rng.random() < 0.8:  # the rest stay owed: Stripe was down, say
                payment_id = event["payload"]["paymentId"]
                for _ in range(w.rng.randint(1, 2)):  # a replay after a crash reports it twice
                    w.send("payment", payment_id, payment.SettleRefund(
                        command_id=f"settle-{payment_id}", now=w.now, payment_id=payment_id,
                        refund_id=f"re_{payment_id[:8]}"))


@pytest.mark.parametrize("seed", [4, 5])
def test_every_cent_captured_is_sold_refunded_or_owed(seed, monkeypatch):
    # Each key remembers only its last 4 command ids here, and some records come again after 600+ others:
    # a redelivery is known by state, never by the window.
    monkeypatch.setattr(decider, "RECENT_COMMANDS", 4)
    w = World(seed, late_rate=0.02)
    market = RefundingMarket(w)
    market.open_shop()
    for _ in range(ROUNDS):
        market.act()
        w.run(w.rng.randint(0, 6))
        market.refund_flagged()
    w.drain()
    for _ in range(40):
        w.tick(120)
        w.drain()
        market.refund_flagged()
    w.drain()
    assert w.dead == []
    assert w.late_delivered > 50, w.late_delivered
    captured_in = {e["payload"]["currency"] for e in w.events if e["type"] == type_name(payment.PaymentCaptured)}
    assert captured_in == {"USD", "EUR"}  # both currencies were paid in

    events = unique(w.events)
    by_type = defaultdict(list)  # by class name (the wire name of some types differs)
    wire_names = {type_name(cls): cls.__name__ for cls in (payment.PaymentCaptured, payment.PaymentFailed)}
    for e in events:
        by_type[wire_names.get(e["type"], e["type"])].append(e["payload"])
    placed = {o["orderId"]: o for o in by_type["OrderPlaced"]}
    confirmed = {o["orderId"] for o in by_type["OrderConfirmed"]}
    opened = {p["paymentId"]: p for p in by_type["PaymentCreated"]}

    # The run reached the paths this audits.
    assert len(by_type["PaymentCaptured"]) > 10 and len(by_type["PaymentFlaggedForRefund"]) > 0, \
        Counter(e["type"] for e in events)
    assert by_type["PaymentRefunded"], "no refund was settled"

    captured, recognised, refunded, owed = Counter(), Counter(), Counter(), Counter()
    captured_ids = set()
    for p in by_type["PaymentCaptured"]:
        assert p["paymentId"] not in captured_ids, "a payment captured twice"
        captured_ids.add(p["paymentId"])
        captured[p["currency"]] += p["amountCents"]
    refunded_ids = {p["paymentId"] for p in by_type["PaymentRefunded"]}
    assert len(refunded_ids) == len(by_type["PaymentRefunded"]), "a payment refunded twice"
    for p in by_type["PaymentFlaggedForRefund"]:
        (refunded if p["paymentId"] in refunded_ids else owed)[opened[p["paymentId"]]["currency"]] += \
            p["amountCents"]
    short = [f for f in by_type["OrderShortfall"]]  # units paid for that could not be delivered
    for order_id in confirmed:
        order = placed[order_id]
        recognised[order["currency"]] += sum(i["priceCents"] * i["quantity"] for i in order["items"])
    for f in short:
        recognised[placed[f["orderId"]]["currency"]] -= f["amountCents"]
    assert captured == recognised + refunded + owed, (captured, recognised, refunded, owed)

    # The books: each sale exactly as the spec splits it; what was owed back never reached a seller.
    expected_payable, fees = Counter(), Counter()
    for order_id in confirmed:
        order = placed[order_id]
        subtotals = Counter()
        for item in order["items"]:
            subtotals[item["sellerId"]] += item["priceCents"] * item["quantity"]
        for seller_id, subtotal in subtotals.items():
            expected_payable[(f"SELLER_PAYABLE_{seller_id}", order["currency"])] += subtotal - fee_cents(subtotal)
            fees[order["currency"]] += fee_cents(subtotal)
    for f in short:  # taken back from the seller and the fee
        currency = placed[f["orderId"]]["currency"]
        expected_payable[(f"SELLER_PAYABLE_{f['sellerId']}", currency)] -= f["amountCents"] - fee_cents(f["amountCents"])
        fees[currency] -= fee_cents(f["amountCents"])
    balances = Counter()
    for tx in by_type["LedgerTransactionPosted"]:
        debits = sum(e["amountCents"] for e in tx["entries"] if e["direction"] == "DEBIT")
        assert debits == sum(e["amountCents"] for e in tx["entries"] if e["direction"] == "CREDIT"), tx
        for e in tx["entries"]:
            sign = 1 if e["direction"] == "CREDIT" else -1
            balances[(e["accountId"], tx["currency"])] += sign * e["amountCents"]
    payables = {k: v for k, v in balances.items() if k[0].startswith("SELLER_PAYABLE_") and v}
    assert payables == {k: v for k, v in expected_payable.items() if v}
    for currency in captured:
        assert balances[("BUYIT_REVENUE", currency)] == fees[currency]
        assert balances[("REFUNDS_PAYABLE", currency)] == owed[currency]  # owed back, not yet paid
        assert balances[("BUYER_EXTERNAL", currency)] == -(captured[currency] - refunded[currency])
        assert balances[("STRIPE_CLEARING", currency)] == 0
