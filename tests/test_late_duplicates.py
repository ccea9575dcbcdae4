"""A command delivered again long after the operator's window of recent ids has no second effect.

The decision operator remembers the last `RECENT_COMMANDS` command ids per key; a hot product
sees thousands of other commands between a saga step and its redelivery. Here the real operator
runs in-process (no Kafka): each saga step is delivered, then `OTHERS` other commands on the same
key, then the step again; the redelivery must decide nothing: no event, the same levels. Every
command type of every aggregate is covered, each where a redelivery could do harm (after what
followed it).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from buyit.envelope import decode
from dataflows.decider import RECENT_COMMANDS
from state import cart, catalog, health, inventory, ledger, order, payment, user
from state.common import BUYER, SELLER, Actor, Command, derived_id, type_name
from state.registry import AGGREGATES
from tests.sim.world import World

OTHERS = 1_200  # more than twice the window of remembered ids (`RECENT_COMMANDS`): it is long gone
PRODUCT, TEA, SELLER_ID, BUYER_ID = "product-1", "product-2", "seller-1", "buyer-1"
RESERVATION, ORDER = "reservation-1", "order-1"


class Market(World):
    """The in-process world, without random redelivery: this test redelivers, on purpose."""

    def __init__(self):
        super().__init__(seed=0, duplicate_rate=0.0)
        self.decided: list[tuple[str, str, bytes]] = []  # every record, in the order it was decided

    def _decide(self, topic: str, key: str, value: bytes) -> None:
        self.decided.append((topic, key, value))
        super()._decide(topic, key, value)

    def deliver(self, aggregate: str, key: str, command) -> None:
        self.send(aggregate, key, command)
        self.drain()

    def delivered(self, aggregate: str, key: str, command) -> tuple[str, str, Command]:
        """Deliver a command; it, to deliver again later."""
        self.deliver(aggregate, key, command)
        return aggregate, key, command

    def issued(self, kind: type, **fields) -> tuple[str, str, Command]:
        """The first command of a kind a saga step issued (with these field values), to deliver again."""
        for topic, key, value in self.decided:
            envelope = decode(value)
            if envelope.type == type_name(kind):
                command = envelope.message()
                if all(getattr(command, f) == v for f, v in fields.items()):
                    return topic.removesuffix(".commands"), key, command
        raise AssertionError(f"no {type_name(kind)} {fields} was issued")

    def caused(self, command) -> list[str]:
        """The types of the events a command's delivery caused."""
        return [e["type"] for e in self.events if e["causationId"] == command.command_id]

    def everything(self) -> dict:
        """Every aggregate's state, by aggregate and key."""
        return {name: self.states(name) for name in AGGREGATES}

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

def add(w: World, quantity: int, command_id: str, product_id=PRODUCT, reservation_ttl_s=3600):
    return cart.AddCartItem(**at(w, command_id=command_id), actor=Actor(BUYER_ID, BUYER), buyer_id=BUYER_ID,
                            product_id=product_id, sku=f"SKU-{product_id}", seller_id=SELLER_ID, price_cents=500,
                            currency="USD", quantity=quantity, reservation_ttl_s=reservation_ttl_s, cart_ttl_s=3600)


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


# --- every other command of every aggregate: the checkout saga and what follows it --------------
# Each case runs the market up to a point and names the command that comes again, as delivered
# (the seller's, the buyer's, Stripe's or the payments worker's) or as a saga step issued it. Then
# `OTHERS` other commands fill that key's window (`FILLERS`: ones the key accepts, or refuses
# without a change), and the command comes again: no event anywhere, no state changed.

PAYMENT, INTENT = "payment-1", "pi_1"
SHIPMENT = derived_id(ORDER, f"shipment/{SELLER_ID}")
THE_BUYER, THE_SELLER = Actor(BUYER_ID, BUYER), Actor(SELLER_ID, SELLER)


def place(w: Market, quantity: int = 2):
    """The order a checkout places (here without a cart: its reservation is not held, stock is allocated)."""
    item = order.OrderItem(item_id="item-1", product_id=PRODUCT, sku=f"SKU-{PRODUCT}", seller_id=SELLER_ID,
                           quantity=quantity, price_cents=500, currency="USD", reservation_id=RESERVATION)
    return order.PlaceOrder(**at(w, command_id="place-order-1"), order_id=ORDER, buyer_id=BUYER_ID,
                            cart_id="cart-1", payment_id=PAYMENT, items=(item,), allocation_ttl_s=1800,
                            fee_bps=1000)


