"""Expiry as events: idle carts and lapsed reservations give their units back, once, even across a crash."""

from __future__ import annotations


import psycopg
import pytest
import redis

from tests.conftest import Client
from tests.helpers import eventually, read_topic
from tests.test_cart_api import add, listed_product, stock

pytestmark = pytest.mark.integration


@pytest.fixture
def ttl_client(short_ttl_stack):
    def make(role=None, user_id=None, token=None):
        import uuid
        if role is not None and user_id is None:
            user_id = f"{role.lower()}-{uuid.uuid4().hex[:10]}"
        return Client(short_ttl_stack, user_id, role, token)
    return make


def cart_row(stack, cart_id):
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        return conn.execute("SELECT status FROM carts WHERE cart_id = %s", (cart_id,)).fetchone()


def abandoned_events(stack, cart_id):
    return [e for e in read_topic(stack.settings_for_children().brokers, "cart.events")
            if e["type"] == "CartAbandoned" and e["payload"]["cartId"] == cart_id]


def test_idle_cart_expires_and_releases_everything(short_ttl_stack, ttl_client):
    stack = short_ttl_stack
    seller, pid = listed_product(ttl_client, 6)
    buyer = ttl_client("BUYER")
    cart = add(buyer, pid, 4).json()
    stock(seller, pid, reservedQuantity=4, availableQuantity=2)
    cache = redis.Redis.from_url(stack.env["REDIS_URL"])
    assert eventually(lambda: cache.exists(f"cart:{buyer.user_id}"))

    stock(seller, pid, reservedQuantity=0, availableQuantity=6)
    eventually(lambda: cart_row(stack, cart["cartId"]) == ("EXPIRED",), what="cart EXPIRED in Postgres")
    eventually(lambda: not cache.exists(f"cart:{buyer.user_id}"), what="Redis key gone")
    [event] = eventually(lambda: abandoned_events(stack, cart["cartId"]), what="CartAbandoned on cart.events")
    assert event["payload"]["status"] == "EXPIRED"
    assert buyer.get("/api/cart").json()["items"] == []


def test_expiry_survives_a_dataflow_crash_and_happens_once(short_ttl_stack, ttl_client):
    stack = short_ttl_stack
    seller, pid = listed_product(ttl_client, 5)
    buyer = ttl_client("BUYER")
    cart = add(buyer, pid, 3).json()
    reservation = cart["items"][0]["reservationId"]
    stack.restart("dataflow-decide")
    restarted(stack)

    stock(seller, pid, reservedQuantity=0, availableQuantity=5)
    eventually(lambda: cart_row(stack, cart["cartId"]) == ("EXPIRED",), what="cart EXPIRED after restart")
    brokers = stack.settings_for_children().brokers
    expired = {e["eventId"] for e in read_topic(brokers, "inventory.events")
               if e["type"] == "ReservationExpired" and e["payload"]["reservationId"] == reservation}
    released = {e["eventId"] for e in read_topic(brokers, "inventory.events")
                if e["type"] == "ReservationReleased" and e["payload"]["reservationId"] == reservation}
    assert len(expired) + len(released) == 1  # given back exactly once, by whichever timer fired first
    assert len({e["eventId"] for e in abandoned_events(stack, cart["cartId"])}) == 1


def test_unpaid_order_expires_and_releases_its_allocation(short_ttl_stack, ttl_client):
    seller, pid = listed_product(ttl_client, 5)
    buyer = ttl_client("BUYER")
    add(buyer, pid, 2)
    r = buyer.post("/api/cart/checkout")
    assert r.status_code == 201, r.text
    order_id = r.json()["orderId"]
    stock(seller, pid, allocatedQuantity=2, availableQuantity=3)
    stock(seller, pid, allocatedQuantity=0, availableQuantity=5)
    order = eventually(lambda: (o := buyer.get(f"/api/orders/{order_id}").json())["status"] == "CANCELLED" and o,
                       what="unpaid order cancelled")
    assert order["cancelReason"] == "payment_timeout" and order["cancelledAt"]


def test_a_capture_after_the_allocation_expired_is_refunded(short_ttl_stack, ttl_client):
    """The buyer pays in the moment the hard allocation lapses (here: while the payments worker, which would
    have cancelled the intent, is down): the order stays cancelled, nothing is sold, the money goes back."""
    a_late_capture_is_refunded(short_ttl_stack, ttl_client, units=2)


def test_a_capture_racing_the_expiry_across_a_decision_dataflow_crash_is_refunded(short_ttl_stack, ttl_client):
    """The decision dataflow dies (kill -9) holding an unpaid order's hard allocation; it comes back from its
    snapshot, the hold lapses, and the capture that arrives then is refunded: sold nothing, kept nothing."""
    def crash_the_decisions():
        short_ttl_stack.restart("dataflow-decide")
        restarted(short_ttl_stack)
    a_late_capture_is_refunded(short_ttl_stack, ttl_client, units=1, meanwhile=crash_the_decisions)


def a_late_capture_is_refunded(stack, ttl_client, units: int, meanwhile=lambda: None) -> None:
    """A checkout of `units` at 1000 cents left unpaid; with the payments worker down (so nothing cancels the
    intent) and `meanwhile` done, the hold lapses and the buyer pays: the capture is refunded in full, the
    order stays cancelled and nothing is sold."""
    from tests.payments import intent_of, pay, refunds_at_stripe
    seller, pid = listed_product(ttl_client, 5)
    buyer = ttl_client("BUYER")
    add(buyer, pid, units)
    answer = buyer.post("/api/cart/checkout").json()
    order_id, payment_id = answer["orderId"], answer["paymentId"]
    stack.supervisor.stop_one("dataflow-payments")
    try:
        meanwhile()
        eventually(lambda: buyer.get(f"/api/orders/{order_id}").json()["status"] == "CANCELLED",
                   what="the unpaid order cancelled at expiry")
        pay(stack, answer["clientSecret"])
        eventually(lambda: buyer.get(f"/api/payments/{payment_id}").json()["state"] == "REFUND_PENDING",
                   what="the late capture flagged")
    finally:
        stack.start_dataflows(("payments",))
    eventually(lambda: buyer.get(f"/api/payments/{payment_id}").json()["state"] == "REFUNDED", what="refunded")
    assert [r.amount for r in refunds_at_stripe(stack, intent_of(answer["clientSecret"]))] == [1000 * units]
    stock(seller, pid, soldQuantity=0, allocatedQuantity=0, availableQuantity=5)
    assert buyer.get(f"/api/orders/{order_id}").json()["status"] == "CANCELLED"


def restarted(stack) -> None:
    """Wait until the restarted decision dataflow answers (its recovery can take a while on busy cores):
    what the test asserts next is about the expiry, not about how fast the flow came back."""
    import httpx
    url = f"http://127.0.0.1:{stack.api_ports[0]}/health"
    eventually(lambda: httpx.get(url, timeout=10).json()["components"]["commands"] == "ok", timeout=90,
               what="the decision dataflow answering again")
