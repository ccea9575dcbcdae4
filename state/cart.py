"""Carts, keyed by buyer. Items hold soft reservations; an idle cart expires and gives them back.

Adding or changing an item is a saga: the cart records the request, the
product's inventory reserves (or refuses), and the cart confirms the item with
the quantity the reservation now holds. A cart ends COMPLETED (paid), EXPIRED
(idle too long) or ABANDONED (payment failed); the buyer's next add starts a
new cart with a new id.

Every request is idempotent by state, however late a redelivery comes: the
cart remembers the ids of the buyer's requests it applied and the orders its
checkouts made, numbers what it asks of inventory per reservation (`seq`) and
asks for absolute totals, and applies an answer from inventory only if nothing
newer was answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from immutables import Map
from pyrsistent import PMap, PSet

from state.common import (Aggregate, Command, Event, Expire, Rejection, derived_id, invalid, message,
                          not_found, replace)
from state.ids import Ids

ACTIVE, CHECKOUT, COMPLETED, EXPIRED, ABANDONED = "ACTIVE", "CHECKOUT", "COMPLETED", "EXPIRED", "ABANDONED"

# A checkout waits for its order this long past the order's own deadline (its allocation TTL plus the
# order's grace), then gives up: the backstop of the backstop, so a buyer is never stuck in CHECKOUT.
CHECKOUT_GRACE = timedelta(seconds=120)
OPEN = (ACTIVE,)
ENDED = (COMPLETED, EXPIRED, ABANDONED)


# --- commands ---------------------------------------------------------------------------------

@message
class AddCartItem(Command):
    buyer_id: str
    product_id: str
    sku: str
    seller_id: str
    price_cents: int
    currency: str
    quantity: int
    reservation_ttl_s: int
    cart_ttl_s: int


@message
class ChangeCartItem(Command):
    buyer_id: str
    item_id: str
    quantity: int
    reservation_ttl_s: int
    cart_ttl_s: int


@message
class RemoveCartItem(Command):
    buyer_id: str
    item_id: str
    cart_ttl_s: int


@message
class ConfirmReservation(Command):
    """From inventory: the reservation now holds `quantity` units, answering the cart's request `seq`."""

    buyer_id: str
    reservation_id: str
    quantity: int
    seq: int = 0


@message
class RefuseReservation(Command):
    """From inventory: the reservation could not grow; the cart keeps what it had."""

    buyer_id: str
    reservation_id: str
    seq: int = 0


@message
class LapseReservation(Command):
    """From inventory: a soft reservation's own TTL passed and its units went back."""

    buyer_id: str
    reservation_id: str
    seq: int = 0  # the newest request the lapsed hold answered


@dataclass(frozen=True)
class Listing:
    """What the catalog said of a product when the buyer checked out."""

    product_id: str
    price_cents: int
    currency: str
    active: bool


@message
class Checkout(Command):
    buyer_id: str
    order_id: str
    payment_id: str
    allocation_ttl_s: int
    fee_bps: int
    listings: tuple[Listing, ...] = ()  # the cart's products as listed now (older records: none, no check)


@message
class CloseCart(Command):
    """From the order: paid (COMPLETED) or cancelled (ABANDONED)."""

    buyer_id: str
    cart_id: str
    order_id: str
    status: str


@message
class ForgetOrder(Command):
    """From an order that retired: the buyer's carts need not know it any more (see `Cart.orders`)."""

    buyer_id: str
    order_id: str


# --- events -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    item_id: str
    product_id: str
    sku: str
    seller_id: str
    quantity: int
    price_cents: int
    currency: str
    reservation_id: str


@message
class CartCreated(Event):
    settles = False
    cart_id: str
    buyer_id: str
    created_at: datetime


@message
class CartItemRequested(Event):
    """The cart asked inventory for units; the item shows once they are reserved."""

    settles = False
    cart_id: str
    item: Item
    quantity: int  # the total the reservation should hold ("set"); older records may "add"
    mode: str
    reservation_expires_at: datetime
    expires_at: datetime
    seq: int = 0
    request_id: str = ""  # the buyer's request, so its redelivery is known by state


@message
class CartItemConfirmed(Event):
    cart_id: str
    item_id: str
    product_id: str
    quantity: int
    seq: int = 0


@message
class CartItemRefused(Event):
    settles = False  # inventory already told the buyer why
    cart_id: str
    item_id: str
    product_id: str
    seq: int = 0


@message
class CartItemRemoved(Event):
    cart_id: str
    item_id: str
    product_id: str
    reservation_id: str
    quantity: int
    reason: str
    expires_at: datetime | None
    seq: int = 0  # removed: the release's; lapsed: the newest request the lapsed hold answered
    request_id: str = ""


