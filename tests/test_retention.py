"""Finished aggregates leave the live state (issue 11, "state only grows"): a delivered order retires a grace
period after its last delivery, and takes its payment and ledger with it; a cancelled order that had a
PaymentIntent stays live through Stripe's retry window, so a late capture is still refunded; a payment with
a refund under way stays live. Retiring goes through the aggregate's own command topic (a replay retires
at the same place) and leaves a tombstone of its version. Run through the real decision operator, in
process, over simulated hours."""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import timedelta

from buyit.envelope import Envelope
from dataflows import decider
from state import cart, order, payment
from state.common import BUYER, SELLER, Actor, Tombstone
from tests.sim.world import World
from tests.test_shortfall import HARD_TTL, listed

SELLER_1 = Actor("seller-1", SELLER)
RETAIN = timedelta(hours=1)


def world(seed: int, forget: timedelta = timedelta(days=30)) -> World:
    w = World(seed=seed, duplicate_rate=0.0, retain=RETAIN, forget=forget)
    listed(w, SELLER_1, "mug", 1500, 100_000)
    return w


def placed(w: World, n: int, buyer: Actor | None = None, attach: bool = True) -> str:
    """Order `order-n` checked out by `buyer` (default: a buyer of its own), its PaymentIntent attached."""
    buyer = buyer or Actor(f"buyer-{n}", BUYER)
    w.send("cart", buyer.user_id, cart.AddCartItem(
        command_id=f"add-{n}", now=w.now, actor=buyer, buyer_id=buyer.user_id, product_id="mug", sku="mug",
        seller_id=SELLER_1.user_id, price_cents=1500, currency="USD", quantity=1, reservation_ttl_s=HARD_TTL,
        cart_ttl_s=HARD_TTL))
    w.drain()
    w.send("cart", buyer.user_id, cart.Checkout(
        command_id=f"checkout-{n}", now=w.now, actor=buyer, buyer_id=buyer.user_id, order_id=f"order-{n}",
        payment_id=f"pay-{n}", allocation_ttl_s=HARD_TTL, fee_bps=1000))
    w.drain()
    if not attach:
        return f"order-{n}"
    w.send("order", f"order-{n}", order.AttachPayment(command_id=f"attach-{n}", now=w.now, order_id=f"order-{n}",
                                                      payment_id=f"pay-{n}", intent_id=f"pi_{n}"))
    w.drain()
    return f"order-{n}"


def cancelled(w: World, n: int) -> None:
    w.send("order", f"order-{n}", order.CancelOrder(command_id=f"cancel-{n}", now=w.now, order_id=f"order-{n}",
                                                    actor=Actor(f"buyer-{n}", BUYER), reason="buyer"))
    w.drain()
    assert w.state("order", f"order-{n}").status == order.CANCELLED


def captured(w: World, n: int) -> None:
    w.send("payment", f"pay-{n}", payment.CapturePayment(command_id=f"capture-{n}", now=w.now, payment_id=f"pay-{n}",
                                                         stripe_event_id=f"evt_{n}", intent_id=f"pi_{n}"))
    w.drain()


def delivered(w: World, order_id: str) -> None:
    for shipment in w.state("order", order_id).shipments:
        for step, move in enumerate((order.ProcessShipment, order.ShipShipment, order.DeliverShipment)):
            extra = {"tracking_number": "T1", "carrier": "UPS"} if move is order.ShipShipment else {}
            w.send("order", order_id, move(command_id=f"{order_id}/{shipment.shipment_id}/{step}", now=w.now,
                                           actor=SELLER_1, order_id=order_id, shipment_id=shipment.shipment_id,
                                           **extra))
            w.drain()