def attach(w: Market, intent_id: str = INTENT):
    """The payments worker's, once Stripe made the order's PaymentIntent."""
    return order.AttachPayment(**at(w, command_id=f"attach/{intent_id}"), order_id=ORDER, payment_id=PAYMENT,
                               intent_id=intent_id)


def capture(w: Market, stripe_event_id: str = "evt_paid", intent_id: str = INTENT):
    return payment.CapturePayment(**at(w, command_id=f"stripe/{stripe_event_id}"), payment_id=PAYMENT,
                                  stripe_event_id=stripe_event_id, intent_id=intent_id)


def fail(w: Market, stripe_event_id: str = "evt_failed", intent_id: str = INTENT):
    return payment.FailPayment(**at(w, command_id=f"stripe/{stripe_event_id}"), payment_id=PAYMENT,
                               stripe_event_id=stripe_event_id, intent_id=intent_id, reason="card_declined")


def cancel(w: Market):
    return order.CancelOrder(**at(w, command_id="cancel-1"), actor=THE_BUYER, order_id=ORDER, reason="changed_mind")


def settle(w: Market, refund_key: str = ""):
    return payment.SettleRefund(**at(w, command_id=f"settle/{refund_key}"), payment_id=PAYMENT, refund_id="re_1",
                                refund_key=refund_key)


def shortfall(w: Market):
    """Inventory's, when a paid item's units were gone."""
    return order.RecordShortfall(**at(w, command_id="shortfall-1"), order_id=ORDER, product_id=PRODUCT, quantity=1)


def move(w: Market, kind: type, **fields):
    """The seller moves the shipment on (the carrier delivers)."""
    return kind(**at(w, command_id=f"{type_name(kind)}-1"), actor=THE_SELLER, order_id=ORDER, shipment_id=SHIPMENT,
                **fields)


def process(w: Market):
    return move(w, order.ProcessShipment)


def ship(w: Market):
    return move(w, order.ShipShipment, tracking_number="1Z999", carrier="UPS")


def hand_over(w: Market):
    return move(w, order.DeliverShipment)


def placed(w: Market, quantity: int = 2):
    stocked(w)
    return w.delivered("order", ORDER, place(w, quantity))


def allocated(w: Market):
    placed(w)
    return w.issued(order.ConfirmAllocation)


def attached(w: Market):
    allocated(w)
    return w.delivered("order", ORDER, attach(w))


def paid(w: Market):
    attached(w)
    return w.delivered("payment", PAYMENT, capture(w))


def shipped(w: Market):
    """Paid, then processed and shipped: the steps, in order."""
    paid(w)
    return [w.delivered("order", ORDER, process(w)), w.delivered("order", ORDER, ship(w))]


def captured_after_cancellation(w: Market):
    """The buyer cancelled while Stripe was capturing: the money is owed back."""
    attached(w)
    w.deliver("order", ORDER, cancel(w))
    return w.delivered("payment", PAYMENT, capture(w))


def refunded(w: Market):
    captured_after_cancellation(w)
    return w.delivered("payment", PAYMENT, settle(w))


def fell_short(w: Market):
    paid(w)
    return w.delivered("order", ORDER, shortfall(w))


def then(aggregate: str, key: str, command):
    """A later step: deliver `command(w)`."""
    return lambda w: w.deliver(aggregate, key, command(w))


def first(steps, *rest):
    """Deliver `steps`' command first, then the rest: the first comes again."""
    def case(w: Market):
        again = steps(w)
        for later in rest:
            later(w)
        return again
    return case


def issued(kind: type, before, **fields):
    """What a saga step issued once `before` ran."""
    def case(w: Market):
        before(w)
        return w.issued(kind, **fields)
    return case


def one_more(aggregate: str, key: str, command, before):
    """`before`, then one more command, which comes again."""
    def case(w: Market):
        before(w)
        return w.delivered(aggregate, key, command(w))
    return case


