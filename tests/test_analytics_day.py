"""A simulated marketplace day (≥ 50,000 events) through the lake sink, and every named query checked
against figures an oracle computes from the same events in plain Python (no lake code)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from dataflows.project import fold
from sinks import facts, lake_queries
from sinks.lake import LakeSink
from state import cart, catalog, inventory, ledger, order, payment
from tests.sim.market_day import T0, market_day

SELLER = "seller-03"
CASES = {  # id -> (bucket, since, until, seller)
    "whole_day": ("day", None, None, None),
    "afternoon_hourly": ("hour", T0 + timedelta(hours=4), T0 + timedelta(hours=12), None),
    "one_seller_by_minute": ("minute", T0 + timedelta(hours=2), T0 + timedelta(hours=8), SELLER),
    "one_seller_until_evening": ("day", None, T0 + timedelta(hours=14), SELLER),
}


def lake_items(events, held: dict):
    """What the projection hands the lake sink: each event as read, and the sales rows its fold derives
    (dataflows/project.py's `fold`, which skips what it has applied already); `held` is the fold's state."""
    for h in events:
        aggregate, event = h.topic.removesuffix(".events"), h.envelope.message()
        key = f"{aggregate}:{h.envelope.key}"
        held[key], outputs = fold(held.get(key), (aggregate, h.envelope, event, True))
        yield h.topic, (h.envelope, event)
        yield from (("order.events", o[1]) for o in outputs if o[0] == "lake")


def write_day(lake, events, redeliver: float = 0.03, seed: int = 1) -> None:
    """The events through two sink partitions as the projection would, with some delivered twice."""
    rng, held = random.Random(seed), {}
    items = list(lake_items(events, held))
    first = LakeSink(lake).build_part("write_lake", "lake-0", None)
    for i in range(0, len(items), 1000):
        first.write_batch(items[i:i + 1000])
    first.close()
    again = [h for h in events if rng.random() < redeliver]  # the log holds them twice
    second = LakeSink(lake).build_part("write_lake", "lake-1", None)
    second.write_batch(list(lake_items(again, held)))
    second.close()


@pytest.fixture(scope="module")
def day():
    return market_day()


@pytest.fixture(scope="module")
def lake(day, tmp_path_factory):
    root = tmp_path_factory.mktemp("day") / "lake"
    write_day(root, day.events)
    return root


# --- the oracle: plain Python over the domain events --------------------------------------------

def trunc(at: datetime, bucket: str) -> str:
    drop = {"minute": dict(second=0, microsecond=0), "hour": dict(minute=0, second=0, microsecond=0),
            "day": dict(hour=0, minute=0, second=0, microsecond=0)}[bucket]
    return at.replace(**drop).isoformat()


def within(at, since, until) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


def of(day, *kinds):
    return [(h.event, h.at) for h in day.events if isinstance(h.event, kinds)]


def catalog_now(day) -> dict[str, dict]:
    products = {}
    for e, _ in of(day, catalog.ProductCreated, catalog.ProductUpdated):
        products.setdefault(e.product_id, {"seller": getattr(e, "seller_id", None)}).update(
            name=e.name, category=e.category)
    return products


def sales_lines(day, since, until, seller):
    """(bucket time, order id, item) of every line of an order confirmed in range."""
    confirmed = {e.order_id: at for e, at in of(day, order.OrderConfirmed)}
    for e, _ in of(day, order.OrderPlaced):
        at = confirmed.get(e.order_id)
        if at is None or not within(at, since, until):
            continue
        for item in e.items:
            if seller is None or item.seller_id == seller:
                yield at, e.order_id, item


def sales(day, bucket, since, until, seller, key):
    held = defaultdict(lambda: [set(), 0, 0])
    for at, order_id, item in sales_lines(day, since, until, seller):
        figures = held[key(trunc(at, bucket), item)]
        figures[0].add(order_id)
        figures[1] += item.quantity
        figures[2] += item.quantity * item.price_cents
    return held


def expect_sales_by(names, key):
    def expect(day, bucket, since, until, seller):
        held = sales(day, bucket, since, until, seller, key(day))
        return [{**dict(zip(names, k)), "orders": len(o), "units": u, "grossCents": g}
                for k, (o, u, g) in sorted(held.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0]))]
    return expect


def expect_top_products(day, bucket, since, until, seller, limit=10):
    products = catalog_now(day)
    held = sales(day, bucket, since, until, seller, lambda b, i: (i.product_id, i.seller_id, i.currency))
    rows = [{"productId": p, "sellerId": s, "name": products[p]["name"], "category": products[p]["category"],
             "currency": c, "orders": len(o), "units": u, "grossCents": g} for (p, s, c), (o, u, g) in held.items()]
    return sorted(rows, key=lambda r: (-r["grossCents"], -r["units"], r["productId"]))[:limit]


def carts(day, bucket, since, until, seller):
    created = {e.cart_id: at for e, at in of(day, cart.CartCreated)}
    flags = defaultdict(set)
    for e, _ in of(day, cart.CartItemConfirmed, cart.CartCheckedOut, cart.CartCompleted, cart.CartAbandoned,
                   cart.CartItemRequested):
        if isinstance(e, cart.CartItemRequested):
            if e.item.seller_id == seller:
                flags[e.cart_id].add("theirs")
            continue
        flags[e.cart_id].add(type(e).__name__)
    return {c: (trunc(at, bucket), flags[c]) for c, at in created.items()
            if within(at, since, until) and (seller is None or "theirs" in flags[c])}


def expect_funnel(day, bucket, since, until, seller):
    rows = defaultdict(lambda: [0, 0, 0, 0])
    for b, f in carts(day, bucket, since, until, seller).values():
        for n, stage in enumerate((None, "CartItemConfirmed", "CartCheckedOut", "CartCompleted")):
            rows[b][n] += stage is None or stage in f
    return [{"bucket": b, "carts": r[0], "withItems": r[1], "checkedOut": r[2], "paid": r[3]}
            for b, r in sorted(rows.items())]


def expect_abandonment(day, bucket, since, until, seller):
    rows = defaultdict(lambda: [0, 0, 0])
    for b, f in carts(day, bucket, since, until, seller).values():
        if "CartItemConfirmed" in f:
            rows[b][0] += 1
            rows[b][1] += "CartAbandoned" in f
            rows[b][2] += "CartCompleted" in f
    return [{"bucket": b, "carts": n, "abandoned": a, "completed": c, "abandonmentRate": round(a / n, 6)}
            for b, (n, a, c) in sorted(rows.items())]


def expect_expiry(day, bucket, since, until, seller):
    made, expired = {}, {e.reservation_id for e, _ in of(day, inventory.ReservationExpired)}
    for e, at in of(day, inventory.StockReserved, inventory.StockAllocated):
        made.setdefault(e.reservation_id, (at, e.product_id))
    rows = defaultdict(lambda: [0, 0])
    for rid, (at, pid) in made.items():
        if within(at, since, until) and (seller is None or day.seller_of[pid] == seller):
            rows[trunc(at, bucket)][0] += 1
            rows[trunc(at, bucket)][1] += rid in expired
    return [{"bucket": b, "reservations": n, "expired": x, "expiryRate": round(x / n, 6)}
            for b, (n, x) in sorted(rows.items())]


def expect_turnover(day, bucket, since, until, seller):
    per = defaultdict(lambda: {"opening": 0, "closing": 0, "sold": 0, "on_hand": 0})
    for e, at in of(day, inventory.StockCreated, inventory.StockUpdated, inventory.ReservationFulfilled):
        p = per[e.product_id]
        if isinstance(e, inventory.StockUpdated):
            p["on_hand"] = e.total_quantity
        elif isinstance(e, inventory.ReservationFulfilled):
            p["on_hand"] -= e.quantity
            p["sold"] += e.quantity if within(at, since, until) else 0
        if since is not None and at < since:
            p["opening"] = p["on_hand"]
        if until is None or at < until:
            p["closing"] = p["on_hand"]
    rows = [{"productId": pid, "sellerId": day.seller_of[pid], "unitsSold": p["sold"], "openingUnits": p["opening"],
             "closingUnits": p["closing"],
             "turnover": round(p["sold"] / ((p["opening"] + p["closing"]) / 2), 6)
             if p["opening"] + p["closing"] > 0 else None}
            for pid, p in per.items() if seller is None or day.seller_of[pid] == seller]
    return sorted(rows, key=lambda r: (r["turnover"] is None, -(r["turnover"] or 0), r["productId"]))


def fee(subtotal: int, bps: int) -> int:
    """The platform's cut, rounded half up: written here again on purpose, not imported."""
    return (subtotal * bps + 5_000) // 10_000


def expect_fees(day, bucket, since, until, seller):
    placed = {e.payment_id: e for e, _ in of(day, order.OrderPlaced)}
    flags = {(e.payment_id, e.refund_key): e for e, _ in of(day, payment.PaymentFlaggedForRefund)}
    rows = {}
    for e, at in of(day, ledger.LedgerTransactionPosted):
        kind = e.transaction_id.split("/", 1)[1]
        if not within(at, since, until):
            continue
        if kind == "sale":
            subtotals = defaultdict(int)
            for i in placed[e.payment_id].items:
                subtotals[i.seller_id] += i.quantity * i.price_cents
            fees = [fee(s, placed[e.payment_id].fee_bps) for who, s in subtotals.items()
                    if seller is None or who == seller]
        elif kind.startswith("refund-owed/shortfall/"):
            flag = flags[(e.payment_id, kind.removeprefix("refund-owed/"))]
            fees = [-fee(flag.amount_cents, flag.fee_bps)] if seller is None or flag.seller_id == seller else []
        else:
            continue
        if fees:  # a bucket with only other sellers' fees has no row for this seller
            key = (trunc(at, bucket), e.currency)
            rows[key] = rows.get(key, 0) + sum(fees)
    return [{"bucket": b, "currency": c, "feesCents": cents} for (b, c), cents in sorted(rows.items())]


def expect_refunds(day, bucket, since, until, seller):
    flags = {(e.payment_id, e.refund_key): e for e, _ in of(day, payment.PaymentFlaggedForRefund)}
    rows = defaultdict(lambda: [0, 0])
    for e, at in of(day, payment.PaymentRefunded):
        flag = flags[(e.payment_id, e.refund_key)]
        if within(at, since, until) and (seller is None or flag.seller_id == seller):
            row = rows[(trunc(at, bucket), e.currency, flag.reason)]
            row[0] += 1
            row[1] += e.amount_cents
    return [{"bucket": b, "currency": c, "reason": r, "refunds": n, "refundedCents": cents}
            for (b, c, r), (n, cents) in sorted(rows.items())]


ORACLE = {
    "sales-by-seller": expect_sales_by(("bucket", "sellerId", "currency"),
                                       lambda day: lambda b, i: (b, i.seller_id, i.currency)),
    "sales-by-product": expect_sales_by(("bucket", "productId", "sellerId", "currency"),
                                        lambda day: lambda b, i: (b, i.product_id, i.seller_id, i.currency)),
    "sales-by-category": expect_sales_by(("bucket", "category", "currency"),
                                         lambda day: (lambda products: lambda b, i: (
                                             b, products[i.product_id]["category"], i.currency))(catalog_now(day))),
    "top-products": expect_top_products,
    "funnel": expect_funnel,
    "cart-abandonment": expect_abandonment,
    "reservation-expiry": expect_expiry,
    "stock-turnover": expect_turnover,
    "platform-fees": expect_fees,
    "refunds": expect_refunds,
}


# --- the checks ------------------------------------------------------------------------------------

def test_the_day_is_big_enough_and_every_query_has_an_oracle(day):
    assert len(day.events) >= 50_000
    assert set(ORACLE) == set(lake_queries.QUERIES)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
@pytest.mark.parametrize("name", list(lake_queries.QUERIES))
def test_query_matches_the_oracle(day, lake, name, case):
    bucket, since, until, seller = CASES[case]
    expected = ORACLE[name](day, bucket, since, until, seller)
    assert expected, "an empty answer proves nothing: pick a range with figures in it"
    assert lake_queries.run(lake, name, since, until, bucket, seller) == expected


def test_redelivered_events_are_in_the_files_but_counted_once(day, lake):
    parquet = list((lake / "facts" / "order_lines").glob("date=*/part-lake-1-*.parquet"))
    assert parquet, "the second partition wrote duplicates"
    fees = lake_queries.run(lake, "platform-fees")
    assert sum(r["feesCents"] for r in fees) == sum(r["feesCents"] for r in expect_fees(day, "day", None, None, None))


def test_a_dropped_event_type_is_caught(day, tmp_path, monkeypatch):
    """The check can fail: a lake that forgets expirations disagrees with the oracle."""
    monkeypatch.delitem(facts._MAPPERS, "ReservationExpired")
    wanted = (catalog.ProductCreated, inventory.StockReserved, inventory.StockAllocated, inventory.ReservationExpired)
    write_day(tmp_path / "lake", [h for h in day.events if isinstance(h.event, wanted)], redeliver=0)
    got = lake_queries.run(tmp_path / "lake", "reservation-expiry")
    assert got != expect_expiry(day, "day", None, None, None)
    assert sum(r["expired"] for r in got) == 0
