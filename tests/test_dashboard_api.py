"""The dashboard's reads: who may see which figures, and the window rows audited against the raw events.

The audit recomputes every minute's figures in plain Python from the events on the topics (read with
`read_topic`, folded by hand, not by `state/analytics.py`), and compares them with what the API serves
from the projection's window tables.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import eventually, read_topic
from tests.payments import pay
from tests.test_cart_api import add, listed_product
from tests.test_checkout_api import checked_out, order_of

pytestmark = pytest.mark.integration


class TestAccess:
    def test_anonymous_is_401_and_buyers_are_403(self, client):
        for path in ("/api/analytics/windows", "/api/analytics/windows/funnel", "/api/analytics/sellers"):
            assert client().get(path).status_code == 401, path
            assert client("BUYER").get(path).status_code == 403, path

    def test_a_seller_sees_only_its_own(self, client):
        seller = client("SELLER")
        assert seller.get("/api/analytics/windows", params={"sellerId": "someone-else"}).status_code == 403
        mine = seller.get("/api/analytics/windows", params={"sellerId": seller.user_id})
        assert mine.status_code == 200 and mine.json()["sellerId"] == seller.user_id
        assert seller.get("/api/analytics/windows").json()["sellerId"] == seller.user_id
        assert seller.get("/api/analytics/windows/funnel").status_code == 403  # platform-wide: admins only
        assert seller.get("/api/analytics/sellers").status_code == 403

    def test_an_admin_names_any_seller_or_sees_all(self, client):
        other, pid = listed_product(client, 3)
        admin = client("ADMIN")
        one = admin.get("/api/analytics/windows", params={"sellerId": other.user_id})
        assert one.status_code == 200 and [p["productId"] for p in one.json()["products"]] == [pid]
        assert admin.get("/api/analytics/windows").json()["sellerId"] is None
        assert other.user_id in admin.get("/api/analytics/sellers").json()["sellers"]
        assert admin.get("/api/analytics/windows/funnel").status_code == 200

    def test_the_page_is_served_with_a_strict_policy(self, client):
        page = client().get("/dashboard")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert client().get("/dashboard/dashboard.js").status_code == 200
        assert client().get("/dashboard/secrets.txt").status_code == 404


def _minute(occurred_at: str) -> str:
    at = datetime.fromisoformat(occurred_at)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(second=0, microsecond=0).isoformat()


def _events(stack, topic: str) -> list[dict]:
    """Each event once, in log order, as the projection applies them (by aggregate version)."""
    seen, out = set(), []
    for e in read_topic(stack.settings.brokers, topic):
        ident = (e["key"], e["version"])
        if ident not in seen:
            seen.add(ident)
            out.append(e)
    return out


def expected_sales(stack, seller_id: str) -> dict:
    """(minute, product id or "" for the seller's total) -> figures, from the raw events alone."""
    figures: dict = defaultdict(Counter)
    placed = {e["key"]: e["payload"] for e in _events(stack, "order.events") if e["type"] == "OrderPlaced"}
    for e in _events(stack, "order.events"):
        if e["type"] == "OrderConfirmed":
            items = [i for i in placed[e["key"]]["items"] if i["sellerId"] == seller_id]
            for product_id in {i["productId"] for i in items} | ({""} if items else set()):
                mine = [i for i in items if product_id in ("", i["productId"])]
                f = figures[(_minute(e["occurredAt"]), product_id)]
                f["unitsSold"] += sum(i["quantity"] for i in mine)
                f["grossCents"] += sum(i["quantity"] * i["priceCents"] for i in mine)
                f["orders"] += 1
        elif e["type"] == "OrderShortfall" and e["payload"]["sellerId"] == seller_id:
            for product_id in (e["payload"]["productId"], ""):
                f = figures[(_minute(e["occurredAt"]), product_id)]
                f["unitsSold"] -= e["payload"]["quantity"]
                f["grossCents"] -= e["payload"]["amountCents"]
    inventory = _events(stack, "inventory.events")
    products = {e["key"] for e in inventory if e["type"] == "StockCreated" and e["payload"]["sellerId"] == seller_id}
    reserved: set = set()
    for e in inventory:
        if e["key"] not in products:
            continue
        name = {"ReservationExpired": "reservationsExpired", "ReservationFulfilled": "reservationsConverted"}.get(
            e["type"])
        rid = e["payload"].get("reservationId")
        if e["type"] == "StockReserved":
            if rid not in reserved:  # raising a held reservation is not a new one
                name = "reservationsMade"
            reserved.add(rid)
        elif e["type"] in ("ReservationExpired", "ReservationFulfilled", "ReservationReleased"):
            reserved.discard(rid)  # no longer held
        if name:
            for product_id in (e["key"], ""):
                figures[(_minute(e["occurredAt"]), product_id)][name] += 1
    return {k: {n: v for n, v in f.items() if v} for k, f in figures.items() if any(f.values())}


def served_sales(seller, since: datetime) -> dict:
    body = seller.get("/api/analytics/windows", params={"since": since.isoformat()}).json()
    out = {}
    for m in body["minutes"] + body["productMinutes"]:
        counts = {k: v for k, v in m.items() if k not in ("windowStart", "productId") and v}
        if counts:
            out[(datetime.fromisoformat(m["windowStart"]).astimezone(UTC).isoformat(), m.get("productId", ""))] = counts
    return out


def test_window_rows_equal_figures_computed_from_the_events(stack, client):
    since = datetime.now(UTC) - timedelta(minutes=5)
    seller, pid, buyer, answer = checked_out(client, 10, 3, price_cents=1250)
    pay(stack, answer["clientSecret"])
    first = order_of(buyer, answer["orderId"], status="CONFIRMED")
    # a second product of the same seller, held in a cart but not bought; and a second order of the first
    r = seller.post("/api/catalog/products", json={"sku": "HOT-2", "name": "Second", "priceCents": 700,
                                                   "currency": "USD", "status": "ACTIVE"})
    other_pid = r.json()["productId"]
    eventually(lambda: seller.get(f"/api/inventory/stock/{other_pid}").status_code == 200, what="stock created")
    assert seller.put("/api/inventory/stock", json={"productId": other_pid, "totalQuantity": 4}).status_code == 200
    second = client("BUYER")
    assert add(second, other_pid, 2).status_code == 201
    assert add(second, pid, 1).status_code == 201
    assert add(second, pid, 2).status_code == 201  # raises the held reservation: not a new one
    answer2 = second.post("/api/cart/checkout").json()
    pay(stack, answer2["clientSecret"])
    again = order_of(second, answer2["orderId"], status="CONFIRMED")

    def matches():
        expected, served = expected_sales(stack, seller.user_id), served_sales(seller, since)
        assert served == expected, (served, expected)
        return expected
    figures = eventually(matches, timeout=20, interval=0.5, what="window rows equal the events' figures")
    totals = Counter()
    for (minute, product_id), f in figures.items():
        if product_id == "":
            totals.update(f)
    # the run reached what the audit covers: two orders, three reservations made and sold
    assert totals["orders"] == 2 and totals["grossCents"] == first["totalCents"] + again["totalCents"]
    assert totals["reservationsMade"] == 3 and totals["reservationsConverted"] == 3


def test_the_cart_funnel_equals_the_cart_events(stack, client):
    seller, pid = listed_product(client, 5)
    buyer = client("BUYER")
    add(buyer, pid, 1)
    buyer.post("/api/cart/checkout")
    admin = client("ADMIN")
    names = {"CartCreated": "cartsStarted", "CartItemConfirmed": "itemsAdded", "CartCheckedOut": "checkouts",
             "CartCompleted": "paid", "CartAbandoned": "abandoned"}
    since = datetime.now(UTC) - timedelta(hours=1)

    def matches():
        expected = Counter()
        for e in _events(stack, "cart.events"):
            if e["type"] in names and _minute(e["occurredAt"]) >= since.replace(second=0, microsecond=0).isoformat():
                expected[names[e["type"]]] += 1
        served = Counter()
        for m in admin.get("/api/analytics/windows/funnel", params={"since": since.isoformat()}).json()["minutes"]:
            served.update({k: v for k, v in m.items() if k != "windowStart"})
        assert +served == +expected and expected["checkouts"] >= 1, (served, expected)
        return True
    eventually(matches, timeout=20, interval=0.5, what="the funnel equals the cart events")
