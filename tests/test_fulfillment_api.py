"""Issue 6: the multi-seller journey to delivery, roll-up at every step, and who may move what."""

from __future__ import annotations

import json
import time

import pytest

from ingest_api.routes.shipments import carrier_signature
from tests.helpers import eventually
from tests.payments import pay
from tests.test_cart_api import add, listed_product
from tests.test_checkout_api import order_of

pytestmark = pytest.mark.integration


def paid_two_seller_order(client, stack):
    s1, p1 = listed_product(client, 5, price_cents=1200)
    s2, p2 = listed_product(client, 5, price_cents=800)
    buyer = client("BUYER")
    add(buyer, p1, 1)
    add(buyer, p2, 2)
    answer = buyer.post("/api/cart/checkout").json()
    pay(stack, answer["clientSecret"])
    order = order_of(buyer, answer["orderId"], status="CONFIRMED")
    ships = {s["sellerId"]: s["shipmentId"] for s in order["shipments"]}
    return buyer, s1, s2, answer["orderId"], ships


def delivered_by_carrier(client, stack, shipment_id, timestamp=None, secret=None):
    body = json.dumps({"shipmentId": shipment_id, "event": "delivered"}).encode()
    ts = str(timestamp or int(time.time()))
    sig = carrier_signature(secret or stack.settings.carrier_webhook_secret, ts, body)
    return client().post(f"/api/shipments/{shipment_id}/delivered", content=body,
                         headers={"X-Carrier-Timestamp": ts, "X-Carrier-Signature": sig})


def shipment_listed(seller, shipment_id):
    return eventually(lambda: [s for s in seller.get("/api/shipments").json()["items"]
                               if s["shipmentId"] == shipment_id], what="seller sees its shipment")[0]


class TestJourney:
    def test_two_sellers_to_delivery(self, client, stack):
        buyer, s1, s2, order_id, ships = paid_two_seller_order(client, stack)
        a, b = ships[s1.user_id], ships[s2.user_id]
        assert shipment_listed(s1, a)["status"] == "PENDING"
        shipment_listed(s2, b)

        r = s1.put(f"/api/shipments/{a}/process")
        assert r.status_code == 200 and r.json()["status"] == "PROCESSING", r.text
        assert r.json()["orderStatus"] == "PROCESSING"
        order_of(buyer, order_id, status="PROCESSING")

        r = s1.put(f"/api/shipments/{a}/ship", json={"trackingNumber": "1Z999AA10123456784", "carrier": "UPS"})
        assert r.status_code == 200 and r.json()["trackingNumber"] == "1Z999AA10123456784"
        assert r.json()["orderStatus"] == "PROCESSING"  # one shipped, one still pending
        assert s2.put(f"/api/shipments/{b}/process").status_code == 200
        r = s2.put(f"/api/shipments/{b}/ship", json={"trackingNumber": "TRK-2", "carrier": "DHL"})
        assert r.json()["orderStatus"] == "SHIPPED"
        order_of(buyer, order_id, status="SHIPPED")

        r = delivered_by_carrier(client, stack, a)
        assert r.status_code == 200 and r.json()["status"] == "DELIVERED" and r.json()["orderStatus"] == "SHIPPED"
        order = eventually(lambda: (o := order_of(buyer, order_id, status="SHIPPED"))
                           and [s["deliveredAt"] is not None for s in o["shipments"]].count(True) == 1 and o,
                           what="one shipment delivered, the order still SHIPPED")
        r = client("ADMIN").post(f"/api/shipments/{b}/delivered")
        assert r.status_code == 200 and r.json()["orderStatus"] == "DELIVERED"
        order = order_of(buyer, order_id, status="DELIVERED")
        assert all(s["shippedAt"] and s["deliveredAt"] for s in order["shipments"])

    def test_illegal_moves_are_409_and_repeats_are_idempotent(self, client, stack):
        buyer, s1, s2, order_id, ships = paid_two_seller_order(client, stack)
        a = ships[s1.user_id]
        shipment_listed(s1, a)
        r = s1.put(f"/api/shipments/{a}/ship", json={"trackingNumber": "T", "carrier": "UPS"})
        assert r.status_code == 409 and r.json()["error"] == "invalid_transition"
        assert s1.put(f"/api/shipments/{a}/process").status_code == 200
        assert s1.put(f"/api/shipments/{a}/process").status_code == 200  # the same move again
        assert s1.put(f"/api/shipments/{a}/ship", json={"trackingNumber": "T", "carrier": "UPS"}).status_code == 200
        assert s1.put(f"/api/shipments/{a}/ship", json={"trackingNumber": "T", "carrier": "UPS"}).status_code == 200
        r = s1.put(f"/api/shipments/{a}/ship", json={"trackingNumber": "OTHER", "carrier": "UPS"})
        assert r.status_code == 409
        assert s1.put(f"/api/shipments/{a}/process").status_code == 409


