"""Orders, keyed by order id, with one shipment per seller inside.

An order is placed PENDING and provisional by checkout, holds hard
allocations while the buyer pays, is CONFIRMED by the captured payment (or
CANCELLED by a failed payment, a failed allocation or an allocation that
expired), and then follows its shipments: the order's status is always
derived from them (`rolled_up`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from state.common import (Aggregate, Command, Event, Expire, Rejection, derived_id,
                          forbidden, invalid, may_manage, message, not_found, replace)

PENDING, CONFIRMED, PROCESSING, SHIPPED, DELIVERED, CANCELLED = (
    "PENDING", "CONFIRMED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED")

# An unpaid order is cancelled by inventory when its hard holds lapse ("payment_timeout"). Should that
# never arrive (a saga step dead-lettered or lost), the order cancels itself this long after.
SAGA_GRACE = timedelta(seconds=60)
# Stripe retries a webhook for up to three days: a cancelled order that had a PaymentIntent stays live that
# long, so a capture reported late still finds it and is refunded.
LATE_PAYMENT_WINDOW = timedelta(days=3)


@dataclass(frozen=True)
class OrderItem:
    item_id: str
    product_id: str
    sku: str
    seller_id: str
    quantity: int
    price_cents: int
    currency: str
    reservation_id: str


@dataclass(frozen=True)
class Shipment:
    shipment_id: str
    seller_id: str
    status: str = PENDING
    item_ids: tuple[str, ...] = ()
    tracking_number: str | None = None
    carrier: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


# --- commands ---------------------------------------------------------------------------------

@message
class PlaceOrder(Command):
    order_id: str
    buyer_id: str
    cart_id: str
    payment_id: str
    items: tuple[OrderItem, ...]
    allocation_ttl_s: int
    fee_bps: int


@message
class ConfirmAllocation(Command):
    order_id: str
    reservation_id: str


@message
class FailAllocation(Command):
    order_id: str
    reservation_id: str
    product_id: str
    available: int


@message
class AttachPayment(Command):
    """From the payments worker, after Stripe created the PaymentIntent for this order. Its client
    secret stays out of the log: the API fetches it from Stripe for the buyer."""

    order_id: str
    payment_id: str
    intent_id: str


@message
class ConfirmOrder(Command):
    """From the payment: captured."""

    order_id: str
    payment_id: str


@message
class RecordShortfall(Command):
    """From inventory: a paid item's units were gone when the sale was confirmed (its hold had lapsed)."""

    order_id: str
    product_id: str
    quantity: int


@message
class CancelOrder(Command):
    order_id: str
    reason: str


@message
class ProcessShipment(Command):
    order_id: str
    shipment_id: str


@message
class ShipShipment(Command):
    order_id: str
    shipment_id: str
    tracking_number: str
    carrier: str


@message
class DeliverShipment(Command):
    order_id: str
    shipment_id: str


# --- events -------------------------------------------------------------------------------------

@message
class OrderPlaced(Event):
    settles = False  # the buyer hears back once every item is allocated
    order_id: str
    buyer_id: str
    cart_id: str
    payment_id: str
    items: tuple[OrderItem, ...]
    shipments: tuple[Shipment, ...]
    total_cents: int
    currency: str
    fee_bps: int
    expires_at: datetime
    created_at: datetime


@message
class ItemAllocated(Event):
    settles = False
    order_id: str
    reservation_id: str


@message
class OrderAllocated(Event):
    """Every item is held: the order can be paid (the payments worker creates its PaymentIntent)."""

    order_id: str
    payment_id: str = ""
    amount_cents: int = 0
    currency: str = ""


@message
class OrderPaymentAttached(Event):
    order_id: str
    payment_id: str
    intent_id: str


@message
class PaymentIntentUnused(Event):
    """A PaymentIntent the order will not use (it was cancelled meanwhile, or another intent came
    first): the payments worker cancels it at Stripe."""

    order_id: str
    intent_id: str
    reason: str  # "order_cancelled" or "superseded"
    cancel_reason: str | None = None

    def rejection(self) -> Rejection | None:
        return cancelled(self.order_id, self.cancel_reason) if self.reason == "order_cancelled" else None


