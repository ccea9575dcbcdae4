"""Inventory: one product's units on hand and who holds them.

Units are always in exactly one bucket: available, reserved (soft, a cart's),
or allocated (hard, an order's); `available + reserved + allocated = total`.
A confirmed sale takes its units out of `allocated` and out of `total` and
counts them in `sold`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pyrsistent import PMap, pmap, pset

from state.common import (Aggregate, Command, Event, Expire, Rejection, Stamp, check, forbidden, invalid,
                          may_manage, message, not_found)

DEFAULT_LOW_STOCK_THRESHOLD = 5


# --- commands ---------------------------------------------------------------------------------

@message
class CreateStock(Command):
    product_id: str
    seller_id: str
    sku: str


@message
class SetStock(Command):
    product_id: str
    total_quantity: int
    expected_version: int | None = None
    low_stock_threshold: int | None = None


@message
class ReserveStock(Command):
    """Hold units for a cart (soft). `mode="add"` adds to what the reservation holds, "set" replaces it."""

    product_id: str
    reservation_id: str
    cart_id: str
    buyer_id: str
    quantity: int
    mode: str = "add"
    expires_at: datetime


@message
class ReleaseReservation(Command):
    product_id: str
    reservation_id: str
    reason: str = "released"


@message
class AllocateStock(Command):
    """Turn a cart's soft reservation into an order's hard allocation (or take fresh units if it lapsed)."""

    product_id: str
    reservation_id: str
    order_id: str
    quantity: int
    expires_at: datetime


@message
class ConfirmSale(Command):
    product_id: str
    reservation_id: str
    order_id: str
    quantity: int


# --- events -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Levels:
    """The quantities after an event, for dashboards and views."""

    total: int
    available: int
    reserved: int
    allocated: int
    sold: int


@message
class StockCreated(Event):
    product_id: str
    seller_id: str
    sku: str
    low_stock_threshold: int


@message
class StockUpdated(Event):
    product_id: str
    total_quantity: int
    low_stock_threshold: int
    levels: Levels


@message
class LowStockAlert(Event):
    settles = False  # rides along with the change that caused it
    product_id: str
    seller_id: str
    available: int
    threshold: int


@message
class StockReserved(Event):
    settles = False  # the cart that asked finishes the request
    product_id: str
    reservation_id: str
    cart_id: str
    buyer_id: str
    quantity: int
    expires_at: datetime
    available: int


@message
class ReservationRefused(Event):
    """A business failure is data: the reservation asked for more than there is."""

    product_id: str
    reservation_id: str
    cart_id: str
    buyer_id: str
    requested: int
    available: int

    def rejection(self) -> Rejection:
        return Rejection("insufficient_stock", f"only {self.available} available", 409,
                         {"available": self.available})


@message
class ReservationReleased(Event):
    settles = False
    product_id: str
    reservation_id: str
    quantity: int
    kind: str
    reason: str
    available: int


@message
class ReservationExpired(Event):
    settles = False
    product_id: str
    reservation_id: str
    holder_id: str
    buyer_id: str
    quantity: int
    kind: str
    available: int


@message
class StockAllocated(Event):
    settles = False
    product_id: str
    reservation_id: str
    order_id: str
    quantity: int
    expires_at: datetime
    available: int


@message
class AllocationRefused(Event):
    settles = False  # the order decides what the buyer is told
    product_id: str
    reservation_id: str
    order_id: str
    requested: int
    available: int


@message
class ReservationFulfilled(Event):
    settles = False
    product_id: str
    reservation_id: str
    order_id: str
    quantity: int


@message
class SaleShortfall(Event):
    """A paid order whose hold had lapsed and whose units are gone: never hidden, for a human to resolve."""

    settles = False
    product_id: str
    seller_id: str
    order_id: str
    quantity: int
    available: int


# --- state ----------------------------------------------------------------------------------------

SOFT, HARD = "SOFT", "HARD"


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    holder_id: str  # the cart (soft) or the order (hard)
    quantity: int
    kind: str
    expires_at: datetime
    buyer_id: str = ""


@dataclass(frozen=True)
class Stock:
    product_id: str | None = None
    seller_id: str = ""
    sku: str = ""
    total: int = 0
    reserved: int = 0
    allocated: int = 0
    sold: int = 0
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD
    version: int = 0
    # Persistent maps: a change copies O(log n), not the whole map, so a SKU held by many carts stays fast.
    reservations: PMap = field(default_factory=pmap)  # reservation id -> Reservation
    expiring: PMap = field(default_factory=pmap)  # whole second -> ids of the reservations expiring in it

    @property
    def available(self) -> int:
        return self.total - self.reserved - self.allocated

    def levels(self) -> Levels:
        return Levels(self.total, self.available, self.reserved, self.allocated, self.sold)


def initial_state() -> Stock:
    return Stock()


def _levels_after(state: Stock, **changes) -> Levels:
    return replace(state, **changes).levels()


def _low_stock(state: Stock, after: Levels, threshold: int) -> list[Event]:
    """An alert when availability falls to or below the seller's threshold (crossing only)."""
    if after.available <= threshold < state.available:
        return [LowStockAlert(product_id=state.product_id, seller_id=state.seller_id,
                              available=after.available, threshold=threshold)]
    return []