@message
class CartAbandoned(Event):
    """The cart ended unpaid: idle past its expiry (status EXPIRED) or its payment failed (ABANDONED)."""

    settles = False  # a saga step's fact, never the answer to the request that started it
    cart_id: str
    buyer_id: str
    status: str
    items: tuple[Item, ...]
    at: datetime
    seq: int = 0  # stamped on the releases of its items
    order_id: str = ""  # a checkout the cart gave up waiting for: that order is told to cancel


@message
class CartCheckedOut(Event):
    settles = False  # the order answers once its items are allocated
    cart_id: str
    buyer_id: str
    order_id: str
    payment_id: str
    items: tuple[Item, ...]
    allocation_ttl_s: int
    fee_bps: int
    gives_up_at: datetime | None = None  # older records: no deadline


@dataclass(frozen=True)
class Repriced:
    product_id: str
    was_cents: int
    price_cents: int
    currency: str


@message
class CartItemsRepriced(Event):
    """Checkout found prices changed since the items were added: the cart now holds the listed prices, and the
    buyer is told so (409) and checks out again at the new total, never charged a price it was not shown."""

    cart_id: str
    changes: tuple[Repriced, ...]

    def rejection(self) -> Rejection:
        return Rejection("price_changed", "prices changed since the items were added; check out again at the "
                         "new total", 409, {"items": [{"productId": c.product_id, "wasCents": c.was_cents,
                                                        "priceCents": c.price_cents, "currency": c.currency}
                                                       for c in self.changes]})


@message
class CartCompleted(Event):
    settles = False  # a saga step's fact, never the answer to the request that started it
    cart_id: str
    order_id: str
    at: datetime


@message
class OrderForgotten(Event):
    settles = False
    buyer_id: str
    order_id: str


# --- state ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ask:
    """The newest request the cart made of inventory for one reservation, and the newest answer applied."""

    seq: int
    quantity: int  # the total asked for (0: a release)
    answered: int = 0  # the seq of the newest answer applied (a release needs none)


@dataclass(frozen=True)
class Cart:
    cart_id: str | None = None
    buyer_id: str = ""
    status: str = ACTIVE
    items: dict = field(default_factory=dict)  # product_id -> Item (quantity 0 while first requested)
    expires_at: datetime | None = None
    created_at: datetime | None = None
    order_id: str | None = None
    version: int = 0
    # Plain (immutable) defaults, not factories: a recovery snapshot taken before these fields existed
    # unpickles without them and falls back on the class attribute.
    sequence: int = 0  # the newest seq stamped; cart-wide, so a re-added product's reservation goes on counting
    asks: Map = Map()  # reservation id -> Ask
    requests: Ids = Ids()  # ids of the buyer's add, change and remove requests this cart applied
    earlier: Ids = Ids()  # and those the cart before it applied: a late one must not land in this cart
    orders: Ids = Ids()  # the orders the buyer's checkouts made, this cart's and every earlier one's
    gives_up_at: datetime | None = None  # in CHECKOUT: when the cart stops waiting for its order

    def __setstate__(self, state: dict) -> None:
        """A snapshot of a build before `Ids` holds pyrsistent's sets and map: taken into `Ids` and `Map`."""
        self.__dict__.update({name: _current(value) for name, value in state.items()})

    def applied(self, request_id: str) -> bool:
        """Whether this cart, or the one before it, already did what the buyer's request asked."""
        return request_id in self.requests or request_id in self.earlier

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items.values() if i.item_id == item_id and i.quantity > 0), None)

    def by_reservation(self, reservation_id: str) -> Item | None:
        return next((i for i in self.items.values() if i.reservation_id == reservation_id), None)

    @property
    def currency(self) -> str | None:
        return next((i.currency for i in self.items.values()), None)

    @property
    def total_cents(self) -> int:
        return sum(i.price_cents * i.quantity for i in self.items.values())


def _current(value):
    """A field's value as this build keeps it (pyrsistent's sets and maps as `Ids` and `Map`)."""
    if isinstance(value, PSet):
        return Ids(value)
    if isinstance(value, PMap):
        return Map(dict(value))
    return value


def initial_state() -> Cart:
    return Cart()