SAGA_CASES = {
    # orders
    "place_order": placed,
    "place_order_after_the_payment": first(placed, then("order", ORDER, attach), then("payment", PAYMENT, capture)),
    "confirm_allocation": allocated,
    "confirm_allocation_after_the_payment": first(allocated, then("order", ORDER, attach),
                                                  then("payment", PAYMENT, capture)),
    "fail_allocation": issued(order.FailAllocation, lambda w: placed(w, quantity=50)),
    "attach_payment": attached,
    "attach_payment_after_the_payment": first(attached, then("payment", PAYMENT, capture)),
    "attach_a_second_intent": one_more("order", ORDER, lambda w: attach(w, "pi_2"), attached),
    "attach_to_a_cancelled_order": one_more("order", ORDER, attach, first(allocated, then("order", ORDER, cancel))),
    "confirm_order": issued(order.ConfirmOrder, paid),
    "confirm_order_after_cancellation": issued(order.ConfirmOrder, captured_after_cancellation),
    "record_shortfall": fell_short,
    "cancel_order": one_more("order", ORDER, cancel, allocated),
    "cancel_order_for_a_failed_payment": issued(order.CancelOrder, one_more("payment", PAYMENT, fail, attached)),
    "process_shipment": one_more("order", ORDER, process, paid),
    "process_shipment_after_it_shipped": lambda w: shipped(w)[0],
    "ship_shipment": lambda w: shipped(w)[1],
    "ship_shipment_after_delivery": first(lambda w: shipped(w)[1], then("order", ORDER, hand_over)),
    "deliver_shipment": one_more("order", ORDER, hand_over, shipped),
    # payments
    "open_payment": issued(payment.OpenPayment, attached),
    "capture_payment": paid,
    "capture_before_the_payment_existed": first(one_more("payment", PAYMENT, capture, allocated),
                                                then("order", ORDER, attach)),
    "fail_payment": one_more("payment", PAYMENT, fail, attached),
    "fail_payment_then_captured": first(one_more("payment", PAYMENT, fail, attached),
                                        then("payment", PAYMENT, capture)),
    "flag_for_refund_after_cancellation": issued(payment.FlagForRefund, captured_after_cancellation),
    "flag_for_refund_of_a_shortfall": issued(payment.FlagForRefund, fell_short),
    "settle_refund": refunded,
    # the ledger (keyed by payment)
    "post_sale": issued(ledger.PostSale, paid),
    "post_refund_owed": issued(ledger.PostRefundOwed, captured_after_cancellation),
    "post_refund_owed_for_a_shortfall": issued(ledger.PostRefundOwed, fell_short),
    "post_refund": issued(ledger.PostRefund, refunded),
}


def strangers(w: Market) -> None:
    """Other buyers try to cancel the order: not theirs to know of."""
    for i in range(OTHERS):
        w.send("order", ORDER, order.CancelOrder(**at(w, command_id=f"stranger-{i}"), actor=Actor(f"b{i}", BUYER),
                                                 order_id=ORDER, reason="mine"))
    w.drain()


def stripe_elsewhere(w: Market) -> None:
    """Stripe events naming another PaymentIntent: not this payment's."""
    for i in range(OTHERS):
        w.send("payment", PAYMENT, fail(w, stripe_event_id=f"evt_{i}", intent_id="pi_elsewhere"))
    w.drain()


def nothing_owed(w: Market) -> None:
    """Refunds of claims this payment never owed."""
    for i in range(OTHERS):
        w.send("ledger", PAYMENT, ledger.PostRefund(**at(w, command_id=f"refund-{i}"), payment_id=PAYMENT,
                                                    order_id=ORDER, currency="USD", amount_cents=1,
                                                    refund_id=f"re_{i}", refund_key=f"never/{i}"))
    w.drain()


FILLERS = {"order": strangers, "payment": stripe_elsewhere, "ledger": nothing_owed}


def redelivered_late(w: Market, aggregate: str, key: str, command) -> list[dict]:
    """The command again, after `OTHERS` others pushed its id out of the key's window: the events it caused."""
    assert OTHERS > 2 * RECENT_COMMANDS
    held = w.logic.get(f"{aggregate}:{key}")  # none: it never changed (a ping), so nothing is held for it
    assert held is None or command.command_id not in held.slot.recent
    before = w.everything()
    events = w.redeliver(aggregate, key, command)
    assert w.everything() == before
    assert w.dead == []
    for name in AGGREGATES:
        assert w.replayed(name) == w.states(name), name
    return events


@pytest.mark.parametrize("case", SAGA_CASES)
def test_a_saga_step_redelivered_after_thousands_of_others_changes_nothing(case):
    w = Market()
    aggregate, key, command = SAGA_CASES[case](w)
    assert w.caused(command) and w.dead == []
    FILLERS[aggregate](w)
    assert redelivered_late(w, aggregate, key, command) == []


