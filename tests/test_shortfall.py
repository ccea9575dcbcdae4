"""A sale that falls short: the buyer paid in the instant the hard allocation lapsed, and another buyer took
the units first. The order keeps what it got, the missing units' money goes back, and no seller is
credited for goods it did not deliver. Run through the real decision operator, in process."""

from __future__ import annotations

from collections import Counter

from state import cart, catalog, inventory, order, payment
from state.common import BUYER, SELLER, Actor, derived_id
from tests.sim.world import World

SELLER_1, SELLER_2 = Actor("seller-1", SELLER), Actor("seller-2", SELLER)
ANN, BOB = Actor("ann", BUYER), Actor("bob", BUYER)
HARD_TTL = 600


def listed(w: World, seller: Actor, product_id: str, price: int, units: int) -> None:
    w.send("catalog", product_id, catalog.CreateProduct(
        command_id=f"create-{product_id}", now=w.now, actor=seller, product_id=product_id, seller_id=seller.user_id,
        sku=product_id, name=product_id, price_cents=price, currency="USD", status="ACTIVE"))
    w.drain()
    w.send("inventory", product_id, inventory.SetStock(
        command_id=f"stock-{product_id}", now=w.now, actor=seller, product_id=product_id, total_quantity=units))
    w.drain()


def add(w: World, buyer: Actor, seller: Actor, product_id: str, price: int, quantity: int) -> None:
    w.send("cart", buyer.user_id, cart.AddCartItem(
        command_id=f"add-{buyer.user_id}-{product_id}", now=w.now, actor=buyer, buyer_id=buyer.user_id,
        product_id=product_id, sku=product_id, seller_id=seller.user_id, price_cents=price, currency="USD",
        quantity=quantity, reservation_ttl_s=HARD_TTL, cart_ttl_s=HARD_TTL))
    w.drain()


def balances(w: World) -> Counter:
    """Account balances (credit positive) folded from the raw ledger events."""
    out = Counter()
    for e in {e["eventId"]: e for e in w.events}.values():
        if e["type"] == "LedgerTransactionPosted":
            for entry in e["payload"]["entries"]:
                out[entry["accountId"]] += entry["amountCents"] * (1 if entry["direction"] == "CREDIT" else -1)
    return out


def test_units_gone_at_payment_are_refunded_and_taken_back_from_their_seller():
    w = World(seed=7, duplicate_rate=0.0)
    listed(w, SELLER_1, "mug", 1500, 2)
    listed(w, SELLER_2, "tea", 400, 5)
    add(w, ANN, SELLER_1, "mug", 1500, 2)
    add(w, ANN, SELLER_2, "tea", 400, 1)
    w.send("cart", ANN.user_id, cart.Checkout(command_id="checkout-1", now=w.now, actor=ANN, buyer_id=ANN.user_id,
                                              order_id="order-1", payment_id="pay-1", allocation_ttl_s=HARD_TTL,
                                              fee_bps=1000))
    w.drain()
    w.send("order", "order-1", order.AttachPayment(command_id="attach-1", now=w.now, order_id="order-1",
                                                   payment_id="pay-1", intent_id="pi_1"))
    w.drain()
    assert w.state("order", "order-1").intent_id == "pi_1"

    # The hard holds lapse. The order's cancellation is still on its way (held back here) when Bob takes
    # the mugs and Stripe's capture for Ann arrives.
    w.tick(HARD_TTL + 1)
    late = w.queues.pop("order.commands:order-1")  # each lapsed hold asks the order to cancel
    assert len(late) == 2
    add(w, BOB, SELLER_1, "mug", 1500, 2)
    assert w.state("inventory", "mug").available == 0
    w.send("payment", "pay-1", payment.CapturePayment(command_id="evt-1", now=w.now, payment_id="pay-1",
                                                      stripe_event_id="evt_1", intent_id="pi_1"))
    w.drain()
    w.queues["order.commands:order-1"].extend(late)  # arrive late: the order is paid by then
    w.drain()
    assert w.dead == []

    paid = w.state("order", "order-1")
    assert paid.status == order.CONFIRMED
    assert [(s.product_id, s.quantity, s.amount_cents) for s in paid.shortfalls] == [("mug", 2, 3000)]
    assert w.state("inventory", "mug").sold == 0 and w.state("inventory", "tea").sold == 1
    pay = w.state("payment", "pay-1")
    assert (pay.state, pay.claims) == (payment.REFUND_PENDING, (("shortfall/mug", 3000),))
    books = balances(w)
    assert books["SELLER_PAYABLE_seller-1"] == 0  # credited 2700 for the mugs, then taken back
    assert books["SELLER_PAYABLE_seller-2"] == 360 and books["BUYIT_REVENUE"] == 40
    assert books["REFUNDS_PAYABLE"] == 3000

    # The payments worker refunds the claim; Stripe's charge.refunded reports it again.
    for attempt in range(2):
        w.send("payment", "pay-1", payment.SettleRefund(
            command_id=f"settle-{attempt}", now=w.now, payment_id="pay-1", refund_id="re_1",
            refund_key="shortfall/mug"))
        w.drain()
    pay = w.state("payment", "pay-1")
    assert (pay.state, pay.refunded_cents) == (payment.CAPTURED, 3000)  # the tea was kept, and paid for
    books = balances(w)
    assert books["REFUNDS_PAYABLE"] == 0 and books["BUYER_EXTERNAL"] == -400
    assert books["STRIPE_CLEARING"] == 0
    assert derived_id("pay-1", "refund/shortfall/mug") in {
        e["payload"]["transactionId"] for e in w.events if e["type"] == "LedgerTransactionPosted"}