def decide(state: Cart, command: Command) -> list[Event] | Rejection:
    match command:
        case AddCartItem() | ChangeCartItem() | RemoveCartItem() if state.applied(command.command_id):
            return []  # a redelivered request: doing it again would add twice or undo a later change
        case AddCartItem() | ChangeCartItem() | RemoveCartItem() if state.created_at and command.now < state.created_at:
            return []  # made before this cart began: a late redelivery meant for an earlier cart
        case AddCartItem() if not 1 <= command.quantity:
            return invalid("quantity must be at least 1")
        case AddCartItem() if state.cart_id is None or state.status in ENDED:
            cart_id = derived_id(command.command_id, "cart")
            fresh = Cart(cart_id=cart_id, buyer_id=command.buyer_id)
            return [CartCreated(cart_id=cart_id, buyer_id=command.buyer_id, created_at=command.now),
                    *_request_add(fresh, command)]
        case AddCartItem() | ChangeCartItem() | RemoveCartItem() if state.status != ACTIVE:
            return Rejection("invalid_transition", f"the cart is {state.status}", 409, {"status": state.status})
        case AddCartItem() if state.currency not in (None, command.currency):
            return Rejection("currency_mismatch", f"this cart is in {state.currency}", 409,
                             {"cartCurrency": state.currency})
        case AddCartItem():
            return _request_add(state, command)
        case ChangeCartItem() if state.item(command.item_id) is None:
            return not_found("cart item")
        case ChangeCartItem() if command.quantity < 1:
            return invalid("quantity must be at least 1; remove the item instead")
        case ChangeCartItem():
            item = state.item(command.item_id)
            return [CartItemRequested(cart_id=state.cart_id, item=item, quantity=command.quantity, mode="set",
                                      reservation_expires_at=_after(command, command.reservation_ttl_s),
                                      expires_at=_after(command, command.cart_ttl_s), seq=state.sequence + 1,
                                      request_id=command.command_id)]
        case RemoveCartItem() if state.item(command.item_id) is None:
            return not_found("cart item")
        case RemoveCartItem():
            item = state.item(command.item_id)
            return [CartItemRemoved(cart_id=state.cart_id, item_id=item.item_id, product_id=item.product_id,
                                    reservation_id=item.reservation_id, quantity=item.quantity, reason="removed",
                                    expires_at=_after(command, command.cart_ttl_s), seq=state.sequence + 1,
                                    request_id=command.command_id)]
        case ConfirmReservation() | RefuseReservation() if _answered(state, command.reservation_id, command.seq):
            return []  # this answer, or a newer one, was applied already
        case LapseReservation() if _asked_since(state, command.reservation_id, command.seq):
            return []  # a newer request is on its way: inventory will hold units for it again
        case ConfirmReservation():
            item = state.by_reservation(command.reservation_id)
            if item is None or state.status != ACTIVE:
                # The cart moved on (the item lapsed or was removed, the cart expired or is checked out):
                # inventory's own expiry or release returns the units. The buyer's request still gets an
                # answer: this step is the one that would have given it.
                return Rejection("cart_changed", "the cart changed before the units were reserved; they go back",
                                 409, {"status": state.status})
            return [CartItemConfirmed(cart_id=state.cart_id, item_id=item.item_id, product_id=item.product_id,
                                      quantity=command.quantity, seq=command.seq)]
        case RefuseReservation():
            item = state.by_reservation(command.reservation_id)
            if item is None:
                return []
            return [CartItemRefused(cart_id=state.cart_id, item_id=item.item_id, product_id=item.product_id,
                                    seq=command.seq)]
        case LapseReservation():
            item = state.by_reservation(command.reservation_id)
            if item is None or state.status != ACTIVE:
                return []
            return [CartItemRemoved(cart_id=state.cart_id, item_id=item.item_id, product_id=item.product_id,
                                    reservation_id=item.reservation_id, quantity=item.quantity,
                                    reason="reservation_expired", expires_at=None, seq=command.seq)]
        case ForgetOrder() if command.order_id in state.orders and command.order_id != state.order_id:
            return [OrderForgotten(buyer_id=command.buyer_id, order_id=command.order_id)]
        case ForgetOrder():
            return []
        case Checkout() if command.order_id in state.orders:
            return []  # a redelivered checkout: its order exists, and a newer cart must not go into it
        case Checkout() if state.status == CHECKOUT:
            return Rejection("invalid_transition", "this cart is already being checked out", 409,
                             {"orderId": state.order_id})
        case Checkout() if state.cart_id is None or state.status != ACTIVE or not _held(state):
            return Rejection("empty_cart", "the cart has no items", 409)
        case Checkout() if (gone := _unlisted(state, command.listings)):
            return Rejection("product_unavailable", "an item is no longer for sale: remove it to check out", 409,
                             {"productIds": gone})
        case Checkout() if (changes := _repriced(state, command.listings)):
            return [CartItemsRepriced(cart_id=state.cart_id, changes=changes)]
        case Checkout():
            return [CartCheckedOut(cart_id=state.cart_id, buyer_id=state.buyer_id, order_id=command.order_id,
                                   payment_id=command.payment_id, items=_held(state),
                                   allocation_ttl_s=command.allocation_ttl_s, fee_bps=command.fee_bps,
                                   gives_up_at=_after(command, command.allocation_ttl_s) + CHECKOUT_GRACE)]
        case CloseCart() if state.cart_id != command.cart_id or state.status != CHECKOUT:
            return []
        case CloseCart() if command.status == COMPLETED:
            return [CartCompleted(cart_id=state.cart_id, order_id=command.order_id, at=command.now)]
        case CloseCart():
            return [CartAbandoned(cart_id=state.cart_id, buyer_id=state.buyer_id, status=ABANDONED,
                                  items=_held(state), at=command.now, seq=state.sequence + 1)]
        case Expire() if state.status == ACTIVE and state.expires_at and state.expires_at <= command.now:
            return [CartAbandoned(cart_id=state.cart_id, buyer_id=state.buyer_id, status=EXPIRED,
                                  items=_held(state), at=command.now, seq=state.sequence + 1)]
        case Expire() if state.status == CHECKOUT and state.gives_up_at and state.gives_up_at <= command.now:
            # The order never closed the cart (its PlaceOrder dead-lettered, or the order's answer lost):
            # the buyer may shop again. Nothing to release here: the soft holds lapsed long ago, and what
            # the order allocated is the order's to release when it is told to cancel.
            return [CartAbandoned(cart_id=state.cart_id, buyer_id=state.buyer_id, status=ABANDONED, items=(),
                                  at=command.now, seq=state.sequence + 1, order_id=state.order_id)]
        case Expire():
            return []
    return invalid(f"carts do not handle {type(command).__name__}")