def cancelled(order_id: str, reason: str | None) -> Rejection:
    """The answer to paying an order that was cancelled."""
    return Rejection("order_cancelled", f"the order was cancelled ({reason})", 409,
                     {"orderId": order_id, "reason": reason})


@message
class OrderConfirmed(Event):
    order_id: str
    payment_id: str
    confirmed_at: datetime


@message
class OrderCancelled(Event):
    order_id: str
    reason: str
    cancelled_at: datetime
    product_id: str | None = None
    available: int | None = None
    intent_id: str | None = None  # the PaymentIntent the payments worker cancels at Stripe

    def rejection(self) -> Rejection | None:
        if self.reason == "allocation_failed":
            return Rejection("insufficient_stock", "an item is no longer available; the order was cancelled",
                             409, {"productId": self.product_id, "available": self.available,
                                   "orderId": self.order_id})
        return None


@message
class PaymentAfterCancellation(Event):
    """Money arrived for an order already cancelled: never dropped, flagged for refund."""

    order_id: str
    payment_id: str
    at: datetime


@message
class OrderShortfall(Event):
    """Part of a paid order cannot be delivered: its share of the money goes back to the buyer."""

    settles = False  # a saga step's fact, never the answer to the request that started it
    order_id: str
    payment_id: str
    product_id: str
    seller_id: str
    quantity: int
    amount_cents: int
    at: datetime


@message
class ShipmentStatusUpdated(Event):
    """A shipment moved; `order_status` is the order's status rolled up after the move."""

    order_id: str
    shipment_id: str
    seller_id: str
    status: str
    order_status: str
    tracking_number: str | None
    carrier: str | None
    at: datetime


