"""A saga step that never arrives (dead-lettered, lost) leaves nothing hanging: the order and the cart each
own a deadline, and past it they compensate. Run through the real decision operator, in process, with the
lost records taken out of the World's queues."""

from __future__ import annotations

from state import cart, order
from state.common import BUYER, SELLER, Actor
from tests.sim.world import World
from tests.test_shortfall import HARD_TTL, add, listed

SELLER_1, ANN = Actor("seller-1", SELLER), Actor("ann", BUYER)


def checked_out(w: World) -> None:
    listed(w, SELLER_1, "mug", 1500, 5)
    add(w, ANN, SELLER_1, "mug", 1500, 2)
    w.send("cart", ANN.user_id, cart.Checkout(command_id="checkout-1", now=w.now, actor=ANN, buyer_id=ANN.user_id,
                                              order_id="order-1", payment_id="pay-1", allocation_ttl_s=HARD_TTL,
                                              fee_bps=1000))
    w.run(1)  # the cart checks out; its PlaceOrder is queued


def lose(w: World, queue: str) -> None:
    """A saga step dead-lettered: its record never reaches its aggregate."""
    assert w.queues.pop(queue), f"nothing queued on {queue}"


def wait_out(w: World, seconds: int) -> None:
    for _ in range(seconds // 60 + 1):
        w.tick(60)
        w.drain()


def stock(w: World):
    held = w.state("inventory", "mug")
    return held.total, held.available, held.reserved, held.allocated


def test_a_lost_place_order_frees_the_cart_after_its_deadline():
    w = World(seed=1, duplicate_rate=0.0)
    checked_out(w)
    lose(w, "order.commands:order-1")
    w.drain()
    assert w.state("cart", ANN.user_id).status == cart.CHECKOUT

    wait_out(w, HARD_TTL)  # the order's allocation time: still waiting
    assert w.state("cart", ANN.user_id).status == cart.CHECKOUT
    wait_out(w, 60 + int(cart.CHECKOUT_GRACE.total_seconds()))

    assert w.state("cart", ANN.user_id).status == cart.ABANDONED
    assert stock(w) == (5, 5, 0, 0)  # the soft hold lapsed on its own
    w.send("cart", ANN.user_id, cart.AddCartItem(  # the buyer shops again, in a new cart
        command_id="add-again", now=w.now, actor=ANN, buyer_id=ANN.user_id, product_id="mug", sku="mug",
        seller_id=SELLER_1.user_id, price_cents=1500, currency="USD", quantity=1, reservation_ttl_s=HARD_TTL,
        cart_ttl_s=HARD_TTL))
    w.drain()
    again = w.state("cart", ANN.user_id)
    assert again.status == cart.ACTIVE and [i.quantity for i in again.items.values()] == [1]
    assert w.dead == []


def test_a_lost_allocation_cancels_the_order_after_its_deadline():
    w = World(seed=2, duplicate_rate=0.0)
    checked_out(w)
    w.run(1)  # the order is placed; its AllocateStock is queued
    assert w.state("order", "order-1").status == order.PENDING
    lose(w, "inventory.commands:mug")
    w.drain()

    wait_out(w, HARD_TTL + int(order.SAGA_GRACE.total_seconds()))

    placed = w.state("order", "order-1")
    assert (placed.status, placed.cancel_reason) == (order.CANCELLED, "saga_timeout")
    assert w.state("cart", ANN.user_id).status == cart.ABANDONED  # closed by the cancellation
    assert stock(w) == (5, 5, 0, 0)
    assert w.dead == []