def wait_out(w: World, seconds: float, step_s: int = 600) -> None:
    for _ in range(int(seconds // step_s) + 1):
        w.tick(step_s)
        w.drain()


def retired(w: World, aggregate: str, key: str) -> bool:
    return isinstance(w.state(aggregate, key), Tombstone)


def answer(w: World, command_id: str) -> dict:
    return w.answers[command_id][0]["payload"]


def test_a_delivered_order_retires_after_the_grace_with_its_payment_and_ledger():
    w = world(1)
    placed(w, 1)
    captured(w, 1)
    delivered(w, "order-1")
    assert w.state("order", "order-1").status == order.CONFIRMED  # all delivered: finished, still live

    wait_out(w, RETAIN.total_seconds() - 1200)
    assert not retired(w, "order", "order-1")
    wait_out(w, 1800)
    assert retired(w, "order", "order-1") and retired(w, "payment", "pay-1") and retired(w, "ledger", "pay-1")

    # Each left its mark in its own log, one version after its last event: a replay retires it at the same place.
    for aggregate, key in (("order", "order-1"), ("payment", "pay-1"), ("ledger", "pay-1")):
        versions = [e["version"] for e in w.events if e["key"] == key
                    and w.event_topics[e["eventId"]] == f"{aggregate}.events"]
        mark = [e for e in w.events if e["key"] == key and e["type"] == "Retired" and e["version"] == versions[-1]]
        assert versions == list(range(1, len(versions) + 1)) and len(mark) == 1, (aggregate, versions)
        assert w.state(aggregate, key).version == versions[-1]

    # Late commands change nothing: a second delivery is refused, a webhook delivered again moves no money.
    before = len(w.events)
    w.send("order", "order-1", order.DeliverShipment(command_id="late-deliver", now=w.now, actor=SELLER_1,
                                                     order_id="order-1", shipment_id="any"))
    w.send("payment", "pay-1", payment.CapturePayment(command_id="late-capture", now=w.now, payment_id="pay-1",
                                                      stripe_event_id="evt_1", intent_id="pi_1"))
    w.drain()
    assert len(w.events) == before and w.dead == []
    assert (answer(w, "late-deliver")["status"], answer(w, "late-deliver")["error"]) == (409, "invalid_transition")
    assert answer(w, "late-capture")["status"] == 409
    # A malformed timer record for it neither crashes the operator nor does anything.
    junk = Envelope(event_id="junk-retire", type="Retire", key="order-1", occurred_at=w.now.isoformat(),
                    correlation_id="junk-retire", causation_id=None, version=None, payload={"now": "not a time"})
    w._enqueue("order.commands", "order-1", junk.encode())
    w.drain()
    assert len(w.events) == before and retired(w, "order", "order-1")


def test_a_cancelled_order_with_a_payment_intent_stays_live_for_a_late_capture_and_refunds_it():
    w = world(2)
    placed(w, 2)
    cancelled(w, 2)

    wait_out(w, timedelta(days=2).total_seconds(), step_s=3600)  # Stripe's retries are still coming
    assert not retired(w, "order", "order-2")
    captured(w, 2)  # the buyer's payment went through after all: it goes back
    held = w.state("payment", "pay-2")
    assert held.state == payment.REFUND_PENDING and held.unclaimed_cents == 0

    wait_out(w, (order.LATE_PAYMENT_WINDOW - timedelta(days=2) + RETAIN).total_seconds(), step_s=3600)
    assert retired(w, "order", "order-2")
    # ...but not the payment, while its refund is under way: Stripe's answer must still find it.
    assert not retired(w, "payment", "pay-2") and not retired(w, "ledger", "pay-2")
    w.send("payment", "pay-2", payment.SettleRefund(command_id="settle-2", now=w.now, payment_id="pay-2",
                                                    refund_key=held.claims[0][0], refund_id="re_2"))
    w.drain()
    assert w.state("payment", "pay-2").state == payment.REFUNDED
    posted = [t.transaction_id for t in w.state("ledger", "pay-2").transactions]
    assert len(posted) == 2 and w.dead == []  # owed, then paid back


def test_an_order_never_paid_retires_once_its_holds_lapse_and_the_grace_passes():
    """No PaymentIntent was ever made: nothing can come late, so it retires a grace after its cancellation."""
    w = world(4)
    placed(w, 4, attach=False)
    wait_out(w, HARD_TTL + order.SAGA_GRACE.total_seconds())  # its holds lapse: it is cancelled
    assert w.state("order", "order-4").status == order.CANCELLED and not retired(w, "order", "order-4")
    wait_out(w, RETAIN.total_seconds())
    assert retired(w, "order", "order-4") and w.dead == []


def test_a_refusal_or_a_probe_of_an_unknown_key_holds_nothing():
    w = world(5)
    before = set(w.logic)
    for n in range(50):
        w.send("order", f"nope-{n}", order.DeliverShipment(command_id=f"probe-{n}", now=w.now, actor=SELLER_1,
                                                            order_id=f"nope-{n}", shipment_id="s"))
    w.drain()
    assert {answer(w, f"probe-{n}")["status"] for n in range(50)} == {404}
    assert set(w.logic) == before


def test_what_is_held_stays_flat_while_orders_keep_coming(monkeypatch):
    """Twenty hours of orders, 20 an hour, each paid and delivered by a few regular buyers: once the first
    ones retire (an hour after delivery) and their tombstones go (two hours after that), what the decision
    operator holds stays flat: no order, reservation or payment of the past is held any more. (Each key
    also remembers its last `RECENT_COMMANDS` command ids: 64 here, so that window fills within the run.)"""
    monkeypatch.setattr(decider, "RECENT_COMMANDS", 64)
    w = world(6, forget=timedelta(hours=2))
    buyers = [Actor(f"regular-{b}", BUYER) for b in range(8)]
    sizes, n = [], 0
    for hour in range(20):
        for _ in range(20):
            n += 1
            placed(w, n, buyers[n % len(buyers)])
            captured(w, n)
            delivered(w, f"order-{n}")
            wait_out(w, 180, step_s=180)
        sizes.append(_held(w))
    assert sum(e["type"] == "Retired" for e in w.events) >= 3 * 300 and w.dead == []
    orders = [s["orders"] for s in sizes]
    assert orders[-1] <= 4 * 20 and orders[-1] <= orders[10] + 2, orders  # a few hours' worth, no more
    # Every key's window of remembered command ids is full by hour 10; after that, nothing grows. Each window is
    # sealed in chunks (dataflows/remembered.py), so a key holds between 64 and 95 ids as its chunks fill and
    # go: compare the largest of hours 14-20 with the largest of hours 7-13 (which take in hours 10-13), not
    # two single hours.
    held = [s["bytes"] for s in sizes]
    assert max(held[13:]) <= 1.05 * max(held[6:13]), held
    stock = w.state("inventory", "mug")
    assert len(stock.ended) <= 4 * 20 and stock.sold == n  # ended reservations of retired orders forgotten


def test_a_product_forgets_the_carts_that_let_it_go():
    """Every hour 30 shoppers put the mug in a cart and never come back: each hold lapses, and its tombstone
    (kept so a late copy of the cart's request is known) goes an hour later. What the product holds stays at
    about an hour's worth, instead of every shopper who ever looked at it."""
    w = world(7)
    ended = []
    for hour in range(5):
        for k in range(30):
            shopper = Actor(f"shopper-{hour}-{k}", BUYER)
            w.send("cart", shopper.user_id, cart.AddCartItem(
                command_id=f"look-{hour}-{k}", now=w.now, actor=shopper, buyer_id=shopper.user_id, product_id="mug",
                sku="mug", seller_id=SELLER_1.user_id, price_cents=1500, currency="USD", quantity=1,
                reservation_ttl_s=300, cart_ttl_s=300))
            w.drain()
        wait_out(w, 3600 - 300, step_s=300)
        ended.append(len(w.state("inventory", "mug").ended))
    stock = w.state("inventory", "mug")
    assert (stock.reserved, stock.available) == (0, 100_000) and w.dead == []
    assert ended == [30] * 5, ended  # never more than the last hour's shoppers
    assert sum(e["type"] == "ReservationForgotten" for e in w.events) == 4 * 30


def _held(w: World) -> Counter:
    out = Counter()
    for key, logic in w.logic.items():
        out["bytes"] += len(pickle.dumps(logic.slot))
        out["orders"] += key.startswith("order:")
    return out