class TestAccess:
    def test_sellers_buyers_and_forged_carriers(self, client, stack):
        buyer, s1, s2, order_id, ships = paid_two_seller_order(client, stack)
        a = ships[s1.user_id]
        shipment_listed(s1, a)
        assert s2.put(f"/api/shipments/{a}/process").status_code == 404
        assert a not in [s["shipmentId"] for s in s2.get("/api/shipments").json()["items"]]
        assert buyer.put(f"/api/shipments/{a}/process").status_code == 403
        assert buyer.get("/api/shipments").status_code == 403
        assert buyer.post(f"/api/shipments/{a}/delivered").status_code == 403
        s1.put(f"/api/shipments/{a}/process")
        s1.put(f"/api/shipments/{a}/ship", json={"trackingNumber": "T", "carrier": "UPS"})
        assert delivered_by_carrier(client, stack, a, secret="wrong").status_code == 401
        assert delivered_by_carrier(client, stack, a, timestamp=int(time.time()) - 3600).status_code == 401
        assert client().post(f"/api/shipments/{a}/delivered").status_code == 401
        # a genuine delivery signature for shipment b, replayed on a's path: refused
        b = ships[s2.user_id]
        body = json.dumps({"shipmentId": b, "event": "delivered"}).encode()
        ts = str(int(time.time()))
        replayed = client().post(f"/api/shipments/{a}/delivered", content=body, headers={
            "X-Carrier-Timestamp": ts, "X-Carrier-Signature": carrier_signature(stack.settings.carrier_webhook_secret,
                                                                                ts, body)})
        assert replayed.status_code == 401, replayed.text
        for junk in (b"not json", b"[1, 2]", b'{"event": "delivered"}'):  # signed, but naming no shipment
            sig = carrier_signature(stack.settings.carrier_webhook_secret, ts, junk)
            r = client().post(f"/api/shipments/{a}/delivered", content=junk,
                              headers={"X-Carrier-Timestamp": ts, "X-Carrier-Signature": sig})
            assert r.status_code == 401, (junk, r.text)
        # the refused calls never reached the broker: the shipment is still SHIPPED, not DELIVERED
        def shipped():
            order = buyer.get(f"/api/orders/{order_id}").json()
            return [(s["status"], s["deliveredAt"]) for s in order["shipments"] if s["shipmentId"] == a]
        assert eventually(lambda: shipped()[0][0] == "SHIPPED" and shipped()) == [("SHIPPED", None)]

    def test_unpaid_shipments_are_hidden_and_frozen(self, client):
        seller, pid = listed_product(client, 5)
        buyer = client("BUYER")
        add(buyer, pid, 1)
        order_id = buyer.post("/api/cart/checkout").json()["orderId"]
        order = order_of(buyer, order_id)
        shipment = order["shipments"][0]["shipmentId"]
        assert seller.put(f"/api/shipments/{shipment}/process").status_code == 404
        admin = client("ADMIN")
        r = admin.put(f"/api/shipments/{shipment}/process")
        assert r.status_code == 409
        # Admins see it, unpaid and still PENDING; its seller's list does not hold it.
        listed = eventually(lambda: admin.get("/api/shipments", params={"orderId": order_id}).json()["items"],
                            what="the unpaid shipment in the admin's list")
        assert [(s["shipmentId"], s["status"]) for s in listed] == [(shipment, "PENDING")]
        assert seller.get("/api/shipments", params={"orderId": order_id}).json()["items"] == []


class TestAdminViews:
    def test_admin_filters_orders_and_shipments(self, client, stack):
        buyer, s1, s2, order_id, ships = paid_two_seller_order(client, stack)
        admin = client("ADMIN")
        mine = eventually(lambda: admin.get("/api/orders", params={"buyerId": buyer.user_id}).json()["items"])
        assert [o["orderId"] for o in mine] == [order_id]
        by_seller = eventually(lambda: admin.get("/api/shipments", params={"sellerId": s1.user_id}).json()["items"])
        assert [s["shipmentId"] for s in by_seller] == [ships[s1.user_id]]
        by_order = admin.get("/api/shipments", params={"orderId": order_id}).json()["items"]
        assert sorted(s["shipmentId"] for s in by_order) == sorted(ships.values())
        products = admin.get(f"/api/catalog/products/by-seller/{s2.user_id}").json()["items"]
        assert len(products) == 1
        assert eventually(lambda: admin.get(f"/api/inventory/stock/{products[0]['productId']}")
                          .json()["soldQuantity"] == 2)
        # a buyer's buyerId filter cannot widen its view
        assert buyer.get("/api/orders", params={"buyerId": "someone-else"}).json()["items"] == \
            buyer.get("/api/orders").json()["items"]

    def test_orders_and_shipments_page_through_with_cursors(self, client, stack):
        _, s1, s2, order_id, ships = paid_two_seller_order(client, stack)
        _, _, _, other_order_id, _ = paid_two_seller_order(client, stack)
        admin = client("ADMIN")

        def walk(path: str, params: dict, key: str) -> list[str]:
            seen, cursor = [], None
            for _ in range(10_000):
                r = admin.get(path, params={**params, "limit": 1, **({"cursor": cursor} if cursor else {})})
                assert r.status_code == 200, r.text
                page = r.json()
                assert len(page["items"]) <= 1
                seen += [item[key] for item in page["items"]]
                cursor = page["nextCursor"]
                if cursor is None:
                    return seen
            raise AssertionError("the cursor never ended")
        shipments = eventually(lambda: (s := walk("/api/shipments", {"orderId": order_id}, "shipmentId"))
                               and len(s) == 2 and s)
        assert sorted(shipments) == sorted(ships.values())
        orders = eventually(lambda: (o := walk("/api/orders", {}, "orderId")) and other_order_id in o and o)
        assert order_id in orders and len(orders) == len(set(orders))