# --- state ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Order:
    order_id: str | None = None
    buyer_id: str = ""
    cart_id: str = ""
    payment_id: str = ""
    status: str = PENDING
    provisional: bool = True
    items: tuple[OrderItem, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    allocated: frozenset = frozenset()
    allocated_all: bool = False
    total_cents: int = 0
    currency: str = ""
    fee_bps: int = 0
    intent_id: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    confirmed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    shortfalls: tuple[OrderShortfall, ...] = ()
    version: int = 0
    # Plain (immutable) defaults: a recovery snapshot taken before these fields existed unpickles without them.
    unused: frozenset = frozenset()  # PaymentIntents declared unused (the payments worker cancels each once)
    paid_late: frozenset = frozenset()  # payments captured after the cancellation (each flagged for refund once)

    def seller_subtotals(self) -> tuple[tuple[str, int], ...]:
        """Each seller's share of the order total, in order of first appearance."""
        totals: dict[str, int] = {}
        for item in self.items:
            totals[item.seller_id] = totals.get(item.seller_id, 0) + item.price_cents * item.quantity
        return tuple(totals.items())


def initial_state() -> Order:
    return Order()


def shipments_for(order_id: str, items: tuple[OrderItem, ...]) -> tuple[Shipment, ...]:
    """One provisional shipment per seller, in order of first appearance."""
    by_seller: dict[str, list[str]] = {}
    for item in items:
        by_seller.setdefault(item.seller_id, []).append(item.item_id)
    return tuple(Shipment(shipment_id=derived_id(order_id, f"shipment/{seller}"), seller_id=seller,
                          item_ids=tuple(ids)) for seller, ids in by_seller.items())


def rolled_up(order: Order) -> str:
    """The order's status from its shipments (see README "Order status")."""
    if order.status in (PENDING, CANCELLED):
        return order.status
    kinds = {s.status for s in order.shipments}
    if kinds == {DELIVERED}:
        return DELIVERED
    if kinds <= {SHIPPED, DELIVERED}:
        return SHIPPED
    if kinds == {PENDING}:
        return CONFIRMED
    return PROCESSING  # any shipment in progress, or some out the door and others not yet


def decide(state: Order, command: Command) -> list[Event] | Rejection:
    match command:
        case PlaceOrder() if state.order_id is not None:
            return []
        case PlaceOrder() if not command.items:
            return Rejection("empty_cart", "the cart has no items", 409)
        case PlaceOrder():
            currencies = {i.currency for i in command.items}
            if len(currencies) != 1:
                return Rejection("currency_mismatch", "an order is paid in one currency", 409)
            return [OrderPlaced(order_id=command.order_id, buyer_id=command.buyer_id, cart_id=command.cart_id,
                                payment_id=command.payment_id, items=tuple(command.items),
                                shipments=shipments_for(command.order_id, tuple(command.items)),
                                total_cents=sum(i.price_cents * i.quantity for i in command.items),
                                currency=currencies.pop(), fee_bps=command.fee_bps,
                                expires_at=command.now + timedelta(seconds=command.allocation_ttl_s),
                                created_at=command.now)]
        case _ if state.order_id is None:
            return not_found("order")
        case ConfirmAllocation() if (state.status != PENDING or command.reservation_id in state.allocated
                                     or command.reservation_id not in {i.reservation_id for i in state.items}):
            return []  # late, repeated or foreign news for an order that has moved on
        case ConfirmAllocation():
            events: list[Event] = [ItemAllocated(order_id=state.order_id, reservation_id=command.reservation_id)]
            if state.allocated | {command.reservation_id} >= {i.reservation_id for i in state.items}:
                events.append(OrderAllocated(order_id=state.order_id, payment_id=state.payment_id,
                                             amount_cents=state.total_cents, currency=state.currency))
            return events
        case FailAllocation() if state.status != PENDING:
            return []
        case FailAllocation():
            return [OrderCancelled(order_id=state.order_id, reason="allocation_failed", cancelled_at=command.now,
                                   product_id=command.product_id, available=command.available,
                                   intent_id=state.intent_id)]
        case AttachPayment() if not may_manage(command.actor, state.buyer_id):
            return forbidden("not this buyer's order")
        case AttachPayment() if state.intent_id == command.intent_id:
            return []
        case AttachPayment() if command.intent_id in state.unused:  # a redelivery: answered as before, once
            return cancelled(state.order_id, state.cancel_reason) if state.status == CANCELLED else []
        case AttachPayment() if state.status == CANCELLED:
            return [PaymentIntentUnused(order_id=state.order_id, intent_id=command.intent_id,
                                        reason="order_cancelled", cancel_reason=state.cancel_reason)]
        case AttachPayment() if state.intent_id is not None:  # the first PaymentIntent stands
            return [PaymentIntentUnused(order_id=state.order_id, intent_id=command.intent_id, reason="superseded")]
        case AttachPayment() if not state.allocated_all:
            return Rejection("not_ready", "the order's items are still being allocated", 409)
        case AttachPayment():
            return [OrderPaymentAttached(order_id=state.order_id, payment_id=command.payment_id,
                                         intent_id=command.intent_id)]
        case ConfirmOrder() if command.payment_id in state.paid_late:
            return []  # flagged for refund already
        case ConfirmOrder() if state.status == CANCELLED:
            return [PaymentAfterCancellation(order_id=state.order_id, payment_id=command.payment_id,
                                             at=command.now)]
        case ConfirmOrder() if state.status != PENDING:
            return []
        case RecordShortfall() if any(s.product_id == command.product_id for s in state.shortfalls):
            return []  # flagged once
        case RecordShortfall() if state.status in (PENDING, CANCELLED):
            return invalid("only a paid order can fall short")
        case RecordShortfall():
            item = next((i for i in state.items if i.product_id == command.product_id), None)
            if item is None:
                return invalid("the order holds no such product")
            quantity = min(command.quantity, item.quantity)
            return [OrderShortfall(order_id=state.order_id, payment_id=state.payment_id,
                                   product_id=item.product_id, seller_id=item.seller_id, quantity=quantity,
                                   amount_cents=item.price_cents * quantity, at=command.now)]
        case ConfirmOrder():
            return [OrderConfirmed(order_id=state.order_id, payment_id=command.payment_id,
                                   confirmed_at=command.now)]
        case ProcessShipment() | ShipShipment() | DeliverShipment():
            return _move_shipment(state, command)
        case CancelOrder() if not may_manage(command.actor, state.buyer_id):
            return not_found("order")  # another buyer's order is not theirs to know of
        case CancelOrder() if state.status == CANCELLED:
            return []
        case CancelOrder() if state.status != PENDING:
            return Rejection("invalid_transition", f"a {state.status} order cannot be cancelled", 409)
        case CancelOrder():
            return [OrderCancelled(order_id=state.order_id, reason=command.reason, cancelled_at=command.now,
                                   intent_id=state.intent_id)]
        case Expire() if (state.status == PENDING and state.expires_at is not None
                          and state.expires_at + SAGA_GRACE <= command.now):
            # Nothing ended it: a saga step (an allocation, the hold's own expiry) never arrived. Cancelling
            # runs every compensation: holds released, the cart closed, the PaymentIntent cancelled, and a
            # capture that still comes in refunded.
            return [OrderCancelled(order_id=state.order_id, reason="saga_timeout", cancelled_at=command.now,
                                   intent_id=state.intent_id)]
        case Expire():
            return []
    return invalid(f"orders do not handle {type(command).__name__}")


# The moves a shipment may make: from → to, and what each command asks for.
_MOVES = {ProcessShipment: (PENDING, PROCESSING), ShipShipment: (PROCESSING, SHIPPED),
          DeliverShipment: (SHIPPED, DELIVERED)}


def _move_shipment(state: Order, command) -> list[Event] | Rejection:
    shipment = next((s for s in state.shipments if s.shipment_id == command.shipment_id), None)
    if shipment is None:
        return not_found("shipment")
    if not (command.actor.is_admin or command.actor.user_id == shipment.seller_id
            or (isinstance(command, DeliverShipment) and command.actor.role == "CARRIER")):
        return forbidden("only the shipment's seller or an admin may move it")
    if state.status == PENDING:
        return Rejection("invalid_transition", "the order is not paid yet", 409, {"status": shipment.status})
    source, target = _MOVES[type(command)]
    if shipment.status == target:  # the same move again: idempotent if it says the same thing
        if isinstance(command, ShipShipment) and (command.tracking_number, command.carrier) != (
                shipment.tracking_number, shipment.carrier):
            return Rejection("invalid_transition", "the shipment was already shipped with other tracking", 409,
                             {"status": shipment.status})
        return []
    if shipment.status != source:
        return Rejection("invalid_transition", f"a {shipment.status} shipment cannot become {target}", 409,
                         {"status": shipment.status})
    moved = replace(shipment, status=target,
                    tracking_number=getattr(command, "tracking_number", shipment.tracking_number),
                    carrier=getattr(command, "carrier", shipment.carrier))
    after = replace(state, shipments=tuple(moved if s.shipment_id == moved.shipment_id else s
                                           for s in state.shipments))
    return [ShipmentStatusUpdated(order_id=state.order_id, shipment_id=moved.shipment_id,
                                  seller_id=moved.seller_id, status=target, order_status=rolled_up(after),
                                  tracking_number=moved.tracking_number, carrier=moved.carrier, at=command.now)]


def evolve(state: Order, event: Event) -> Order:
    match event:
        case OrderPlaced():
            new = Order(order_id=event.order_id, buyer_id=event.buyer_id, cart_id=event.cart_id,
                        payment_id=event.payment_id, items=event.items, shipments=event.shipments,
                        total_cents=event.total_cents, currency=event.currency, fee_bps=event.fee_bps,
                        expires_at=event.expires_at, created_at=event.created_at)
        case ItemAllocated():
            new = replace(state, allocated=state.allocated | {event.reservation_id})
        case OrderAllocated():
            new = replace(state, allocated_all=True)
        case OrderPaymentAttached():
            new = replace(state, intent_id=event.intent_id)
        case PaymentIntentUnused():
            new = replace(state, unused=state.unused | {event.intent_id})
        case OrderConfirmed():
            new = replace(state, status=CONFIRMED, provisional=False, confirmed_at=event.confirmed_at,
                          expires_at=None)
        case ShipmentStatusUpdated():
            new = replace(state, shipments=tuple(
                replace(s, status=event.status, tracking_number=event.tracking_number, carrier=event.carrier,
                        shipped_at=event.at if event.status == SHIPPED else s.shipped_at,
                        delivered_at=event.at if event.status == DELIVERED else s.delivered_at)
                if s.shipment_id == event.shipment_id else s for s in state.shipments))
        case OrderShortfall():
            new = replace(state, shortfalls=state.shortfalls + (event,))
        case PaymentAfterCancellation():
            new = replace(state, paid_late=state.paid_late | {event.payment_id})
        case OrderCancelled():
            new = replace(state, status=CANCELLED, cancelled_at=event.cancelled_at, cancel_reason=event.reason,
                          shipments=tuple(replace(s, status=CANCELLED) for s in state.shipments),
                          expires_at=None)
        case _:
            new = state
    return replace(new, version=state.version + 1)


def finished(state: Order) -> datetime | None:
    """When nothing but duplicates can change the order: every shipment delivered (or cancelled), or the
    order cancelled (with a PaymentIntent: after `LATE_PAYMENT_WINDOW`, for a capture reported late)."""
    if state.status == CANCELLED and state.cancelled_at is not None:
        return state.cancelled_at + (LATE_PAYMENT_WINDOW if state.intent_id else timedelta(0))
    if state.status == CONFIRMED and state.shipments and all(s.status in (DELIVERED, CANCELLED)
                                                            for s in state.shipments):
        return max((s.delivered_at for s in state.shipments if s.delivered_at), default=state.confirmed_at)
    return None


def deadline(state: Order) -> datetime | None:
    """An unpaid order's backstop: a grace after its allocations lapse (see `SAGA_GRACE`)."""
    return state.expires_at + SAGA_GRACE if state.status == PENDING and state.expires_at else None


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def shipment_view(order: Order, shipment: Shipment) -> dict:
    items = [i for i in order.items if i.item_id in shipment.item_ids]
    return {"shipmentId": shipment.shipment_id, "orderId": order.order_id, "sellerId": shipment.seller_id,
            "status": shipment.status, "provisional": order.provisional, "items": [_item(i) for i in items],
            "trackingNumber": shipment.tracking_number, "carrier": shipment.carrier,
            "shippedAt": _when(shipment.shipped_at), "deliveredAt": _when(shipment.delivered_at)}


def _item(i: OrderItem) -> dict:
    return {"itemId": i.item_id, "productId": i.product_id, "sku": i.sku, "sellerId": i.seller_id,
            "quantity": i.quantity, "priceCents": i.price_cents, "currency": i.currency}


def view(state: Order) -> dict | None:
    if state.order_id is None:
        return None
    return {"orderId": state.order_id, "buyerId": state.buyer_id, "status": rolled_up(state),
            "provisional": state.provisional, "totalCents": state.total_cents, "currency": state.currency,
            "items": [_item(i) for i in state.items],
            "shipments": [{k: v for k, v in shipment_view(state, s).items() if k not in ("orderId", "items")}
                          for s in state.shipments],
            "paymentId": state.payment_id, "paymentIntentId": state.intent_id,
            "createdAt": _when(state.created_at), "confirmedAt": _when(state.confirmed_at),
            "cancelledAt": _when(state.cancelled_at), "cancelReason": state.cancel_reason,
            "shortfalls": [{"productId": f.product_id, "quantity": f.quantity, "amountCents": f.amount_cents}
                           for f in state.shortfalls],
            "version": state.version}


AGGREGATE = Aggregate("order", initial_state, decide, evolve, view, deadline=deadline,
                      finished=finished)