def _held(state: Cart) -> tuple[Item, ...]:
    """The items that hold units (an item shows only once its reservation is confirmed)."""
    return tuple(i for i in state.items.values() if i.quantity > 0)


def _unlisted(state: Cart, listings: tuple[Listing, ...]) -> list[str]:
    """Held products the catalog no longer offers (a product the listings do not name is not checked)."""
    listed = {entry.product_id: entry for entry in listings}
    return [i.product_id for i in _held(state) if i.product_id in listed and not listed[i.product_id].active]


def _repriced(state: Cart, listings: tuple[Listing, ...]) -> tuple[Repriced, ...]:
    listed = {entry.product_id: entry for entry in listings}
    return tuple(Repriced(i.product_id, i.price_cents, listed[i.product_id].price_cents, listed[i.product_id].currency)
                 for i in _held(state) if i.product_id in listed
                 and (listed[i.product_id].price_cents, listed[i.product_id].currency) != (i.price_cents, i.currency))


def _answered(state: Cart, reservation_id: str, seq: int) -> bool:
    """Whether an answer to request `seq` is old news: it, or a newer one, was applied (or released)."""
    ask = state.asks.get(reservation_id)
    return ask is not None and 0 < seq <= ask.answered


def _asked_since(state: Cart, reservation_id: str, seq: int) -> bool:
    """Whether the cart asked for this reservation after the request `seq` answered."""
    ask = state.asks.get(reservation_id)
    return ask is not None and 0 < seq < ask.seq


def _request_add(state: Cart, command: AddCartItem) -> list[Event]:
    """Ask for the item's total, not the increment, so a redelivered ask holds the same units."""
    held = state.items.get(command.product_id)
    item = held or Item(item_id=derived_id(state.cart_id, f"item/{command.product_id}"),
                        product_id=command.product_id, sku=command.sku, seller_id=command.seller_id, quantity=0,
                        price_cents=command.price_cents, currency=command.currency,
                        reservation_id=derived_id(state.cart_id, f"reservation/{command.product_id}"))
    wanted = (_asking(state, held) if held else 0) + command.quantity
    return [CartItemRequested(cart_id=state.cart_id, item=item, quantity=wanted, mode="set",
                              reservation_expires_at=_after(command, command.reservation_ttl_s),
                              expires_at=_after(command, command.cart_ttl_s), seq=state.sequence + 1,
                              request_id=command.command_id)]


def _asking(state: Cart, item: Item) -> int:
    """What the item's reservation holds, or will once inventory answers the newest request."""
    ask = state.asks.get(item.reservation_id)
    return ask.quantity if ask is not None and ask.answered < ask.seq else item.quantity


def _after(command: Command, seconds: int) -> datetime:
    """TTLs come as durations on the command, so a retried request is the same request."""
    return command.now + timedelta(seconds=seconds)


