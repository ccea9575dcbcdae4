"""Issue 5: checkout, Stripe payments through localstripe, the ledger, failures and expiry."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import eventually, read_topic
from tests.payments import intent_of, intent_status, pay, signed_event, stripe_client
from tests.test_cart_api import add, listed_product, stock

pytestmark = pytest.mark.integration


def checkout(buyer, **headers):
    return buyer.post("/api/cart/checkout", headers=headers)


def checked_out(client, units: int, quantity: int, **product):
    """A seller's product holding `units` units, and a buyer who put `quantity` of it in a cart and checked
    out: (seller, product id, buyer, the checkout's answer)."""
    seller, pid = listed_product(client, units, **product)
    buyer = client("BUYER")
    add(buyer, pid, quantity)
    return seller, pid, buyer, checkout(buyer).json()


def order_of(buyer, order_id, **expected):
    def matches():
        r = buyer.get(f"/api/orders/{order_id}")
        return r.status_code == 200 and all(r.json()[k] == v for k, v in expected.items()) and r.json()
    return eventually(matches, what=f"order {expected}")


def post_event(client, stack, kind, answer, intent_id, amount, **kw):
    body, sig = signed_event(stack.settings.stripe_webhook_secret, kind, intent_id, answer["paymentId"],
                             answer["orderId"], amount, **kw)
    return client().post("/api/payments/webhooks/stripe", content=body,
                         headers={"Stripe-Signature": sig, "Content-Type": "application/json"})


class TestCheckout:
    def test_spec_example_finished(self, client):
        seller, pid = listed_product(client, 5)
        a, b, c = client("BUYER"), client("BUYER"), client("BUYER")
        assert add(a, pid, 3).status_code == 201
        assert add(b, pid, 3).status_code == 409
        r = checkout(a)
        assert r.status_code == 201, r.text
        answer = r.json()
        assert set(answer) == {"orderId", "paymentId", "clientSecret", "checkoutUrl"}
        assert answer["clientSecret"]
        stock(seller, pid, allocatedQuantity=3, availableQuantity=2, reservedQuantity=0)
        assert add(c, pid, 2).status_code == 201
        stock(seller, pid, allocatedQuantity=3, reservedQuantity=2, availableQuantity=0)
        order = order_of(a, answer["orderId"], status="PENDING")
        assert order["provisional"] is True and order["totalCents"] == 3000
        assert [s["status"] for s in order["shipments"]] == ["PENDING"]
        assert eventually(lambda: a.get("/api/cart").json()["status"] == "CHECKOUT")

    def test_empty_cart_is_409(self, client):
        r = checkout(client("BUYER"))
        assert r.status_code == 409 and r.json()["error"] == "empty_cart"

    def test_idempotency_key_returns_the_same_order(self, client):
        seller, pid = listed_product(client, 5)
        buyer = client("BUYER")
        add(buyer, pid, 1)
        first = checkout(buyer, **{"Idempotency-Key": "co-1"})
        again = checkout(buyer, **{"Idempotency-Key": "co-1"})
        assert first.status_code == 201 and again.status_code == 201, again.text
        assert first.json() == again.json()
        stock(seller, pid, allocatedQuantity=1)

    def test_two_sellers_odd_cents_pay_and_ledger(self, client, stack):
        s1, p1 = listed_product(client, 10, price_cents=3333)
        s2, p2 = listed_product(client, 10, price_cents=1001)
        buyer = client("BUYER")
        add(buyer, p1, 2)
        add(buyer, p2, 1)
        answer = checkout(buyer).json()
        order = order_of(buyer, answer["orderId"])
        assert order["totalCents"] == 7667 and len(order["shipments"]) == 2
        pay(stack, answer["clientSecret"])
        order = order_of(buyer, answer["orderId"], status="CONFIRMED", provisional=False)
        assert order["confirmedAt"]
        stock(s1, p1, soldQuantity=2, totalQuantity=8, allocatedQuantity=0, availableQuantity=8)
        stock(s2, p2, soldQuantity=1, totalQuantity=9)
        admin = client("ADMIN")
        txs = eventually(lambda: admin.get("/api/ledger/transactions",
                                           params={"orderId": answer["orderId"]}).json()["items"])
        assert len(txs) == 1
        entries = [(e["accountId"], e["direction"], e["amountCents"]) for e in txs[0]["entries"]]
        assert entries == [
            ("BUYER_EXTERNAL", "DEBIT", 7667), ("STRIPE_CLEARING", "CREDIT", 7667),
            ("STRIPE_CLEARING", "DEBIT", 6666), (f"SELLER_PAYABLE_{s1.user_id}", "CREDIT", 5999),
            ("BUYIT_REVENUE", "CREDIT", 667),
            ("STRIPE_CLEARING", "DEBIT", 1001), (f"SELLER_PAYABLE_{s2.user_id}", "CREDIT", 901),
            ("BUYIT_REVENUE", "CREDIT", 100)]
        for seller, balance in ((s1, 5999), (s2, 901)):
            seller.post("/api/users/me")
            account = f"SELLER_PAYABLE_{seller.user_id}"
            assert eventually(lambda: (r := seller.get(f"/api/ledger/accounts/{account}")).status_code == 200
                              and r.json()["balanceCents"] == balance)
        payment = buyer.get(f"/api/payments/{answer['paymentId']}").json()
        assert payment["state"] == "CAPTURED" and payment["amountCents"] == 7667
        assert eventually(lambda: buyer.get("/api/cart").json()["cartId"] is None)

    def test_duplicate_webhooks_capture_once(self, client, stack):
        seller, pid, buyer, answer = checked_out(client, 5, 2)
        intent_id = intent_of(answer["clientSecret"])
        for _ in range(5):
            r = post_event(client, stack, "payment_intent.succeeded", answer, intent_id, 2000, event_id="evt_same")
            assert r.status_code == 200
        r = post_event(client, stack, "payment_intent.succeeded", answer, intent_id, 2000)
        assert r.status_code == 200
        order_of(buyer, answer["orderId"], status="CONFIRMED")
        stock(seller, pid, soldQuantity=2, totalQuantity=3)
        admin = client("ADMIN")
        eventually(lambda: admin.get("/api/ledger/transactions", params={"orderId": answer["orderId"]}).json()["items"])
        # a late duplicate changes nothing either: once a later event for the same payment is answered (it is
        # decided after the duplicate, in the same partition), the log holds one capture and one sale
        post_event(client, stack, "payment_intent.succeeded", answer, intent_id, 2000, event_id="evt_same")
        barrier = f"evt_barrier_{uuid.uuid4().hex[:8]}"
        assert post_event(client, stack, "payment_intent.succeeded", answer, intent_id, 2000,
                          event_id=barrier).status_code == 200
        command = str(uuid.uuid5(uuid.NAMESPACE_URL, f"stripe-event:{barrier}"))
        eventually(lambda: admin.get(f"/api/commands/{command}").status_code == 200, what="the barrier decided")
        brokers = stack.settings_for_children().brokers
        logged = [e["type"] for topic in ("payment.events", "ledger.events") for e in read_topic(brokers, topic)
                  if e["payload"].get("paymentId") == answer["paymentId"]]
        assert logged.count("PAYMENT_CAPTURED") == 1 and logged.count("LedgerTransactionPosted") == 1, logged
        stock(seller, pid, soldQuantity=2, totalQuantity=3)
        assert len(admin.get("/api/ledger/transactions", params={"orderId": answer["orderId"]}).json()["items"]) == 1

    def test_failed_payment_releases_everything(self, client, stack):
        seller, pid, buyer, answer = checked_out(client, 5, 4)
        stock(seller, pid, allocatedQuantity=4)
        intent_id = intent_of(answer["clientSecret"])
        assert post_event(client, stack, "payment_intent.payment_failed", answer, intent_id, 4000).status_code == 200
        order = order_of(buyer, answer["orderId"], status="CANCELLED")
        assert order["cancelledAt"] and [s["status"] for s in order["shipments"]] == ["CANCELLED"]
        stock(seller, pid, allocatedQuantity=0, reservedQuantity=0, availableQuantity=5)
        assert eventually(lambda: buyer.get(f"/api/payments/{answer['paymentId']}").json()["state"] == "FAILED")
        # a capture that arrives after the cancellation is kept and flagged for refund
        post_event(client, stack, "payment_intent.succeeded", answer, intent_id, 4000)
        assert eventually(lambda: buyer.get(f"/api/payments/{answer['paymentId']}").json()["state"]
                          == "REFUND_PENDING")
        stock(seller, pid, soldQuantity=0, availableQuantity=5)

    def test_a_buyer_cancels_its_pending_order_and_its_intent_can_no_longer_be_paid(self, client, stack):
        seller, pid, buyer, answer = checked_out(client, 5, 2)
        stock(seller, pid, allocatedQuantity=2)
        path = f"/api/orders/{answer['orderId']}/cancel"
        assert client("BUYER").post(path).status_code == 404  # another buyer's order
        assert seller.post(path).status_code == 403
        r = buyer.post(path)
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED", r.text
        assert "clientSecret" not in r.json()
        assert buyer.post(path).json()["status"] == "CANCELLED"  # again: the same answer
        stock(seller, pid, allocatedQuantity=0, reservedQuantity=0, availableQuantity=5)
        intent_id = intent_of(answer["clientSecret"])
        eventually(lambda: intent_status(stack, intent_id) == "canceled",
                   what="the payments worker cancelling the intent")
        with pytest.raises(Exception, match="(?i)cancel|bad request"):
            pay(stack, answer["clientSecret"])  # the client secret no longer takes a card
        assert client("BUYER").post("/api/orders/no-such-order/cancel").status_code == 404

    def test_only_a_pending_order_can_be_cancelled(self, client, stack):
        seller, pid, buyer, answer = checked_out(client, 5, 1)
        pay(stack, answer["clientSecret"])
        order_of(buyer, answer["orderId"], status="CONFIRMED")
        r = buyer.post(f"/api/orders/{answer['orderId']}/cancel")
        assert r.status_code == 409, r.text
        stock(seller, pid, soldQuantity=1)

    def test_an_event_for_a_payment_not_known_yet_is_refused_so_stripe_delivers_it_again(self, client, stack):
        unknown = {"paymentId": "", "orderId": "order-not-known"}
        r = post_event(client, stack, "payment_intent.succeeded", unknown, "pi_not_known_yet", 1000)
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text

    def test_forged_webhooks_are_rejected(self, client, stack):
        seller, pid, buyer, answer = checked_out(client, 5, 1)
        intent_id = intent_of(answer["clientSecret"])
        body, _ = signed_event("whsec_wrong", "payment_intent.succeeded", intent_id, answer["paymentId"],
                               answer["orderId"], 1000)
        _, good_sig = signed_event(stack.settings.stripe_webhook_secret, "payment_intent.succeeded", intent_id,
                                   answer["paymentId"], answer["orderId"], 1000)
        for headers in ({"Stripe-Signature": signed_event("whsec_wrong", "payment_intent.succeeded", intent_id,
                                                          answer["paymentId"], answer["orderId"], 1000)[1]},
                        {"Stripe-Signature": good_sig}, {}):  # wrong key; signature of another body; none
            r = client().post("/api/payments/webhooks/stripe", content=body, headers=headers)
            assert r.status_code == 400 and r.json()["error"] == "invalid_signature"
        stale = post_event(client, stack, "payment_intent.succeeded", answer, intent_id, 1000,
                           timestamp=int(__import__("time").time()) - 3600)
        assert stale.status_code == 400
        payment = eventually(lambda: (r := buyer.get(f"/api/payments/{answer['paymentId']}")).status_code == 200
                             and r.json(), what="the payment in its view")  # opened just after the answer
        assert payment["state"] == "CREATED"
        assert order_of(buyer, answer["orderId"])["status"] == "PENDING"

    def test_only_the_buyer_sees_its_order(self, client):
        _, pid, buyer, answer = checked_out(client, 5, 1)
        order_of(buyer, answer["orderId"])
        assert client("BUYER").get(f"/api/orders/{answer['orderId']}").status_code == 404
        assert client("ADMIN").get(f"/api/orders/{answer['orderId']}").status_code == 200
        mine = buyer.get("/api/orders").json()
        assert [o["orderId"] for o in mine["items"]] == [answer["orderId"]]
        assert buyer.get("/api/orders", params={"status": "PENDING"}).json()["items"]
        assert buyer.get("/api/orders", params={"status": "CONFIRMED"}).json()["items"] == []


def test_a_seller_paid_in_two_currencies_keeps_two_balances_and_its_account_opens_with_its_first_sale(client, stack):
    seller = client("SELLER")  # never calls POST /api/users/me
    products = {}
    for sku, currency, price in (("USD-1", "USD", 1000), ("EUR-1", "EUR", 2000)):
        r = seller.post("/api/catalog/products", json={"sku": sku, "name": sku, "priceCents": price,
                                                        "currency": currency, "status": "ACTIVE"})
        assert r.status_code == 201, r.text
        pid = products[currency] = r.json()["productId"]
        eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").status_code == 200, what="stock created")
        assert seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 5}).status_code == 200
    for currency in ("USD", "EUR"):
        buyer = client("BUYER")
        assert add(buyer, products[currency], 1).status_code == 201
        answer = checkout(buyer).json()
        pay(stack, answer["clientSecret"])
        order_of(buyer, answer["orderId"], status="CONFIRMED")
    account = f"SELLER_PAYABLE_{seller.user_id}"
    both = eventually(lambda: (r := seller.get(f"/api/ledger/accounts/{account}")).status_code == 200
                      and len(r.json()["balances"]) == 2 and r.json(), what="two balances")
    assert sorted((b["currency"], b["balanceCents"]) for b in both["balances"]) == [("EUR", 1800), ("USD", 900)]
    assert both["balanceCents"] == {"USD": 900, "EUR": 1800}[both["currency"]]  # never 2700
    eur = seller.get(f"/api/ledger/accounts/{account}", params={"currency": "EUR"}).json()
    assert (eur["currency"], eur["balanceCents"]) == ("EUR", 1800)
    assert seller.get(f"/api/ledger/accounts/{account}", params={"currency": "eur"}).status_code == 422
    assert client("SELLER").get(f"/api/ledger/accounts/{account}").status_code == 403


