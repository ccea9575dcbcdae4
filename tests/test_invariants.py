"""A seeded, randomised marketplace run through the real decision operator, audited afterwards.

Hundreds of buyers, several sellers, concurrent carts and checkouts, Stripe
captures and failures delivered more than once, commands redelivered
(at-least-once), expiries firing: then an independent auditor folds every
emitted event and checks what must always hold.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from dataflows import decider
from state import cart, catalog, inventory, ledger, order, payment
from state.common import ADMIN, BUYER, SELLER, Actor, derived_id
from state.registry import AGGREGATES
from tests.sim.world import World

SELLERS, PRODUCTS_PER_SELLER, BUYERS, ROUNDS = 4, 3, 300, 2500
TTL = {"soft": 300, "cart": 240, "hard": 600}


def new_id(world: World) -> str:
    return str(uuid.UUID(int=world.rng.getrandbits(128)))


class Market:
    """Drives the World the way the API would, with random choices."""

    def __init__(self, world: World, currencies: tuple[str, ...] = ("USD",)):
        self.w = world
        self.currencies = currencies  # seller s sells in currencies[s % len]
        self.products: list[catalog.Product] = []
        self.orders: dict[str, str] = {}  # order id -> buyer
        self.intents: dict[str, str] = {}  # order id -> intent id

    def open_shop(self) -> None:
        w = self.w
        for s in range(SELLERS):
            seller = Actor(f"seller-{s}", SELLER)
            for p in range(PRODUCTS_PER_SELLER):
                pid = f"product-{s}-{p}"
                w.send("catalog", pid, catalog.CreateProduct(
                    command_id=new_id(w), now=w.now, actor=seller, product_id=pid, seller_id=seller.user_id,
                    sku=f"SKU-{p}", name=f"Thing {s}-{p}", price_cents=w.rng.randint(1, 9999),
                    currency=self.currencies[s % len(self.currencies)],
                    status="ACTIVE"))
        w.drain()
        for key, product in w.states("catalog").items():
            self.products.append(product)
            w.send("inventory", key, inventory.SetStock(
                command_id=new_id(w), now=w.now, actor=Actor(product.seller_id, SELLER), product_id=key,
                total_quantity=w.rng.randint(3, 25)))
        w.drain()

    def act(self) -> None:
        w, roll = self.w, self.w.rng.random()
        buyer = Actor(f"buyer-{w.rng.randrange(BUYERS)}", BUYER)
        if roll < 0.45:
            product = w.rng.choice(self.products)
            w.send("cart", buyer.user_id, cart.AddCartItem(
                command_id=new_id(w), now=w.now, actor=buyer, buyer_id=buyer.user_id, product_id=product.product_id,
                sku=product.sku, seller_id=product.seller_id, price_cents=product.price_cents,
                currency=product.currency, quantity=w.rng.randint(1, 3), reservation_ttl_s=TTL["soft"],
                cart_ttl_s=TTL["cart"]))
        elif roll < 0.55:
            held = w.state("cart", buyer.user_id)
            items = [i for i in held.items.values() if i.quantity > 0]
            if items:
                item = w.rng.choice(items)
                if w.rng.random() < 0.5:
                    w.send("cart", buyer.user_id, cart.ChangeCartItem(
                        command_id=new_id(w), now=w.now, actor=buyer, buyer_id=buyer.user_id, item_id=item.item_id,
                        quantity=w.rng.randint(1, 4), reservation_ttl_s=TTL["soft"], cart_ttl_s=TTL["cart"]))
                else:
                    w.send("cart", buyer.user_id, cart.RemoveCartItem(
                        command_id=new_id(w), now=w.now, actor=buyer, buyer_id=buyer.user_id, item_id=item.item_id,
                        cart_ttl_s=TTL["cart"]))
        elif roll < 0.70:
            cid = new_id(w)
            order_id, payment_id = derived_id(cid, "order"), derived_id(cid, "payment")
            self.orders[order_id] = buyer.user_id
            w.send("cart", buyer.user_id, cart.Checkout(
                command_id=cid, now=w.now, actor=buyer, buyer_id=buyer.user_id, order_id=order_id,
                payment_id=payment_id, allocation_ttl_s=TTL["hard"], fee_bps=1000))
        elif roll < 0.80:
            self.attach_payment()
        elif roll < 0.92:
            self.webhook()
        elif roll < 0.96:
            product = w.rng.choice(self.products)
            stock = w.state("inventory", product.product_id)
            w.send("inventory", product.product_id, inventory.SetStock(
                command_id=new_id(w), now=w.now, actor=Actor(ADMIN, ADMIN), product_id=product.product_id,
                total_quantity=w.rng.randint(0, 30), expected_version=stock.version if w.rng.random() < 0.5 else None))
        else:
            w.tick(w.rng.uniform(0, 120))

    def attach_payment(self) -> None:
        w = self.w
        ready = [o for o in self.orders if w.state("order", o).allocated_all and o not in self.intents]
        if ready:
            order_id = w.rng.choice(ready)
            held = w.state("order", order_id)
            intent = f"pi_{new_id(w)}"
            self.intents[order_id] = intent
            w.send("order", order_id, order.AttachPayment(
                command_id=new_id(w), now=w.now, actor=Actor(held.buyer_id, BUYER), order_id=order_id,
                payment_id=held.payment_id, intent_id=intent))

    def webhook(self) -> None:
        """Stripe: success mostly, failure sometimes, each event delivered up to three times."""
        w = self.w
        if not self.intents:  # the payment may not be open yet: webhooks can overtake it
            return
        order_id = w.rng.choice(sorted(self.intents))
        payment_id = w.state("order", order_id).payment_id
        kind = payment.CapturePayment if w.rng.random() < 0.7 else payment.FailPayment
        event_id = f"evt_{new_id(w)}"
        for _ in range(w.rng.randint(1, 3)):
            w.send("payment", payment_id, kind(
                command_id=str(uuid.uuid5(uuid.NAMESPACE_URL, event_id)), now=w.now, payment_id=payment_id,
                stripe_event_id=event_id, intent_id=self.intents[order_id]))


@pytest.mark.parametrize("seed, window", [(1, None), (2, None), (3, None), (6, 4), (7, 4)])
def test_randomised_marketplace_keeps_every_invariant(seed, window, monkeypatch):
    """`window`: each key remembers only that many command ids, and some records are delivered again after
    600+ others, so every redelivery must be known by state."""
    if window is not None:
        monkeypatch.setattr(decider, "RECENT_COMMANDS", window)
    w = World(seed, late_rate=0.02 if window else 0.0)
    market = Market(w)
    market.open_shop()
    for _ in range(ROUNDS):
        market.act()
        w.run(w.rng.randint(0, 6))  # let some saga steps through, leave others in flight
    w.drain()
    for _ in range(40):  # let every timer fire: unpaid orders and idle carts end
        w.tick(120)
        w.drain()

    assert w.dead == []
    orders, payments, ledgers = w.states("order"), w.states("payment"), w.states("ledger")
    stocks = w.states("inventory")

    # The run did what it says: many orders, both endings, money moved.
    statuses = Counter(o.status for o in orders.values())
    assert statuses[order.CONFIRMED] > 10 and statuses[order.CANCELLED] > 5, statuses
    assert Counter(p.state for p in payments.values())[payment.CAPTURED] > 10

    # Replaying the events (what the projection and `buyit replay` do) rebuilds exactly the live state.
    for name in AGGREGATES:
        if name != "health":
            assert w.replayed(name) == w.states(name), name

    # Inventory: no quantity negative, buckets add up, nothing held by an order that ended.
    sold_by_orders: Counter = Counter()
    for o in orders.values():
        if o.status == order.CONFIRMED:
            for item in o.items:
                sold_by_orders[item.product_id] += item.quantity
    for pid, s in stocks.items():
        inventory.audit(s)  # the full recount: buckets match the reservations held, expiry index complete
        assert min(s.total, s.available, s.reserved, s.allocated, s.sold) >= 0
        assert s.available + s.reserved + s.allocated == s.total
        assert s.sold == sold_by_orders[pid], pid  # every unit sold belongs to exactly one paid order
        assert all(r.kind == inventory.SOFT or orders[r.holder_id].status == order.PENDING
                   for r in s.reservations.values())

    # Ledger: every transaction balances, debits equal credits overall, one per captured payment.
    entries = [e for lg in ledgers.values() for e in lg.entries]
    assert sum(e.amount_cents for e in entries if e.direction == ledger.DEBIT) == \
        sum(e.amount_cents for e in entries if e.direction == ledger.CREDIT)
    assert all(ledger.balanced(lg.entries) for lg in ledgers.values())
    posted = Counter(e["payload"]["paymentId"] for e in {x["eventId"]: x for x in w.events}.values()
                     if e["type"] == "LedgerTransactionPosted")
    # a kept capture posts its sale; one that landed on a cancelled order posts the refund owed, and no seller
    captured = {p.payment_id for p in payments.values() if p.state == payment.CAPTURED}
    owed = {p.payment_id for p in payments.values() if p.state == payment.REFUND_PENDING}
    assert set(posted) == captured | owed and set(posted.values()) == {1}
    for pid in captured | owed:
        assert ledgers[pid].entries[0].amount_cents == payments[pid].amount_cents
    for pid in owed:
        assert not any(e.account_id.startswith("SELLER_PAYABLE_") for e in ledgers[pid].entries), pid

    # Orders: only legal states, and money and order agree.
    for o in orders.values():
        assert o.status in (order.PENDING, order.CONFIRMED, order.CANCELLED)
        pay = payments.get(o.payment_id)
        if o.status == order.CONFIRMED:
            assert pay is not None and pay.state == payment.CAPTURED and not o.provisional
        if pay is not None and pay.state == payment.CAPTURED:
            assert o.status == order.CONFIRMED
        if o.status == order.CANCELLED:
            assert all(s.status == order.CANCELLED for s in o.shipments)

    # Everything settled once every timer had its turn: no order pending, no unit held, no cart holding
    # items; and every command sent got an answer, the same one however often it was delivered.
    assert [o.order_id for o in orders.values() if o.status == order.PENDING] == []
    assert {pid: (s.reserved, s.allocated) for pid, s in stocks.items() if s.reserved or s.allocated} == {}
    assert [c.buyer_id for c in w.states("cart").values() if c.status == cart.ACTIVE and c.items] == []
    unanswered = [cid for cid in w.sent if cid not in w.answers]
    assert unanswered == [], f"{len(unanswered)} of {len(w.sent)} commands never answered"
    # (With a short window of remembered ids, a record delivered again after its id was forgotten is known by
    # state and decides nothing, but its answer can only say so: the first answer is the one that stands, in
    # the API's memory and in `command_results` alike.)
    differing = {cid: [(a["payload"]["status"], a["payload"].get("error")) for a in w.answers[cid]]
                 for cid in w.sent if len({(a["payload"]["status"], a["payload"].get("error"))
                                          for a in w.answers[cid]}) > 1}
    assert window is not None or differing == {}