# --- the cart's checkout, its closing, and inventory's answers to it ----------------------------

def checkout(w: Market):
    return cart.Checkout(**at(w, command_id="checkout-1"), actor=THE_BUYER, buyer_id=BUYER_ID, order_id=ORDER,
                         payment_id=PAYMENT, allocation_ttl_s=1800, fee_bps=1000)


def checked_out(w: Market):
    w.deliver("cart", BUYER_ID, add(w, 2, "add-1"))
    return w.delivered("cart", BUYER_ID, checkout(w))


def checkout_paid(w: Market):
    again = checked_out(w)
    w.deliver("order", ORDER, attach(w))
    w.deliver("payment", PAYMENT, capture(w))
    assert w.state("cart", BUYER_ID).status == cart.COMPLETED
    return again


def checkout_cancelled(w: Market):
    again = checked_out(w)
    w.deliver("order", ORDER, cancel(w))
    assert w.state("cart", BUYER_ID).status == cart.ABANDONED
    return again


def confirmed_then_changed(w: Market):
    w.deliver("cart", BUYER_ID, add(w, 2, "add-1"))
    w.deliver("cart", BUYER_ID, change(w, 3, "change-1"))
    return w.issued(cart.ConfirmReservation, quantity=2)


def refused_then_changed(w: Market):
    w.deliver("cart", BUYER_ID, add(w, 2, "add-1"))
    w.deliver("cart", BUYER_ID, change(w, 20, "change-1"))  # more than there is
    w.deliver("cart", BUYER_ID, change(w, 3, "change-2"))
    return w.issued(cart.RefuseReservation)


def lapsed_then_added(w: Market):
    w.deliver("cart", BUYER_ID, add(w, 2, "add-1", reservation_ttl_s=600))
    w.tick(601)
    w.drain()
    assert PRODUCT not in w.state("cart", BUYER_ID).items
    w.deliver("cart", BUYER_ID, add(w, 1, "add-2"))
    return w.issued(cart.LapseReservation)


# Each case: what comes again, and whether the buyer shops on in a new cart before it does.
CHECKOUT_CASES = {
    "checkout_while_the_order_is_placed": (checked_out, False),
    "checkout_after_the_order_was_paid": (checkout_paid, True),
    "checkout_after_the_order_was_cancelled": (checkout_cancelled, True),
    "close_cart_as_completed": (issued(cart.CloseCart, checkout_paid), True),
    "close_cart_as_abandoned": (issued(cart.CloseCart, checkout_cancelled), True),
    "confirm_reservation_overtaken": (confirmed_then_changed, False),
    "refuse_reservation_overtaken": (refused_then_changed, False),
    "lapse_reservation_then_added_again": (lapsed_then_added, False),
}


@pytest.mark.parametrize("case", CHECKOUT_CASES)
def test_a_checkout_step_redelivered_after_thousands_of_others_changes_nothing(case):
    steps, shops_on = CHECKOUT_CASES[case]
    w = Market()
    stocked(w)
    w.deliver("inventory", TEA, create(w, TEA))
    w.deliver("inventory", TEA, set_stock(w, 10, command_id="set-tea", product_id=TEA))
    if not shops_on:
        w.deliver("cart", BUYER_ID, add(w, 1, "add-tea", product_id=TEA))
    aggregate, key, command = steps(w)
    if shops_on:  # a new cart
        w.deliver("cart", BUYER_ID, add(w, 1, "add-tea", product_id=TEA))
    assert w.caused(command) and w.dead == []
    the_buyer_changes_tea(w)
    assert redelivered_late(w, aggregate, key, command) == []


def buys(w: Market, n: int) -> None:
    """The buyer checks the cart out as order n and pays for it (the payments worker and Stripe answer)."""
    order_id, payment_id, intent_id = f"order-{n}", f"payment-{n}", f"pi_{n}"
    w.deliver("cart", BUYER_ID, cart.Checkout(**at(w, command_id=f"checkout-{n}"), actor=THE_BUYER, buyer_id=BUYER_ID,
                                              order_id=order_id, payment_id=payment_id, allocation_ttl_s=1800,
                                              fee_bps=1000))
    w.deliver("order", order_id, order.AttachPayment(**at(w, command_id=f"attach/{intent_id}"), order_id=order_id,
                                                     payment_id=payment_id, intent_id=intent_id))
    w.deliver("payment", payment_id, payment.CapturePayment(**at(w, command_id=f"stripe/{n}"), payment_id=payment_id,
                                                            stripe_event_id=f"evt_{n}", intent_id=intent_id))
    assert w.state("cart", BUYER_ID).status == cart.COMPLETED