def decide(state: Stock, command: Command) -> list[Event] | Rejection:
    match command:
        case CreateStock() if state.product_id is not None:
            return []
        case CreateStock():
            return [StockCreated(product_id=command.product_id, seller_id=command.seller_id, sku=command.sku,
                                 low_stock_threshold=DEFAULT_LOW_STOCK_THRESHOLD)]
        case _ if state.product_id is None:
            return not_found("stock")
        case SetStock() if not may_manage(command.actor, state.seller_id):
            return forbidden("only the product's seller or an admin may set its stock")
        case SetStock() if command.expected_version is not None and command.expected_version != state.version:
            return Rejection("version_conflict", "stock changed since you read it", 409,
                             {"currentVersion": state.version})
        case SetStock() if command.total_quantity < 0:
            return invalid("totalQuantity must not be negative")
        case SetStock() if command.low_stock_threshold is not None and command.low_stock_threshold < 0:
            return invalid("lowStockThreshold must not be negative")
        case SetStock() if command.total_quantity < state.reserved + state.allocated:
            return Rejection("below_committed",
                             "totalQuantity cannot fall below the units reserved and allocated", 409,
                             {"reservedQuantity": state.reserved, "allocatedQuantity": state.allocated})
        case SetStock():
            threshold = (command.low_stock_threshold if command.low_stock_threshold is not None
                         else state.low_stock_threshold)
            after = _levels_after(state, total=command.total_quantity)
            return [StockUpdated(product_id=state.product_id, total_quantity=command.total_quantity,
                                 low_stock_threshold=threshold, levels=after),
                    *_low_stock(state, after, threshold)]
        case ReserveStock():
            return _reserve(state, command)
        case ReleaseReservation():
            held = state.reservations.get(command.reservation_id)
            if held is None:
                return []  # already released, expired or sold: nothing to give back
            return [ReservationReleased(product_id=state.product_id, reservation_id=held.reservation_id,
                                        quantity=held.quantity, kind=held.kind, reason=command.reason,
                                        available=state.available + held.quantity)]
        case AllocateStock():
            return _allocate(state, command)
        case ConfirmSale():
            held = state.reservations.get(command.reservation_id)
            if held is not None and held.kind == HARD and held.holder_id == command.order_id:
                return [ReservationFulfilled(product_id=state.product_id, reservation_id=held.reservation_id,
                                             order_id=command.order_id, quantity=held.quantity)]
            if state.available >= command.quantity > 0:  # the hold lapsed just before payment: sell from stock
                return [ReservationFulfilled(product_id=state.product_id, reservation_id=command.reservation_id,
                                             order_id=command.order_id, quantity=command.quantity)]
            return [SaleShortfall(product_id=state.product_id, seller_id=state.seller_id,
                                  order_id=command.order_id, quantity=command.quantity,
                                  available=state.available)]
        case Expire():
            due = [state.reservations[i] for second in state.expiring if second <= command.now.timestamp()
                   for i in state.expiring[second]]
            return [ReservationExpired(product_id=state.product_id, reservation_id=r.reservation_id,
                                       holder_id=r.holder_id, buyer_id=r.buyer_id, quantity=r.quantity,
                                       kind=r.kind,
                                       available=state.available + r.quantity)
                    for r in sorted(due, key=lambda r: (r.expires_at, r.reservation_id))
                    if r.expires_at <= command.now]
    return invalid(f"inventory does not handle {type(command).__name__}")