def test_a_price_changed_while_in_the_cart_is_shown_before_it_is_charged(client, stack):
    seller, pid = listed_product(client, 5, price_cents=1000)
    buyer = client("BUYER")
    assert add(buyer, pid, 2).status_code == 201
    in_cart(buyer, pid)
    assert seller.put(f"/api/catalog/products/{pid}", json={"priceCents": 1500}).status_code == 200
    eventually(lambda: client().get(f"/api/catalog/products/{pid}").json()["priceCents"] == 1500, what="repriced")

    r = checkout(buyer)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "price_changed"
    assert r.json()["items"] == [{"productId": pid, "wasCents": 1000, "priceCents": 1500, "currency": "USD"}]
    eventually(lambda: buyer.get("/api/cart").json()["totalCents"] == 3000, what="the cart at the new price")

    paid = checkout(buyer)  # the buyer saw the new total and checks out again
    assert paid.status_code == 201, paid.text
    order_of(buyer, paid.json()["orderId"], totalCents=3000)
    assert stripe_client(stack).v1.payment_intents.retrieve(intent_of(paid.json()["clientSecret"])).amount == 3000


def test_a_product_taken_off_sale_while_in_the_cart_cannot_be_checked_out(client):
    seller, pid = listed_product(client, 5)
    buyer = client("BUYER")
    assert add(buyer, pid, 1).status_code == 201
    in_cart(buyer, pid)
    assert seller.put(f"/api/catalog/products/{pid}", json={"status": "INACTIVE"}).status_code == 200
    eventually(lambda: seller.get(f"/api/catalog/products/{pid}").json()["status"] == "INACTIVE", what="off sale")

    r = checkout(buyer)
    assert r.status_code == 409, r.text
    assert (r.json()["error"], r.json()["productIds"]) == ("product_unavailable", [pid])
    item = buyer.get("/api/cart").json()["items"][0]
    assert buyer.delete(f"/api/cart/items/{item['itemId']}").status_code == 200
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["availableQuantity"] == 5,
               what="the units back")


def in_cart(buyer, pid) -> None:
    """Wait for the cart view to show the item: checkout reads the catalog for the products the view shows
    (an item added a moment ago, not yet in the view, is checked out at the price it was added at)."""
    eventually(lambda: any(i["productId"] == pid for i in buyer.get("/api/cart").json()["items"]),
               what="the item in the cart view")
