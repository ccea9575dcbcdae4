"""When a result is slower than the API's wait, the answer is 202 with a link that later gives the result."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Client, private_stack
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def impatient_stack():
    """A stack whose API does not wait for results at all."""
    with private_stack("202", buyit_command_wait_s=0.0) as running:
        yield running


def test_202_then_poll_for_the_result(impatient_stack):
    seller = Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
    r = seller.post("/api/catalog/products", json={"sku": "P-1", "name": "Slow", "priceCents": 100,
                                                    "currency": "USD", "status": "ACTIVE"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["error"] == "pending" and r.headers["Location"] == f"/api/commands/{body['commandId']}"
    done = eventually(lambda: (p := seller.get(r.headers["Location"])).status_code == 200 and p.json(),
                      what="the polled result")
    assert done["sku"] == "P-1" and done["sellerId"] == seller.user_id
    rejected = seller.post("/api/catalog/products", json={"sku": "P-1", "name": "Again", "priceCents": 1,
                                                           "currency": "USD"})
    assert rejected.status_code == 202
    answer = eventually(lambda: (p := seller.get(rejected.headers["Location"])).status_code == 409 and p.json(),
                        what="the polled rejection")
    assert answer["error"] == "sku_taken"
    assert Client(impatient_stack).get(r.headers["Location"]).status_code == 401
    other = Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
    assert other.get(r.headers["Location"]).status_code == 404  # not another caller's answer
    assert Client(impatient_stack, "admin-1", "ADMIN").get(r.headers["Location"]).status_code == 200


def _done(caller, response):
    """The answer to a request, polled through its Location when it was 202."""
    if response.status_code != 202:
        return response
    return eventually(lambda: (p := caller.get(response.headers["Location"])).status_code != 202 and p,
                      what=f"the result of {response.request.url}")


def test_a_checkout_answered_202_can_still_be_paid(impatient_stack):
    """The request ended before the intent existed: the order shows its buyer the client secret once the
    payments worker made it, and paying it confirms the order."""
    from tests.payments import pay
    seller = Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
    made = _done(seller, seller.post("/api/catalog/products", json={
        "sku": "P-2", "name": "Paid later", "priceCents": 700, "currency": "USD", "status": "ACTIVE"}))
    pid = made.json()["productId"]
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").status_code == 200, what="stock created")
    assert _done(seller, seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 3})).is_success
    buyer = Client(impatient_stack, f"buyer-{uuid.uuid4().hex[:8]}", "BUYER")
    assert _done(buyer, buyer.post("/api/cart/items", json={"productId": pid, "quantity": 2})).status_code == 200
    r = buyer.post("/api/cart/checkout")
    assert r.status_code == 202, r.text
    order_id, payment_id = r.json()["orderId"], r.json()["paymentId"]
    order = eventually(lambda: (o := buyer.get(f"/api/orders/{order_id}")).status_code == 200
                       and o.json().get("clientSecret") and o.json(), what="the order with its client secret")
    assert order["status"] == "PENDING" and order["paymentId"] == payment_id and order["totalCents"] == 1400
    admin = Client(impatient_stack, "admin-1", "ADMIN")
    assert "clientSecret" not in admin.get(f"/api/orders/{order_id}").json()  # the buyer's alone
    pay(impatient_stack, order["clientSecret"])
    eventually(lambda: buyer.get(f"/api/orders/{order_id}").json()["status"] == "CONFIRMED", what="order paid")
    assert "clientSecret" not in buyer.get(f"/api/orders/{order_id}").json()  # paid: nothing left to confirm


def test_an_api_started_after_the_answer_still_answers_the_poll(impatient_stack):
    """Results live in Postgres, not only in the memory of the API process that sent the command."""
    seller = Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
    r = seller.post("/api/catalog/products", json={"sku": "P-3", "name": "Polled elsewhere", "priceCents": 100,
                                                    "currency": "USD", "status": "ACTIVE"})
    assert r.status_code == 202, r.text
    eventually(lambda: seller.get(r.headers["Location"]).status_code == 200, what="the answer")
    impatient_stack.supervisor.stop_one("api")
    impatient_stack.start_api()  # a fresh process: its memory of answers is empty
    again = Client(impatient_stack, seller.user_id, "SELLER")
    polled = again.get(r.headers["Location"])
    assert polled.status_code == 200, polled.text
    assert polled.json()["sku"] == "P-3"
    assert Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER").get(
        r.headers["Location"]).status_code == 404  # still not another caller's answer