def _reserve(state: Stock, command: ReserveStock) -> list[Event] | Rejection:
    held = state.reservations.get(command.reservation_id)
    if held is not None and held.kind == HARD:
        return Rejection("invalid_transition", "these units are already allocated to an order", 409)
    if command.mode not in ("add", "set"):
        return invalid("mode must be add or set")
    held_quantity = held.quantity if held else 0
    wanted = held_quantity + command.quantity if command.mode == "add" else command.quantity
    if wanted <= 0 or command.quantity <= 0:
        return invalid("quantity must be at least 1")
    can_have = state.available + held_quantity
    if wanted > can_have:
        return [ReservationRefused(product_id=state.product_id, reservation_id=command.reservation_id,
                                   cart_id=command.cart_id, buyer_id=command.buyer_id, requested=wanted,
                                   available=can_have)]
    after = _levels_after(state, reserved=state.reserved - held_quantity + wanted)
    return [StockReserved(product_id=state.product_id, reservation_id=command.reservation_id,
                          cart_id=command.cart_id, buyer_id=command.buyer_id, quantity=wanted,
                          expires_at=command.expires_at, available=after.available),
            *_low_stock(state, after, state.low_stock_threshold)]


def _allocate(state: Stock, command: AllocateStock) -> list[Event] | Rejection:
    held = state.reservations.get(command.reservation_id)
    if held is not None and held.kind == HARD:
        if held.holder_id == command.order_id:
            return []  # allocated already: a redelivered saga step
        return Rejection("invalid_transition", "these units are allocated to another order", 409)
    held_quantity = held.quantity if held else 0
    can_have = state.available + held_quantity
    if command.quantity <= 0 or command.quantity > can_have:
        return [AllocationRefused(product_id=state.product_id, reservation_id=command.reservation_id,
                                  order_id=command.order_id, requested=command.quantity, available=can_have)]
    after = _levels_after(state, reserved=state.reserved - held_quantity,
                          allocated=state.allocated + command.quantity)
    return [StockAllocated(product_id=state.product_id, reservation_id=command.reservation_id,
                           order_id=command.order_id, quantity=command.quantity, expires_at=command.expires_at,
                           available=after.available),
            *_low_stock(state, after, state.low_stock_threshold)]


def evolve(state: Stock, event: Event) -> Stock:
    match event:
        case StockCreated():
            new = Stock(product_id=event.product_id, seller_id=event.seller_id, sku=event.sku,
                        low_stock_threshold=event.low_stock_threshold)
        case StockUpdated():
            new = replace(state, total=event.total_quantity, low_stock_threshold=event.low_stock_threshold)
        case StockReserved():
            held = state.reservations.get(event.reservation_id)
            new = replace(_holding(state, Reservation(event.reservation_id, event.cart_id, event.quantity, SOFT,
                                                      event.expires_at, event.buyer_id)),
                          reserved=state.reserved - (held.quantity if held else 0) + event.quantity)
        case ReservationReleased() | ReservationExpired():
            new = _without(state, event.reservation_id)
        case StockAllocated():
            held = state.reservations.get(event.reservation_id)
            new = replace(_holding(state, Reservation(event.reservation_id, event.order_id, event.quantity, HARD,
                                                      event.expires_at, held.buyer_id if held else "")),
                          reserved=state.reserved - (held.quantity if held else 0),
                          allocated=state.allocated + event.quantity)
        case ReservationFulfilled():
            new = replace(_without(state, event.reservation_id), total=state.total - event.quantity,
                          sold=state.sold + event.quantity)
        case _:
            new = state
    new = replace(new, version=state.version + 1)
    _check_levels(new)
    return new


def _second(at: datetime) -> int:
    return math.floor(at.timestamp())


def _unindexed(expiring: PMap, held: Reservation) -> PMap:
    second = _second(held.expires_at)
    ids = expiring[second].discard(held.reservation_id)
    return expiring.set(second, ids) if ids else expiring.discard(second)


def _holding(state: Stock, reservation: Reservation) -> Stock:
    """`reservation` held (replacing any earlier one of its id), indexed by the second it expires in."""
    held = state.reservations.get(reservation.reservation_id)
    expiring = _unindexed(state.expiring, held) if held else state.expiring
    second = _second(reservation.expires_at)
    expiring = expiring.set(second, expiring.get(second, pset()).add(reservation.reservation_id))
    return replace(state, reservations=state.reservations.set(reservation.reservation_id, reservation),
                   expiring=expiring)


