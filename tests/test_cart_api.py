"""Issue 4: carts and soft reservations through the real broker, dataflows, Postgres and Redis."""

from __future__ import annotations

import concurrent.futures
import random

import pytest

from tests.helpers import eventually

pytestmark = pytest.mark.integration


def listed_product(client, units: int, price_cents: int = 1000, currency: str = "USD"):
    """A seller with one ACTIVE product holding `units` units; returns (seller, product_id)."""
    seller = client("SELLER")
    r = seller.post("/api/catalog/products", json={"sku": "HOT-1", "name": "Flash item", "priceCents": price_cents,
                                                    "currency": currency, "status": "ACTIVE"})
    assert r.status_code == 201, r.text
    pid = r.json()["productId"]
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").status_code == 200, what="stock created")
    r = seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": units})
    assert r.status_code == 200, r.text
    eventually(lambda: client().get(f"/api/inventory/availability/{pid}").status_code == 200, what="listed")
    return seller, pid


def add(buyer, pid, quantity):
    return buyer.post("/api/cart/items", json={"productId": pid, "quantity": quantity})


def stock(seller, pid, **expected):
    def matches():
        s = seller.get(f"/api/inventory/stock/{pid}").json()
        return all(s[k] == v for k, v in expected.items()) and s
    return eventually(matches, what=f"stock {expected}")


class TestSpecExample:
    def test_five_units_three_buyers(self, client):
        seller, pid = listed_product(client, 5)
        a, b, c = client("BUYER"), client("BUYER"), client("BUYER")
        r = add(a, pid, 3)
        assert r.status_code == 201, r.text
        cart = r.json()
        assert [(i["productId"], i["quantity"]) for i in cart["items"]] == [(pid, 3)]
        assert cart["totalCents"] == 3000 and cart["status"] == "ACTIVE" and cart["buyerId"] == a.user_id
        stock(seller, pid, availableQuantity=2, reservedQuantity=3)

        r = add(b, pid, 3)
        assert r.status_code == 409
        assert r.json()["error"] == "insufficient_stock" and r.json()["available"] == 2

        assert add(c, pid, 2).status_code == 201
        stock(seller, pid, availableQuantity=0, reservedQuantity=5, totalQuantity=5)
        # The refused add left nothing in b's cart: once b's next add shows, it is the only item there.
        _, other = listed_product(client, 1)
        assert add(b, other, 1).status_code == 201
        assert eventually(lambda: [(i["productId"], i["quantity"]) for i in b.get("/api/cart").json()["items"]]
                          == [(other, 1)], what="b's cart with only its later item")


