"""A simulated day (≥ 50,000 events) through the projection's per-minute windows, in process, against figures
computed from the same events in plain Python: every minute of every seller and product, and the funnel.

The oracle reads only the events (the order's items from its `OrderPlaced`), never the code under test;
2 % of the events are delivered twice, as the log may hold them."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows.kafka_io import Record
from dataflows.project import build_flow
from tests.sim.market_day import market_day

SALES = ("units_sold", "gross_cents", "orders", "reservations_made", "reservations_expired",
         "reservations_converted")
FUNNEL = ("carts_started", "items_added", "checkouts", "paid", "abandoned")


def minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def expected(events) -> tuple[dict, dict]:
    """(sales counts per (minute, seller, product; product "" = the seller's totals), funnel per minute)."""
    sales: dict = defaultdict(Counter)
    funnel: dict = defaultdict(Counter)
    items_of: dict[str, list] = {}
    held: dict[str, set] = defaultdict(set)  # product -> reservation ids holding units now
    seen: set[str] = set()
    for h in events:
        if h.envelope.event_id in seen:
            continue
        seen.add(h.envelope.event_id)
        kind, e, m = h.envelope.type, h.event, minute(h.at)
        if kind == "OrderPlaced":
            items_of[e.order_id] = list(e.items)
        elif kind == "OrderConfirmed":
            per_seller: dict[str, Counter] = defaultdict(Counter)
            per_product: dict[tuple, Counter] = defaultdict(Counter)
            for i in items_of[e.order_id]:
                for bucket in (per_seller[i.seller_id], per_product[(i.seller_id, i.product_id)]):
                    bucket["units_sold"] += i.quantity
                    bucket["gross_cents"] += i.quantity * i.price_cents
            for (seller, product), c in per_product.items():
                sales[(m, seller, product)].update({**c, "orders": 1})
            for seller, c in per_seller.items():
                sales[(m, seller, "")].update({**c, "orders": 1})
        elif kind == "OrderShortfall":
            for product in (e.product_id, ""):
                sales[(m, e.seller_id, product)].update({"units_sold": -e.quantity, "gross_cents": -e.amount_cents})
        elif kind == "StockReserved":
            if e.reservation_id not in held[e.product_id]:
                held[e.product_id].add(e.reservation_id)
                for product in (e.product_id, ""):
                    sales[(m, seller_of[e.product_id], product)]["reservations_made"] += 1
        elif kind in ("ReservationExpired", "ReservationFulfilled", "ReservationReleased"):
            held[e.product_id].discard(e.reservation_id)
            if kind != "ReservationReleased":
                name = "reservations_expired" if kind == "ReservationExpired" else "reservations_converted"
                for product in (e.product_id, ""):
                    sales[(m, seller_of[e.product_id], product)][name] += 1
        step = {"CartCreated": "carts_started", "CartItemConfirmed": "items_added", "CartCheckedOut": "checkouts",
                "CartCompleted": "paid", "CartAbandoned": "abandoned"}.get(kind)
        if step:
            funnel[m][step] += 1
    return ({k: {n: c[n] for n in SALES} for k, c in sales.items() if any(c.values())},
            {k: {n: c[n] for n in FUNNEL} for k, c in funnel.items()})


def windowed(rows) -> tuple[dict, dict]:
    """What the window tables hold once every upsert landed: the newest version of each (minute, part) row,
    the parts added up, as a reader does."""
    newest: dict = {}
    for r in rows:
        if r.table in ("sales_minutes", "cart_funnel_minutes"):
            v = r.values
            ident = (r.table, v["window_start"], v.get("seller_id"), v.get("product_id"), v["part"])
            if ident not in newest or newest[ident]["version"] <= v["version"]:
                newest[ident] = v
    sales: dict = defaultdict(Counter)
    funnel: dict = defaultdict(Counter)
    for (table, start, seller, product, _), v in newest.items():
        if table == "sales_minutes":
            sales[(start, seller, product)].update({n: v[n] for n in SALES})
        else:
            funnel[start].update({n: v[n] for n in FUNNEL})
    return ({k: {n: c[n] for n in SALES} for k, c in sales.items() if any(c.values())},
            {k: {n: c[n] for n in FUNNEL} for k, c in funnel.items()})


seller_of: dict[str, str] = {}


@pytest.fixture(scope="module")
def day_through_the_windows():
    day = market_day()
    seller_of.update(day.seller_of)
    rng = random.Random(3)
    delivered = []
    for h in day.events:
        delivered.append(h)
        if rng.random() < 0.02:
            delivered.append(h)
    records = [Record(h.topic, h.envelope.key, h.envelope.encode(), i) for i, h in enumerate(delivered)]
    views, dead = [], []
    run_main(build_flow(TestingSource(records, batch_size=500), TestingSink(views), TestingSink(dead),
                        TestingSink([])))
    return day, [r for batch in views for r in batch], dead


def test_every_minute_of_every_seller_and_product_matches_the_events(day_through_the_windows):
    day, rows, dead = day_through_the_windows
    assert len(day.events) >= 50_000 and dead == []
    want_sales, want_funnel = expected(day.events)
    got_sales, got_funnel = windowed(rows)
    assert len(want_sales) > 1000 and sum(c["orders"] for c in want_sales.values()) > 1000
    assert got_sales == want_sales
    assert got_funnel == want_funnel