def _without(state: Stock, reservation_id: str) -> Stock:
    """The reservation's units go back to available (or, for a sale, the caller moves them on)."""
    held = state.reservations.get(reservation_id)
    if held is None:
        return state
    rest = replace(state, reservations=state.reservations.discard(reservation_id),
                   expiring=_unindexed(state.expiring, held))
    if held.kind == SOFT:
        return replace(rest, reserved=state.reserved - held.quantity)
    return replace(rest, allocated=state.allocated - held.quantity)


def _check_levels(stock: Stock) -> None:
    """The invariants checked on every change, in constant time (`audit` adds the full recount)."""
    check(stock.reserved >= 0 and stock.allocated >= 0 and stock.sold >= 0, "quantities never negative")
    check(stock.available >= 0, "available never negative")
    check(stock.available + stock.reserved + stock.allocated == stock.total,
          "available + reserved + allocated = total")


def audit(stock: Stock) -> None:
    """Recount everything from the reservations held (O(n): for tests and audits, not every command)."""
    _check_levels(stock)
    check(stock.reserved == sum(r.quantity for r in stock.reservations.values() if r.kind == SOFT),
          "reserved = the soft reservations held")
    check(stock.allocated == sum(r.quantity for r in stock.reservations.values() if r.kind == HARD),
          "allocated = the hard allocations held")
    check(sorted(i for ids in stock.expiring.values() for i in ids) == sorted(stock.reservations),
          "every reservation indexed by its expiry, once")


def view(state: Stock) -> dict | None:
    if state.product_id is None:
        return None
    return {"productId": state.product_id, "sellerId": state.seller_id, "sku": state.sku,
            "totalQuantity": state.total, "availableQuantity": state.available,
            "reservedQuantity": state.reserved, "allocatedQuantity": state.allocated,
            "soldQuantity": state.sold, "lowStockThreshold": state.low_stock_threshold,
            "version": state.version}


def deadline(state: Stock) -> datetime | None:
    """When the next reservations lapse: the end of the second holding the earliest expiry.

    Whole seconds keep this cheap however many carts hold the product (a flash sale puts
    thousands of expiries in one second); a reservation lapses at most a second late.
    """
    if not state.expiring:
        return None
    return datetime.fromtimestamp(min(state.expiring) + 1, tz=UTC)


def react(event: Event, state: Stock, stamp: Stamp) -> list:
    """Saga steps: tell the cart (by buyer) or the order what became of its units."""
    from state import cart, order
    match event:
        case StockReserved():
            return [("cart", event.buyer_id, cart.ConfirmReservation(
                command_id=stamp.id("confirm"), now=stamp.now, buyer_id=event.buyer_id,
                reservation_id=event.reservation_id, quantity=event.quantity))]
        case ReservationRefused():
            return [("cart", event.buyer_id, cart.RefuseReservation(
                command_id=stamp.id("refuse"), now=stamp.now, buyer_id=event.buyer_id,
                reservation_id=event.reservation_id))]
        case ReservationExpired() if event.kind == SOFT:
            return [("cart", event.buyer_id, cart.LapseReservation(
                command_id=stamp.id("lapse"), now=stamp.now, buyer_id=event.buyer_id,
                reservation_id=event.reservation_id))]
        case ReservationExpired():  # an unpaid order's hold ran out
            return [("order", event.holder_id, order.CancelOrder(
                command_id=stamp.id("cancel-order"), now=stamp.now, order_id=event.holder_id,
                reason="payment_timeout"))]
        case StockAllocated():
            return [("order", event.order_id, order.ConfirmAllocation(
                command_id=stamp.id("allocated"), now=stamp.now, order_id=event.order_id,
                reservation_id=event.reservation_id))]
        case SaleShortfall():  # the buyer paid for units that are gone: the order refunds them
            return [("order", event.order_id, order.RecordShortfall(
                command_id=stamp.id("shortfall"), now=stamp.now, order_id=event.order_id,
                product_id=event.product_id, quantity=event.quantity))]
        case AllocationRefused():
            return [("order", event.order_id, order.FailAllocation(
                command_id=stamp.id("allocation-failed"), now=stamp.now, order_id=event.order_id,
                reservation_id=event.reservation_id, product_id=event.product_id, available=event.available))]
    return []


AGGREGATE = Aggregate("inventory", initial_state, decide, evolve, view, react=react, deadline=deadline)
