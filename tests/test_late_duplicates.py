"""A command delivered again long after the operator's window of recent ids has no second effect.

The decision operator remembers the last `RECENT_COMMANDS` command ids per key; a hot product
sees thousands of other commands between a saga step and its redelivery. Here the real operator
runs in-process (no Kafka): each saga step is delivered, then `OTHERS` other commands on the same
key, then the step again; the redelivery must decide nothing: no event, the same levels.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from dataflows.decider import RECENT_COMMANDS
from state import cart, inventory
from state.common import BUYER, SELLER, Actor
from tests.sim.world import World

OTHERS = 5_000
PRODUCT, TEA, SELLER_ID, BUYER_ID = "product-1", "product-2", "seller-1", "buyer-1"
RESERVATION, ORDER = "reservation-1", "order-1"


class Market(World):
    """The in-process world, without random redelivery: this test redelivers, on purpose."""

    def __init__(self):
        super().__init__(seed=0, duplicate_rate=0.0)

    def deliver(self, aggregate: str, key: str, command) -> None:
        self.send(aggregate, key, command)
        self.drain()

    def redeliver(self, aggregate: str, key: str, command) -> list[dict]:
        """The same record again (the envelope is built from the command alone: same id, same bytes);
        the events it caused."""
        before = len(self.events)
        self.deliver(aggregate, key, command)
        return self.events[before:]

    def levels(self, product_id: str = PRODUCT) -> inventory.Levels:
        return self.state("inventory", product_id).levels()


# --- the inventory's own commands, as the cart, the order and the seller send them --------------

def at(w: World, **fields):
    return dict(now=w.now, **fields)


def create(w: World, product_id=PRODUCT):
    return inventory.CreateStock(**at(w, command_id=f"create/{product_id}"), product_id=product_id,
                                 seller_id=SELLER_ID, sku=f"SKU-{product_id}")


def set_stock(w: World, total: int, expected_version=None, command_id="set-stock-1", product_id=PRODUCT):
    return inventory.SetStock(**at(w, command_id=command_id), actor=Actor(SELLER_ID, SELLER), product_id=product_id,
                              total_quantity=total, expected_version=expected_version)


def reserve(w: World, quantity: int, seq: int, mode="set", reservation_id=RESERVATION, buyer_id=BUYER_ID):
    return inventory.ReserveStock(**at(w, command_id=f"reserve/{reservation_id}/{seq}"), product_id=PRODUCT,
                                  reservation_id=reservation_id, cart_id="cart-1", buyer_id=buyer_id,
                                  quantity=quantity, mode=mode, expires_at=w.now + timedelta(hours=1), seq=seq)


def release(w: World, seq=0, order_id="", reservation_id=RESERVATION):
    return inventory.ReleaseReservation(**at(w, command_id=f"release/{reservation_id}/{seq}/{order_id}"),
                                        product_id=PRODUCT, reservation_id=reservation_id, seq=seq,
                                        order_id=order_id)


def allocate(w: World, quantity: int):
    return inventory.AllocateStock(**at(w, command_id="allocate-1"), product_id=PRODUCT, reservation_id=RESERVATION,
                                   order_id=ORDER, quantity=quantity, expires_at=w.now + timedelta(hours=1))


def sell(w: World, quantity: int):
    return inventory.ConfirmSale(**at(w, command_id="sell-1"), product_id=PRODUCT, reservation_id=RESERVATION,
                                 order_id=ORDER, quantity=quantity)


def other_carts(w: World, n: int = OTHERS) -> None:
    """`n` commands on the product from other carts: each holds a unit and gives it back."""
    for i in range(n // 2):
        w.send("inventory", PRODUCT, reserve(w, 1, seq=1, reservation_id=f"other-{i}", buyer_id="other-buyer"))
        w.send("inventory", PRODUCT, release(w, seq=2, reservation_id=f"other-{i}"))
    w.drain()


def stocked(w: World, units: int = 10) -> None:
    w.deliver("inventory", PRODUCT, create(w))
    w.deliver("inventory", PRODUCT, set_stock(w, units, command_id="set-stock-0"))


# Each case: the steps delivered first (after 10 units are stocked), and which of them comes again.
INVENTORY_CASES = {
    "create_stock": (lambda w: [create(w)], 0),
    "set_stock_after_a_sale": (lambda w: [set_stock(w, 10), reserve(w, 3, 1), allocate(w, 3), sell(w, 3)], 0),
    "set_stock_with_expected_version": (
        lambda w: [set_stock(w, 10, expected_version=2), reserve(w, 3, 1), allocate(w, 3), sell(w, 3)], 0),
    "reserve_add": (lambda w: [reserve(w, 3, 1, mode="add")], 0),
    "reserve_set_redelivered": (lambda w: [reserve(w, 3, 1)], 0),
    "reserve_set_overtaken": (lambda w: [reserve(w, 3, 1), reserve(w, 5, 2)], 0),
    "reserve_after_release": (lambda w: [reserve(w, 3, 1), release(w, seq=2)], 0),
    "release_of_an_older_hold": (lambda w: [reserve(w, 3, 1), release(w, seq=2), reserve(w, 2, 3)], 1),
    "release_by_the_order": (lambda w: [reserve(w, 3, 1), allocate(w, 3), release(w, order_id=ORDER)], 2),
    "allocate_after_the_sale": (lambda w: [reserve(w, 3, 1), allocate(w, 3), sell(w, 3)], 1),
    "allocate_after_the_order_released": (
        lambda w: [reserve(w, 3, 1), allocate(w, 3), release(w, order_id=ORDER)], 1),
    "confirm_sale": (lambda w: [reserve(w, 3, 1), allocate(w, 3), sell(w, 3)], 2),
}


@pytest.mark.parametrize("case", INVENTORY_CASES)
def test_an_inventory_command_redelivered_after_thousands_of_others_changes_nothing(case):
    steps, again = INVENTORY_CASES[case]
    assert OTHERS > 2 * RECENT_COMMANDS  # well out of the operator's window
    w = Market()
    stocked(w)
    commands = steps(w)
    for command in commands:
        w.deliver("inventory", PRODUCT, command)
    other_carts(w)
    before = (w.levels(), w.state("inventory", PRODUCT).reservations)
    assert w.redeliver("inventory", PRODUCT, commands[again]) == []
    assert (w.levels(), w.state("inventory", PRODUCT).reservations) == before
    assert w.dead == []
    inventory.audit(w.state("inventory", PRODUCT))
    assert w.replayed("inventory") == w.states("inventory")


# --- the buyer's cart requests, which issue ReserveStock and ReleaseReservation ----------------

def add(w: World, quantity: int, command_id: str, product_id=PRODUCT):
    return cart.AddCartItem(**at(w, command_id=command_id), actor=Actor(BUYER_ID, BUYER), buyer_id=BUYER_ID,
                            product_id=product_id, sku=f"SKU-{product_id}", seller_id=SELLER_ID, price_cents=500,
                            currency="USD", quantity=quantity, reservation_ttl_s=3600, cart_ttl_s=3600)


def change(w: World, quantity: int, command_id: str, product_id=PRODUCT):
    item = w.state("cart", BUYER_ID).items[product_id]
    return cart.ChangeCartItem(**at(w, command_id=command_id), actor=Actor(BUYER_ID, BUYER), buyer_id=BUYER_ID,
                               item_id=item.item_id, quantity=quantity, reservation_ttl_s=3600, cart_ttl_s=3600)


def remove(w: World, command_id: str, product_id=PRODUCT):
    item = w.state("cart", BUYER_ID).items[product_id]
    return cart.RemoveCartItem(**at(w, command_id=command_id), actor=Actor(BUYER_ID, BUYER), buyer_id=BUYER_ID,
                               item_id=item.item_id, cart_ttl_s=3600)


def the_buyer_changes_tea(w: World, n: int = OTHERS) -> None:
    """`n` other commands on the buyer's key: tea changed back and forth, each change and its confirmation."""
    for i in range(n // 2):
        w.deliver("cart", BUYER_ID, change(w, 1 + i % 2, f"change-tea-{i}", product_id=TEA))


def held(w: World) -> tuple:
    """What the cart shows of the product, and what inventory holds for it."""
    stock = w.state("inventory", PRODUCT)
    shown = [(i["productId"], i["quantity"]) for i in cart.view(w.state("cart", BUYER_ID))["items"]]
    return shown, stock.levels(), {r.reservation_id: r.quantity for r in stock.reservations.values()}


def steps_add(w: World) -> list:
    return [add(w, 2, "add-1")]


def steps_change(w: World) -> list:
    w.deliver("cart", BUYER_ID, add(w, 2, "add-1"))
    first = change(w, 5, "change-1")
    w.deliver("cart", BUYER_ID, first)
    return [first, change(w, 3, "change-2")]


def steps_remove(w: World) -> list:
    w.deliver("cart", BUYER_ID, add(w, 2, "add-1"))
    gone = remove(w, "remove-1")
    w.deliver("cart", BUYER_ID, gone)
    return [gone, add(w, 1, "add-2")]


CART_CASES = {"add_item": steps_add, "change_item": steps_change, "remove_item": steps_remove}


@pytest.mark.parametrize("case", CART_CASES)
def test_a_cart_request_redelivered_after_thousands_of_others_changes_nothing(case):
    w = Market()
    stocked(w)
    w.deliver("inventory", TEA, create(w, TEA))
    w.deliver("inventory", TEA, set_stock(w, 10, command_id="set-tea", product_id=TEA))
    w.deliver("cart", BUYER_ID, add(w, 1, "add-tea", product_id=TEA))
    requests = CART_CASES[case](w)
    for request in requests[-1:]:
        w.deliver("cart", BUYER_ID, request)
    the_buyer_changes_tea(w)
    before = held(w)
    assert w.redeliver("cart", BUYER_ID, requests[0]) == []
    assert held(w) == before
    assert w.dead == []
    for name in ("cart", "inventory"):
        assert w.replayed(name) == w.states(name), name