def test_an_add_redelivered_two_carts_later_changes_nothing():
    """Older than the cart it reaches (its `now` is before that cart began): meant for an earlier cart."""
    w = Market()
    stocked(w)
    w.deliver("inventory", TEA, create(w, TEA))
    w.deliver("inventory", TEA, set_stock(w, 10, command_id="set-tea", product_id=TEA))
    first = add(w, 2, "add-1")
    w.deliver("cart", BUYER_ID, first)
    for n in (1, 2):
        buys(w, n)
        w.now += timedelta(minutes=1)  # the buyer comes back later
        w.deliver("cart", BUYER_ID, add(w, 1, f"add-tea-{n}", product_id=TEA))  # the next cart
    the_buyer_changes_tea(w)
    assert redelivered_late(w, "cart", BUYER_ID, first) == []


# --- catalog, users, health -------------------------------------------------------------------

def create_product(w: Market):
    return catalog.CreateProduct(**at(w, command_id="create-product-1"), actor=THE_SELLER, product_id=PRODUCT,
                                 seller_id=SELLER_ID, sku=f"SKU-{PRODUCT}", name="Blue mug", price_cents=500,
                                 currency="USD", status="ACTIVE")


def update_product(w: Market, command_id: str = "update-product-1", later: int = 0, **changes):
    return catalog.UpdateProduct(command_id=command_id, now=w.now + timedelta(seconds=later), actor=THE_SELLER,
                                 product_id=PRODUCT, **changes)


def created(w: Market):
    return w.delivered("catalog", PRODUCT, create_product(w))


def other_sellers(w: Market) -> None:
    """Other sellers try to change the product: not theirs."""
    for i in range(OTHERS):
        w.send("catalog", PRODUCT, catalog.UpdateProduct(**at(w, command_id=f"not-mine-{i}"),
                                                         actor=Actor(f"s{i}", SELLER), product_id=PRODUCT,
                                                         name="Mine"))
    w.drain()


def the_seller_edits_on(w: Market) -> None:
    """The seller changes the price, again and again, each time later."""
    for i in range(OTHERS):
        w.send("catalog", PRODUCT, update_product(w, f"reprice-{i}", later=1 + i, price_cents=600 + i % 2))
    w.drain()


def signs_in_again(w: Market) -> None:
    """The user registers on every sign-in: the first registration stands."""
    for i in range(OTHERS):
        w.send("user", "user-1", register(w, f"register-{i}"))
    w.drain()


def pings(w: Market) -> None:
    for i in range(OTHERS):
        w.send("health", "health", health.Ping(**at(w, command_id=f"ping-{i}")))
    w.drain()


def register(w: Market, command_id: str = "register-1"):
    return user.RegisterUser(**at(w, command_id=command_id), actor=Actor("user-1", BUYER), user_id="user-1",
                             account_type=BUYER, email="ann@example.com")


# Each case: what comes again, and the other commands on its key.
OWN_CASES = {
    "create_product": (created, other_sellers),
    "update_product": (one_more("catalog", PRODUCT, lambda w: update_product(w, name="Red mug"), created),
                       other_sellers),
    "update_product_overtaken": (one_more("catalog", PRODUCT, lambda w: update_product(w, name="Red mug",
                                                                                   price_cents=900), created),
                                 the_seller_edits_on),
    "register_user": (lambda w: w.delivered("user", "user-1", register(w)), signs_in_again),
    "ping": (lambda w: w.delivered("health", "health", health.Ping(**at(w, command_id="ping"))), pings),
}


@pytest.mark.parametrize("case", OWN_CASES)
def test_a_request_redelivered_after_thousands_of_others_changes_nothing(case):
    steps, others = OWN_CASES[case]
    w = Market()
    aggregate, key, command = steps(w)
    assert (w.caused(command) or aggregate == "health") and w.dead == []  # a ping never has an effect
    others(w)
    assert redelivered_late(w, aggregate, key, command) == []
