"""A simulated marketplace day as event envelopes, built from the real event classes (no Kafka).

Sellers list products and stock them; buyers fill carts; carts lapse, or check out into orders
that are paid (sometimes refunded in part later), fail to pay, or lapse unpaid. The clock only
moves forward, one event at a time, so every aggregate's versions follow its events' times.
Seeded: the same seed gives the same day.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from buyit.envelope import Envelope, to_wire
from state import cart, catalog, inventory, ledger, order, payment
from state.common import type_name

T0 = datetime(2025, 3, 1, 8, tzinfo=UTC)  # the day runs past midnight: two day partitions
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "shoes", "tools", "toys")


@dataclass
class Happened:
    """One event as it happened: what the lake gets (topic, envelope) and what an oracle reads (event)."""

    topic: str
    envelope: Envelope
    event: object
    at: datetime


@dataclass
class Day:
    """The events of the day, in order, and the catalog the oracle needs."""

    events: list[Happened] = field(default_factory=list)
    seller_of: dict[str, str] = field(default_factory=dict)
    category_of: dict[str, str] = field(default_factory=dict)


class _World:
    def __init__(self, seed: int, step_s: float):
        self.rng = random.Random(seed)
        self.clock = T0
        self.step_s = step_s
        self.versions: dict[str, int] = {}
        self.day = Day()

    def id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(self, aggregate: str, key: str, event) -> datetime:
        self.clock += timedelta(seconds=self.rng.uniform(0.2, 2 * self.step_s))
        version = self.versions[f"{aggregate}:{key}"] = self.versions.get(f"{aggregate}:{key}", 0) + 1
        env = Envelope(event_id=self.id(), type=type_name(event), key=key, occurred_at=self.clock.isoformat(),
                       correlation_id=self.id(), causation_id=None, version=version, payload=to_wire(event))
        self.day.events.append(Happened(f"{aggregate}.events", env, event, self.clock))
        return self.clock


def market_day(carts: int = 4400, seed: int = 7, sellers: int = 20, per_seller: int = 10) -> Day:
    """A day of `carts` shopping carts (about 17 events each) over `sellers` × `per_seller` products."""
    w = _World(seed, step_s=24 * 3600 / (carts * 18))
    rng = w.rng
    stock: dict[str, list[int]] = {}  # product -> [total, available]
    products = []
    for s in range(sellers):
        seller = f"seller-{s:02d}"
        for n in range(per_seller):
            pid, category, price = f"p-{s:02d}-{n}", rng.choice(CATEGORIES), rng.randrange(199, 20_000)
            w.emit("catalog", pid, catalog.ProductCreated(
                product_id=pid, seller_id=seller, sku=f"SKU{n}", name=f"thing {s}/{n}", description="",
                category=category, price_cents=price, currency="USD", status="ACTIVE", image_public_ids=(),
                created_at=w.clock))
            w.emit("inventory", pid, inventory.StockCreated(product_id=pid, seller_id=seller, sku=f"SKU{n}",
                                                            low_stock_threshold=5))
            total = rng.randrange(20, 200)
            stock[pid] = [total, total]
            w.emit("inventory", pid, _stock_updated(pid, total, total))
            w.day.seller_of[pid], w.day.category_of[pid] = seller, category
            products.append((pid, seller, price))
    for c in range(carts):
        if c % 50 == 0:  # restocks through the day
            pid = rng.choice(products)[0]
            more = rng.randrange(10, 80)
            stock[pid][0] += more
            stock[pid][1] += more
            w.emit("inventory", pid, _stock_updated(pid, stock[pid][0], stock[pid][1]))
        if c % 400 == 0:  # a product moves category: the latest category counts
            pid, seller, price = rng.choice(products)
            w.day.category_of[pid] = category = rng.choice(CATEGORIES)
            w.emit("catalog", pid, catalog.ProductUpdated(
                product_id=pid, name=f"renamed {pid}", description="", category=category, price_cents=price,
                currency="USD", status="ACTIVE", image_public_ids=(), updated_at=w.clock))
        _shop(w, stock, products, f"buyer-{rng.randrange(carts // 2)}")
    return w.day


def _stock_updated(pid: str, total: int, available: int) -> inventory.StockUpdated:
    levels = inventory.Levels(total=total, available=available, reserved=0, allocated=total - available, sold=0)
    return inventory.StockUpdated(product_id=pid, total_quantity=total, low_stock_threshold=5, levels=levels)


def _shop(w: _World, stock, products, buyer: str) -> None:
    rng, cart_id = w.rng, w.id()
    w.emit("cart", buyer, cart.CartCreated(cart_id=cart_id, buyer_id=buyer, created_at=w.clock))
    held: list[cart.Item] = []
    for pid, seller, price in rng.sample(products, rng.choice((0, 1, 1, 2, 2, 3))):
        quantity, rid = rng.randrange(1, 4), w.id()
        item = cart.Item(item_id=w.id(), product_id=pid, sku="SKU", seller_id=seller, quantity=quantity,
                         price_cents=price, currency="USD", reservation_id=rid)
        later = w.clock + timedelta(minutes=15)
        w.emit("cart", buyer, cart.CartItemRequested(cart_id=cart_id, item=item, quantity=quantity, mode="set",
                                                     reservation_expires_at=later, expires_at=later))
        if stock[pid][1] < quantity:
            w.emit("inventory", pid, inventory.ReservationRefused(product_id=pid, reservation_id=rid, cart_id=cart_id,
                                                                  buyer_id=buyer, requested=quantity,
                                                                  available=stock[pid][1]))
            w.emit("cart", buyer, cart.CartItemRefused(cart_id=cart_id, item_id=item.item_id, product_id=pid))
            continue
        stock[pid][1] -= quantity
        w.emit("inventory", pid, inventory.StockReserved(product_id=pid, reservation_id=rid, cart_id=cart_id,
                                                         buyer_id=buyer, quantity=quantity, expires_at=later,
                                                         available=stock[pid][1]))
        w.emit("cart", buyer, cart.CartItemConfirmed(cart_id=cart_id, item_id=item.item_id, product_id=pid,
                                                     quantity=quantity))
        held.append(item)
    if held and rng.random() < 0.08:  # the buyer takes one back
        item = held.pop()
        w.emit("cart", buyer, cart.CartItemRemoved(cart_id=cart_id, item_id=item.item_id, product_id=item.product_id,
                                                   reservation_id=item.reservation_id, quantity=item.quantity,
                                                   reason="removed", expires_at=None))
        _release(w, stock, item, "SOFT", "removed")
    if not held:
        return
    if rng.random() < 0.3:  # left alone: the holds and then the cart lapse
        for item in held:
            _expire(w, stock, item, "SOFT", buyer)
        w.emit("cart", buyer, cart.CartAbandoned(cart_id=cart_id, buyer_id=buyer, status=cart.EXPIRED,
                                                 items=tuple(held), at=w.clock))
        return
    _checkout(w, stock, buyer, cart_id, held)


def _release(w: _World, stock, item: cart.Item, kind: str, reason: str, order_id: str = "") -> None:
    stock[item.product_id][1] += item.quantity
    w.emit("inventory", item.product_id, inventory.ReservationReleased(
        product_id=item.product_id, reservation_id=item.reservation_id, quantity=item.quantity, kind=kind,
        reason=reason, available=stock[item.product_id][1], order_id=order_id))


def _expire(w: _World, stock, item: cart.Item, kind: str, buyer: str) -> None:
    stock[item.product_id][1] += item.quantity
    w.emit("inventory", item.product_id, inventory.ReservationExpired(
        product_id=item.product_id, reservation_id=item.reservation_id, holder_id=buyer, buyer_id=buyer,
        quantity=item.quantity, kind=kind, available=stock[item.product_id][1]))


def _checkout(w: _World, stock, buyer: str, cart_id: str, held: list[cart.Item]) -> None:
    rng = w.rng
    order_id, payment_id, fee_bps = w.id(), w.id(), 1000
    w.emit("cart", buyer, cart.CartCheckedOut(cart_id=cart_id, buyer_id=buyer, order_id=order_id,
                                              payment_id=payment_id, items=tuple(held), allocation_ttl_s=1800,
                                              fee_bps=fee_bps))
    items = tuple(order.OrderItem(item_id=i.item_id, product_id=i.product_id, sku=i.sku, seller_id=i.seller_id,
                                  quantity=i.quantity, price_cents=i.price_cents, currency="USD",
                                  reservation_id=i.reservation_id) for i in held)
    total = sum(i.quantity * i.price_cents for i in items)
    w.emit("order", order_id, order.OrderPlaced(
        order_id=order_id, buyer_id=buyer, cart_id=cart_id, payment_id=payment_id, items=items,
        shipments=order.shipments_for(order_id, items), total_cents=total, currency="USD", fee_bps=fee_bps,
        expires_at=w.clock + timedelta(minutes=30), created_at=w.clock))
    for i in items:
        w.emit("inventory", i.product_id, inventory.StockAllocated(
            product_id=i.product_id, reservation_id=i.reservation_id, order_id=order_id, quantity=i.quantity,
            expires_at=w.clock + timedelta(minutes=30), available=stock[i.product_id][1]))
    fate = rng.random()
    if fate < 0.1:  # never paid: the allocations lapse and the order is cancelled
        for i in held:
            _expire(w, stock, i, "HARD", order_id)
        w.emit("order", order_id, order.OrderCancelled(order_id=order_id, reason="allocation_expired",
                                                       cancelled_at=w.clock))
        w.emit("cart", buyer, cart.CartAbandoned(cart_id=cart_id, buyer_id=buyer, status=cart.ABANDONED,
                                                 items=tuple(held), at=w.clock))
        return
    w.emit("payment", payment_id, payment.PaymentCreated(payment_id=payment_id, order_id=order_id, buyer_id=buyer,
                                                         amount_cents=total, currency="USD", intent_id=w.id(),
                                                         created_at=w.clock))
    if fate < 0.2:  # the card is declined
        w.emit("payment", payment_id, payment.PaymentFailed(payment_id=payment_id, order_id=order_id,
                                                            stripe_event_id=w.id(), reason="card_declined",
                                                            failed_at=w.clock))
        w.emit("order", order_id, order.OrderCancelled(order_id=order_id, reason="payment_failed",
                                                       cancelled_at=w.clock))
        for i in held:
            _release(w, stock, i, "HARD", "payment_failed", order_id)
        w.emit("cart", buyer, cart.CartAbandoned(cart_id=cart_id, buyer_id=buyer, status=cart.ABANDONED,
                                                 items=tuple(held), at=w.clock))
        if rng.random() < 0.3:  # ... yet money arrived later: all of it goes back
            _refund(w, payment_id, order_id, total, "order_cancelled", "", "",
                    ledger.refund_owed_entries(total))
        return
    w.emit("payment", payment_id, payment.PaymentCaptured(payment_id=payment_id, order_id=order_id, buyer_id=buyer,
                                                          amount_cents=total, currency="USD",
                                                          stripe_event_id=w.id(), captured_at=w.clock))
    w.emit("order", order_id, order.OrderConfirmed(order_id=order_id, payment_id=payment_id, confirmed_at=w.clock))
    for i in items:
        stock[i.product_id][0] -= i.quantity
        w.emit("inventory", i.product_id, inventory.ReservationFulfilled(
            product_id=i.product_id, reservation_id=i.reservation_id, order_id=order_id, quantity=i.quantity))
    subtotals: dict[str, int] = {}
    for i in items:
        subtotals[i.seller_id] = subtotals.get(i.seller_id, 0) + i.quantity * i.price_cents
    _post(w, payment_id, order_id, "sale", ledger.sale_entries(total, tuple(subtotals.items()), fee_bps))
    w.emit("cart", buyer, cart.CartCompleted(cart_id=cart_id, order_id=order_id, at=w.clock))
    if rng.random() < 0.08:  # one item could not be delivered: its share goes back
        short = rng.choice(items)
        amount = short.quantity * short.price_cents
        _refund(w, payment_id, order_id, amount, "sale_shortfall", f"shortfall/{short.product_id}", short.seller_id,
                ledger.shortfall_entries(amount, short.seller_id, fee_bps), fee_bps)


def _post(w: _World, payment_id: str, order_id: str, kind: str, entries) -> None:
    w.emit("ledger", payment_id, ledger.LedgerTransactionPosted(
        transaction_id=f"{payment_id}/{kind}", payment_id=payment_id, order_id=order_id, currency="USD",
        entries=tuple(entries), posted_at=w.clock))


def _refund(w: _World, payment_id, order_id, amount, reason, refund_key, seller, owed, fee_bps=0) -> None:
    w.emit("payment", payment_id, payment.PaymentFlaggedForRefund(
        payment_id=payment_id, order_id=order_id, amount_cents=amount, reason=reason, flagged_at=w.clock,
        currency="USD", refund_key=refund_key, seller_id=seller, fee_bps=fee_bps))
    _post(w, payment_id, order_id, f"refund-owed/{refund_key}", owed)
    w.emit("payment", payment_id, payment.PaymentRefunded(payment_id=payment_id, order_id=order_id, amount_cents=amount,
                                                          currency="USD", refund_id=w.id(), refunded_at=w.clock,
                                                          refund_key=refund_key))
    _post(w, payment_id, order_id, f"refund/{refund_key}", ledger.refund_entries(amount))