def evolve(state: Cart, event: Event) -> Cart:
    match event:
        case CartCreated():
            new = Cart(cart_id=event.cart_id, buyer_id=event.buyer_id, created_at=event.created_at,
                       version=state.version, earlier=state.requests, orders=state.orders)
        case CartItemRequested():
            items = state.items if event.item.product_id in state.items else {
                **state.items, event.item.product_id: event.item}
            new = _asked(replace(state, items=items, expires_at=event.expires_at), event.item.reservation_id,
                         event.seq, event.quantity, event.request_id)
        case CartItemConfirmed():
            item = replace(state.items[event.product_id], quantity=event.quantity)
            new = _answer(replace(state, items={**state.items, event.product_id: item}), item.reservation_id,
                          event.seq)
        case CartItemRefused():
            held = state.items[event.product_id]
            waiting = _asked_since(state, held.reservation_id, event.seq)  # a newer request may still hold units
            items = state.items if held.quantity > 0 or waiting else {
                k: v for k, v in state.items.items() if k != event.product_id}
            new = _answer(replace(state, items=items), held.reservation_id, event.seq)
        case CartItemRemoved():
            new = replace(state, items={k: v for k, v in state.items.items() if k != event.product_id},
                          expires_at=event.expires_at or state.expires_at)
            # Released or lapsed, the reservation starts afresh: an answer to anything asked before is moot.
            new = _asked(new, event.reservation_id, event.seq, 0, event.request_id)
            new = _answer(new, event.reservation_id, _newest(new, event.reservation_id))
        case CartAbandoned():
            new = replace(state, status=event.status, sequence=max(state.sequence, event.seq))
        case CartCheckedOut():
            new = replace(state, status=CHECKOUT, order_id=event.order_id, orders=state.orders.add(event.order_id),
                          gives_up_at=event.gives_up_at)
        case CartCompleted():
            new = replace(state, status=COMPLETED)
        case OrderForgotten():
            new = replace(state, orders=state.orders.discard(event.order_id))
        case CartItemsRepriced():
            prices = {c.product_id: c for c in event.changes}
            new = replace(state, items={pid: replace(i, price_cents=prices[pid].price_cents,
                                                     currency=prices[pid].currency) if pid in prices else i
                                        for pid, i in state.items.items()})
        case _:
            new = state
    return replace(new, version=state.version + 1)


def _newest(state: Cart, reservation_id: str) -> int:
    ask = state.asks.get(reservation_id)
    return ask.seq if ask is not None else 0


def _asked(state: Cart, reservation_id: str, seq: int, quantity: int, request_id: str) -> Cart:
    """The cart asked inventory for `quantity` (request `seq`), for the buyer's request `request_id`."""
    requests = state.requests.add(request_id) if request_id else state.requests
    if seq <= _newest(state, reservation_id):  # unsequenced (an older record) or a lapse: no new ask
        return replace(state, requests=requests)
    answered = state.asks[reservation_id].answered if reservation_id in state.asks else 0
    return replace(state, requests=requests, sequence=max(state.sequence, seq),
                   asks=state.asks.set(reservation_id, Ask(seq, quantity, answered)))


def _answer(state: Cart, reservation_id: str, seq: int) -> Cart:
    """Inventory's answer to request `seq` (or a release, which needs none) was applied."""
    ask = state.asks.get(reservation_id)
    if ask is None or seq <= ask.answered:
        return state
    return replace(state, asks=state.asks.set(reservation_id, replace(ask, answered=seq)))


def deadline(state: Cart) -> datetime | None:
    """An idle cart's expiry, or when a checkout stops waiting for its order."""
    if state.cart_id is None:
        return None
    if state.status == CHECKOUT:
        return state.gives_up_at
    return state.expires_at if state.status == ACTIVE else None


def view(state: Cart) -> dict | None:
    if state.cart_id is None:
        return None
    items = _held(state)
    return {"cartId": state.cart_id, "buyerId": state.buyer_id, "status": state.status,
            "items": [{"itemId": i.item_id, "productId": i.product_id, "sku": i.sku, "sellerId": i.seller_id,
                       "quantity": i.quantity, "priceCents": i.price_cents, "currency": i.currency,
                       "reservationId": i.reservation_id} for i in items],
            "totalCents": sum(i.price_cents * i.quantity for i in items),
            "currency": state.currency,
            "expiresAt": state.expires_at.isoformat() if state.expires_at else None,
            "orderId": state.order_id, "version": state.version}


AGGREGATE = Aggregate("cart", initial_state, decide, evolve, view, deadline=deadline)
