"""The analytics read side: the Parquet lake sink, DuckDB queries over it, and the admin routes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from buyit.envelope import Envelope, to_wire
from sinks.analytics import sales_per_seller_per_minute, stock_alerts
from sinks.lake import LakeSink
from state.common import type_name
from state.inventory import LowStockAlert
from state.order import OrderConfirmed, OrderItem, OrderPlaced
from tests.helpers import eventually
from tests.payments import pay
from tests.test_cart_api import add, listed_product

T0 = datetime(2025, 3, 1, 23, 59, 30, tzinfo=UTC)


def envelope(key: str, event, at: datetime, version: int) -> Envelope:
    return Envelope(event_id=str(uuid.uuid4()), type=type_name(event), key=key, occurred_at=at.isoformat(),
                    correlation_id=str(uuid.uuid4()), causation_id=None, version=version, payload=to_wire(event))


def item(order_id: str, seller: str, quantity: int, price: int) -> OrderItem:
    return OrderItem(item_id=str(uuid.uuid4()), product_id=f"p-{seller}", sku="SKU", seller_id=seller,
                     quantity=quantity, price_cents=price, currency="USD", reservation_id=str(uuid.uuid4()))


def order(order_id: str, items: list[OrderItem], confirmed: datetime | None) -> list[Envelope]:
    placed = OrderPlaced(order_id=order_id, buyer_id="b", cart_id="c", payment_id="pay", items=tuple(items),
                         shipments=(), total_cents=sum(i.quantity * i.price_cents for i in items), currency="USD",
                         fee_bps=1000, expires_at=T0, created_at=T0 - timedelta(minutes=1))
    out = [envelope(order_id, placed, T0 - timedelta(minutes=1), 1)]
    if confirmed:
        out.append(envelope(order_id, OrderConfirmed(order_id=order_id, payment_id="pay", confirmed_at=confirmed),
                            confirmed, 4))
    return out


def write(lake, topic: str, envelopes: list[Envelope]) -> None:
    """One sink partition's life: a batch in, then close (which flushes)."""
    part = LakeSink(lake).build_part("write_lake", "lake-0", None)
    part.write_batch([(topic, e) for e in envelopes])
    part.close()


class TestLake:
    def test_missing_or_empty_lake_is_empty(self, tmp_path):
        assert sales_per_seller_per_minute(tmp_path / "nowhere") == []
        (tmp_path / "lake" / "events").mkdir(parents=True)
        assert stock_alerts(tmp_path / "lake") == [] and sales_per_seller_per_minute(tmp_path / "lake") == []

    def test_sales_per_seller_per_minute_counts_a_duplicate_once(self, tmp_path):
        lake = tmp_path / "lake"
        first = order("o1", [item("o1", "s1", 2, 3333), item("o1", "s2", 1, 1001)], T0)
        second = order("o2", [item("o2", "s1", 1, 500)], T0 + timedelta(seconds=45))  # next minute, next day
        unpaid = order("o3", [item("o3", "s1", 9, 100)], None)
        write(lake, "order.events", first + second + unpaid)
        write(lake, "order.events", [first[1], second[0]])  # redelivered (at least once): same event ids
        assert len(list(lake.glob("events/topic=order.events/date=*/part-lake-0-*.parquet"))) == 3  # per (topic, date) per flush
        assert {p.name for p in (lake / "events" / "topic=order.events").iterdir()} == {
            "date=2025-03-01", "date=2025-03-02"}
        rows = sales_per_seller_per_minute(lake)
        assert rows == [
            {"minute": "2025-03-01T23:59:00+00:00", "sellerId": "s1", "currency": "USD", "orders": 1, "units": 2,
             "grossCents": 6666},
            {"minute": "2025-03-01T23:59:00+00:00", "sellerId": "s2", "currency": "USD", "orders": 1, "units": 1,
             "grossCents": 1001},
            {"minute": "2025-03-02T00:00:00+00:00", "sellerId": "s1", "currency": "USD", "orders": 1, "units": 1,
             "grossCents": 500}]
        later = sales_per_seller_per_minute(lake, since=T0 + timedelta(seconds=1))
        assert [(r["sellerId"], r["units"]) for r in later] == [("s1", 1)]

    def test_stock_alerts_of_one_seller(self, tmp_path):
        lake = tmp_path / "lake"
        alerts = [envelope(f"p{n}", LowStockAlert(product_id=f"p{n}", seller_id=seller, available=n, threshold=5),
                           T0 + timedelta(seconds=n), 2) for n, seller in ((1, "s1"), (2, "s2"), (3, "s1"))]
        write(lake, "inventory.events", alerts + alerts[:1])
        assert [a["productId"] for a in stock_alerts(lake)] == ["p3", "p2", "p1"]
        mine = stock_alerts(lake, seller_id="s1")
        assert [(a["productId"], a["available"], a["threshold"]) for a in mine] == [("p3", 3, 5), ("p1", 1, 5)]
        assert mine[0]["at"] == "2025-03-01T23:59:33+00:00" and mine[0]["eventId"] == alerts[2].event_id


@pytest.mark.integration
class TestAnalyticsApi:
    def test_paid_two_item_order_shows_up_in_sales(self, client, stack):
        s1, p1 = listed_product(client, 10, price_cents=3333)
        s2, p2 = listed_product(client, 10, price_cents=1001)
        buyer = client("BUYER")
        assert add(buyer, p1, 2).status_code == 201 and add(buyer, p2, 1).status_code == 201
        answer = buyer.post("/api/cart/checkout").json()
        eventually(lambda: buyer.get(f"/api/orders/{answer['orderId']}").status_code == 200, what="order placed")
        pay(stack, answer["clientSecret"])
        admin = client("ADMIN")

        def sales():
            r = admin.get("/api/admin/analytics/sales-per-minute")
            assert r.status_code == 200, r.text
            mine = {}
            for row in r.json()["items"]:
                if row["sellerId"] in (s1.user_id, s2.user_id):
                    held = mine.setdefault(row["sellerId"], [0, 0, 0])
                    for i, k in enumerate(("orders", "units", "grossCents")):
                        held[i] += row[k]
            return len(mine) == 2 and mine
        mine = eventually(sales, timeout=30, what="the paid order in the lake")
        assert mine == {s1.user_id: [1, 2, 6666], s2.user_id: [1, 1, 1001]}
        assert client("BUYER").get("/api/admin/analytics/sales-per-minute").status_code == 403
        assert admin.get("/api/admin/analytics/sales-per-minute", params={"since": "2999-01-01T00:00:00Z"}
                         ).json() == {"items": []}

    def test_stock_alerts_for_admins_and_the_seller_itself(self, client):
        seller, pid = listed_product(client, 10)
        assert add(client("BUYER"), pid, 7).status_code == 201  # 3 left: below the default threshold of 5
        admin = client("ADMIN")
        alerts = eventually(lambda: admin.get("/api/admin/analytics/stock-alerts",
                                              params={"sellerId": seller.user_id}).json()["items"], timeout=30)
        assert alerts[0]["productId"] == pid and alerts[0]["available"] == 3
        assert seller.get("/api/admin/analytics/stock-alerts").json()["items"] == alerts
        assert seller.get("/api/admin/analytics/stock-alerts", params={"sellerId": "someone-else"}).status_code == 403
        assert client("BUYER").get("/api/admin/analytics/stock-alerts").status_code == 403
