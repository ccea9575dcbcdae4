"""Inventory: one product's units on hand and who holds them.

Units are always in exactly one bucket: available, reserved (soft, a cart's),
or allocated (hard, an order's); `available + reserved + allocated = total`.
A confirmed sale takes its units out of `allocated` and out of `total` and
counts them in `sold`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from state.common import (Aggregate, Command, Event, Rejection, check, forbidden, invalid, may_manage,
                          message, not_found)

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
    product_id: str
    seller_id: str
    available: int
    threshold: int


# --- state ----------------------------------------------------------------------------------------

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
    reservations: dict = field(default_factory=dict)

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
    return invalid(f"inventory does not handle {type(command).__name__}")


def evolve(state: Stock, event: Event) -> Stock:
    match event:
        case StockCreated():
            new = Stock(product_id=event.product_id, seller_id=event.seller_id, sku=event.sku,
                        low_stock_threshold=event.low_stock_threshold)
        case StockUpdated():
            new = replace(state, total=event.total_quantity, low_stock_threshold=event.low_stock_threshold)
        case _:
            new = state
    new = replace(new, version=state.version + 1)
    _check_levels(new)
    return new


def _check_levels(stock: Stock) -> None:
    check(stock.reserved >= 0 and stock.allocated >= 0 and stock.sold >= 0, "quantities never negative")
    check(stock.available >= 0, "available never negative")
    check(stock.available + stock.reserved + stock.allocated == stock.total,
          "available + reserved + allocated = total")


def view(state: Stock) -> dict | None:
    if state.product_id is None:
        return None
    return {"productId": state.product_id, "sellerId": state.seller_id, "sku": state.sku,
            "totalQuantity": state.total, "availableQuantity": state.available,
            "reservedQuantity": state.reserved, "allocatedQuantity": state.allocated,
            "soldQuantity": state.sold, "lowStockThreshold": state.low_stock_threshold,
            "version": state.version}


def deadline(state: Stock) -> datetime | None:
    """The earliest reservation expiry this product holds."""
    return min((r.expires_at for r in state.reservations.values()), default=None)


AGGREGATE = Aggregate("inventory", initial_state, decide, evolve, view, deadline=deadline)