class TestCartItems:
    def test_adding_again_raises_quantity_and_cache_mirrors_cart(self, client, stack):
        import redis
        seller, pid = listed_product(client, 10)
        buyer = client("BUYER")
        add(buyer, pid, 2)
        cart = add(buyer, pid, 3).json()
        assert [i["quantity"] for i in cart["items"]] == [5]
        r = redis.Redis.from_url(stack.env["REDIS_URL"])
        key = f"cart:{buyer.user_id}"
        eventually(lambda: r.exists(key) and 0 < r.pttl(key) <= stack.settings.buyit_cart_ttl_s * 1000,
                   what="cart cached with its TTL")
        assert eventually(lambda: [i["quantity"] for i in buyer.get("/api/cart").json()["items"]] == [5])

    def test_update_beyond_stock_keeps_old_quantity(self, client):
        seller, pid = listed_product(client, 4)
        buyer = client("BUYER")
        item = add(buyer, pid, 2).json()["items"][0]
        r = buyer.put(f"/api/cart/items/{item['itemId']}", json={"quantity": 9})
        assert r.status_code == 409 and r.json()["available"] == 4
        stock(seller, pid, reservedQuantity=2)
        assert eventually(lambda: [i["quantity"] for i in buyer.get("/api/cart").json()["items"]] == [2])
        r = buyer.put(f"/api/cart/items/{item['itemId']}", json={"quantity": 4})
        assert r.status_code == 200 and r.json()["items"][0]["quantity"] == 4
        stock(seller, pid, reservedQuantity=4, availableQuantity=0)
        r = buyer.put(f"/api/cart/items/{item['itemId']}", json={"quantity": 1})
        assert r.status_code == 200
        stock(seller, pid, reservedQuantity=1, availableQuantity=3)

    def test_remove_releases_stock(self, client):
        seller, pid = listed_product(client, 4)
        buyer = client("BUYER")
        item = add(buyer, pid, 3).json()["items"][0]
        r = buyer.delete(f"/api/cart/items/{item['itemId']}")
        assert r.status_code == 200 and r.json()["items"] == []
        stock(seller, pid, reservedQuantity=0, availableQuantity=4)

    def test_another_buyers_item_is_404(self, client):
        seller, pid = listed_product(client, 4)
        owner, other = client("BUYER"), client("BUYER")
        item = add(owner, pid, 1).json()["items"][0]
        assert other.delete(f"/api/cart/items/{item['itemId']}").status_code == 404
        assert other.put(f"/api/cart/items/{item['itemId']}", json={"quantity": 2}).status_code == 404
        stock(seller, pid, reservedQuantity=1)

    def test_mixed_currencies_are_refused(self, client):
        _, usd = listed_product(client, 4, currency="USD")
        _, eur = listed_product(client, 4, currency="EUR")
        buyer = client("BUYER")
        assert add(buyer, usd, 1).status_code == 201
        r = add(buyer, eur, 1)
        assert r.status_code == 409 and r.json()["error"] == "currency_mismatch"

    def test_idempotency_key_reserves_once(self, client):
        seller, pid = listed_product(client, 10)
        buyer = client("BUYER")
        headers = {"Idempotency-Key": "add-once"}
        first = buyer.post("/api/cart/items", json={"productId": pid, "quantity": 2}, headers=headers)
        again = buyer.post("/api/cart/items", json={"productId": pid, "quantity": 2}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json()["items"][0]["quantity"] == 2
        stock(seller, pid, reservedQuantity=2)
        other = buyer.post("/api/cart/items", json={"productId": pid, "quantity": 5}, headers=headers)
        assert other.status_code == 422 and other.json()["error"] == "idempotency_conflict"

    def test_only_buyers_have_carts(self, client):
        _, pid = listed_product(client, 4)
        assert add(client("SELLER"), pid, 1).status_code == 403
        assert client().get("/api/cart").status_code == 401

    def test_unknown_or_inactive_products_are_404(self, client):
        buyer = client("BUYER")
        assert add(buyer, "no-such-product", 1).status_code == 404
        seller, pid = listed_product(client, 4)
        r = seller.put(f"/api/catalog/products/{pid}", json={"status": "INACTIVE"})
        assert r.status_code == 200 and r.json()["status"] == "INACTIVE", r.text
        eventually(lambda: seller.get(f"/api/catalog/products/{pid}").json().get("status") == "INACTIVE",
                   what="the product shown inactive")
        r = add(buyer, pid, 1)
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
        stock(seller, pid, availableQuantity=4, reservedQuantity=0)


class TestFlashSale:
    def test_two_hundred_buyers_fifty_units(self, client):
        seller, pid = listed_product(client, 50)
        buyers = [client("BUYER") for _ in range(200)]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(lambda b: add(b, pid, 1).status_code, buyers))
        assert codes.count(201) == 50 and codes.count(409) == 150, sorted(set(codes))
        stock(seller, pid, reservedQuantity=50, availableQuantity=0, totalQuantity=50)

    def test_mixed_quantities_never_reserve_more_than_stock(self, client):
        seller, pid = listed_product(client, 50)
        rng = random.Random(7)
        wants = [(client("BUYER"), rng.randint(1, 3)) for _ in range(80)]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda bq: (bq[1], add(bq[0], pid, bq[1])), wants))
        granted = sum(q for q, r in answers if r.status_code == 201)
        assert all(r.status_code in (201, 409) for _, r in answers)
        assert granted <= 50
        final = stock(seller, pid, reservedQuantity=granted)
        assert final["availableQuantity"] == 50 - granted
        # every refusal reported what was left at that moment, never more than was there
        assert all(r.json()["available"] < q for q, r in answers if r.status_code == 409)
