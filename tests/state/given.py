"""Given/when/then for the deciders: fold events into a state, build commands and events.

Every builder has one sensible default per field and takes keyword overrides, so a
table row names only what its rule is about. Commands default to `NOW`; updates of
an existing thing default to `LATER`, so created and updated times differ.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import reduce

from state import cart, catalog, inventory, ledger, order, user
from state.common import ADMIN, BUYER, SELLER, SYSTEM, Actor, Rejection, derived_id

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)

SELLER_ID, OTHER_SELLER_ID = "seller-1", "seller-2"
PRODUCT_ID, SKU = "product-1", "SKU-1"

THE_SELLER = Actor(SELLER_ID, SELLER)
OTHER_SELLER = Actor(OTHER_SELLER_ID, SELLER)
AN_ADMIN = Actor("admin-1", ADMIN)
A_BUYER = Actor("buyer-1", BUYER)


# --- given / when / then ----------------------------------------------------------------------

def fold(module, events):
    """The state after `events`, from the module's initial state."""
    return reduce(module.evolve, events, module.initial_state())


def decide(module, given, when):
    """Decide `when` on the state `given` events fold into."""
    return module.decide(fold(module, given), when)


@dataclass(frozen=True)
class Rejected:
    """An expected rejection: its stable code, HTTP status and details (the message is free text)."""

    code: str
    status: int
    details: dict = field(default_factory=dict)


def assert_outcome(outcome, then) -> None:
    """`then` is the exact event list, or a `Rejected` the outcome must match."""
    if isinstance(then, Rejected):
        assert isinstance(outcome, Rejection), f"expected {then.code}, decided {outcome!r}"
        assert (outcome.code, outcome.status, outcome.details) == (then.code, then.status, then.details)
        assert outcome.message
    else:
        assert outcome == then


def from_before(state, *fields):
    """`state` as a recovery snapshot taken before `fields` existed unpickles: without them (a plain
    default on the class stands in)."""
    old = pickle.loads(pickle.dumps(state))
    for name in fields:
        del old.__dict__[name]
    return old


NOT_FOUND = Rejected("not_found", 404)
FORBIDDEN = Rejected("forbidden", 403)
INVALID = Rejected("invalid", 422)


# --- users --------------------------------------------------------------------------------------

def register_user(user_id="user-1", account_type=BUYER, email="ann@example.com", *, now=NOW,
                  command_id="register-1"):
    return user.RegisterUser(command_id=command_id, now=now, actor=Actor(user_id, account_type),
                             user_id=user_id, account_type=account_type, email=email)


def user_created(user_id="user-1", account_type=BUYER, email="ann@example.com", created_at=NOW):
    return user.UserCreated(user_id=user_id, account_type=account_type, email=email, created_at=created_at)


# --- catalog ------------------------------------------------------------------------------------

PRODUCT = dict(product_id=PRODUCT_ID, seller_id=SELLER_ID, sku=SKU, name="Blue mug", description="Holds tea",
               category="kitchen", price_cents=1299, currency="USD", status="DRAFT", image_public_ids=("img-1",))
CHANGEABLE = ("name", "description", "category", "price_cents", "currency", "status", "image_public_ids")


def create_product(*, actor=THE_SELLER, now=NOW, command_id="create-product-1", **fields):
    return catalog.CreateProduct(command_id=command_id, now=now, actor=actor, **{**PRODUCT, **fields})


def product_created(*, created_at=NOW, **fields):
    return catalog.ProductCreated(created_at=created_at, **{**PRODUCT, **fields})


def update_product(*, actor=THE_SELLER, now=LATER, command_id="update-product-1", product_id=PRODUCT_ID,
                   **changes):
    return catalog.UpdateProduct(command_id=command_id, now=now, actor=actor, product_id=product_id, **changes)


def product_updated(*, updated_at=LATER, request_id="update-product-1", **changes):
    """The update event (by `update_product()`, unless told): every changeable field, unchanged ones as
    `product_created()` has them."""
    return catalog.ProductUpdated(product_id=PRODUCT_ID, updated_at=updated_at, request_id=request_id,
                                  **{**{f: PRODUCT[f] for f in CHANGEABLE}, **changes})


# --- inventory ----------------------------------------------------------------------------------

def create_stock(*, now=NOW, command_id="create-stock-1", product_id=PRODUCT_ID, seller_id=SELLER_ID, sku=SKU):
    return inventory.CreateStock(command_id=command_id, now=now, actor=SYSTEM, product_id=product_id,
                                 seller_id=seller_id, sku=sku)


def stock_created(*, product_id=PRODUCT_ID, seller_id=SELLER_ID, sku=SKU, low_stock_threshold=5):
    return inventory.StockCreated(product_id=product_id, seller_id=seller_id, sku=sku,
                                  low_stock_threshold=low_stock_threshold)


def set_stock(total_quantity, *, actor=THE_SELLER, now=LATER, command_id="set-stock-1", expected_version=None,
              low_stock_threshold=None):
    return inventory.SetStock(command_id=command_id, now=now, actor=actor, product_id=PRODUCT_ID,
                              total_quantity=total_quantity, expected_version=expected_version,
                              low_stock_threshold=low_stock_threshold)


def stock_updated(total, *, threshold=5, reserved=0, allocated=0, sold=0, request_id="set-stock-1",
                  requested_at=LATER):
    """Stock set to `total` (by `set_stock()`, unless told); the levels follow from the units held."""
    return inventory.StockUpdated(product_id=PRODUCT_ID, total_quantity=total, low_stock_threshold=threshold,
                                  levels=inventory.Levels(total=total, available=total - reserved - allocated,
                                                          reserved=reserved, allocated=allocated, sold=sold),
                                  request_id=request_id, requested_at=requested_at)


def stock_was_set(total, **fields):
    """For given histories: stock set by an earlier SetStock than `set_stock()`, so that one is new."""
    return stock_updated(total, request_id="set-stock-0", requested_at=NOW, **fields)


def low_stock_alert(available, *, threshold=5):
    return inventory.LowStockAlert(product_id=PRODUCT_ID, seller_id=SELLER_ID, available=available,
                                   threshold=threshold)


# Units held by carts and orders, only to set up states for the stock rules above.

def reserved(quantity, *, reservation_id="reservation-1", available=0, expires_at=LATER, seq=0):
    return inventory.StockReserved(product_id=PRODUCT_ID, reservation_id=reservation_id, cart_id="cart-1",
                                   buyer_id="buyer-1", quantity=quantity, expires_at=expires_at,
                                   available=available, seq=seq)


def allocated(quantity, *, reservation_id="reservation-2", available=0, expires_at=LATER, order_id="order-1"):
    return inventory.StockAllocated(product_id=PRODUCT_ID, reservation_id=reservation_id, order_id=order_id,
                                    quantity=quantity, expires_at=expires_at, available=available)


# The saga commands, and what inventory decides of them. A cart's reservation is "reservation-1"
# of "cart-1"; an order's is "reservation-2" of "order-1".

def reserve(quantity, *, seq=0, mode="set", reservation_id="reservation-1", now=LATER, command_id="reserve-1",
            expires_at=LATER):
    return inventory.ReserveStock(command_id=command_id, now=now, product_id=PRODUCT_ID,
                                  reservation_id=reservation_id, cart_id="cart-1", buyer_id="buyer-1",
                                  quantity=quantity, mode=mode, expires_at=expires_at, seq=seq)


def refused(requested, *, available, seq=0, reservation_id="reservation-1", ended_at=LATER):
    return inventory.ReservationRefused(product_id=PRODUCT_ID, reservation_id=reservation_id, cart_id="cart-1",
                                        buyer_id="buyer-1", requested=requested, available=available, seq=seq,
                                        ended_at=ended_at)


def release(*, seq=0, order_id="", reservation_id="reservation-1", reason="removed", now=LATER,
            command_id="release-1"):
    return inventory.ReleaseReservation(command_id=command_id, now=now, product_id=PRODUCT_ID,
                                        reservation_id=reservation_id, reason=reason, seq=seq, order_id=order_id)


def released(quantity, *, available, seq=0, order_id="", kind=inventory.SOFT, reservation_id="reservation-1",
             reason="removed", ended_at=LATER):
    return inventory.ReservationReleased(product_id=PRODUCT_ID, reservation_id=reservation_id, quantity=quantity,
                                         kind=kind, reason=reason, available=available, seq=seq,
                                         order_id=order_id, ended_at=ended_at)


def expired(quantity, *, available, seq=0, kind=inventory.SOFT, holder_id="cart-1",
            reservation_id="reservation-1", ended_at=LATER):
    return inventory.ReservationExpired(product_id=PRODUCT_ID, reservation_id=reservation_id, holder_id=holder_id,
                                        buyer_id="buyer-1", quantity=quantity, kind=kind, available=available,
                                        seq=seq, ended_at=ended_at)


def allocate(quantity, *, reservation_id="reservation-2", order_id="order-1", now=LATER, command_id="allocate-1",
             expires_at=LATER):
    return inventory.AllocateStock(command_id=command_id, now=now, product_id=PRODUCT_ID,
                                   reservation_id=reservation_id, order_id=order_id, quantity=quantity,
                                   expires_at=expires_at)


def allocation_refused(requested, *, available, reservation_id="reservation-2", order_id="order-1"):
    return inventory.AllocationRefused(product_id=PRODUCT_ID, reservation_id=reservation_id, order_id=order_id,
                                       requested=requested, available=available)


def confirm_sale(quantity, *, reservation_id="reservation-2", order_id="order-1", now=LATER,
                 command_id="sell-1"):
    return inventory.ConfirmSale(command_id=command_id, now=now, product_id=PRODUCT_ID,
                                 reservation_id=reservation_id, order_id=order_id, quantity=quantity)


def fulfilled(quantity, *, reservation_id="reservation-2", order_id="order-1"):
    return inventory.ReservationFulfilled(product_id=PRODUCT_ID, reservation_id=reservation_id, order_id=order_id,
                                          quantity=quantity)


def shortfall(quantity, *, available, reservation_id="reservation-2", order_id="order-1"):
    return inventory.SaleShortfall(product_id=PRODUCT_ID, seller_id=SELLER_ID, order_id=order_id,
                                   quantity=quantity, available=available, reservation_id=reservation_id)


# --- carts --------------------------------------------------------------------------------------
# Keyed by buyer. The first add starts the cart; its id and each item's ids derive from the ids
# before them, so the expected events can name them.

BUYER_ID = A_BUYER.user_id
FIRST_ADD = "add-1"
CART_ID = derived_id(FIRST_ADD, "cart")
RESERVATION_TTL_S, CART_TTL_S = 600, 900


def cart_item(quantity=0, *, product_id=PRODUCT_ID, sku=SKU, seller_id=SELLER_ID, price_cents=1299,
              currency="USD", cart_id=CART_ID):
    """An item as the cart holds it: quantity 0 until inventory confirms the reservation."""
    return cart.Item(item_id=derived_id(cart_id, f"item/{product_id}"), product_id=product_id, sku=sku,
                     seller_id=seller_id, quantity=quantity, price_cents=price_cents, currency=currency,
                     reservation_id=derived_id(cart_id, f"reservation/{product_id}"))


def add_item(quantity=2, *, product_id=PRODUCT_ID, sku=SKU, seller_id=SELLER_ID, price_cents=1299, currency="USD",
             now=NOW, command_id=FIRST_ADD, reservation_ttl_s=RESERVATION_TTL_S, cart_ttl_s=CART_TTL_S):
    return cart.AddCartItem(command_id=command_id, now=now, actor=A_BUYER, buyer_id=BUYER_ID,
                            product_id=product_id, sku=sku, seller_id=seller_id, price_cents=price_cents,
                            currency=currency, quantity=quantity, reservation_ttl_s=reservation_ttl_s,
                            cart_ttl_s=cart_ttl_s)


def change_item(quantity, *, item_id=None, now=LATER, command_id="change-1", reservation_ttl_s=RESERVATION_TTL_S,
                cart_ttl_s=CART_TTL_S):
    return cart.ChangeCartItem(command_id=command_id, now=now, actor=A_BUYER, buyer_id=BUYER_ID,
                               item_id=item_id or cart_item().item_id, quantity=quantity,
                               reservation_ttl_s=reservation_ttl_s, cart_ttl_s=cart_ttl_s)


def remove_item(*, item_id=None, now=LATER, command_id="remove-1", cart_ttl_s=CART_TTL_S):
    return cart.RemoveCartItem(command_id=command_id, now=now, actor=A_BUYER, buyer_id=BUYER_ID,
                               item_id=item_id or cart_item().item_id, cart_ttl_s=cart_ttl_s)


def confirm_reservation(quantity=2, *, reservation_id=None, now=NOW, command_id="confirm-1", seq=1):
    """Inventory's answer to the cart's request `seq` (the first add's, unless told)."""
    return cart.ConfirmReservation(command_id=command_id, now=now, buyer_id=BUYER_ID,
                                   reservation_id=reservation_id or cart_item().reservation_id, quantity=quantity,
                                   seq=seq)


def refuse_reservation(*, reservation_id=None, now=NOW, command_id="refuse-1", seq=1):
    return cart.RefuseReservation(command_id=command_id, now=now, buyer_id=BUYER_ID,
                                  reservation_id=reservation_id or cart_item().reservation_id, seq=seq)


def lapse_reservation(*, reservation_id=None, now=LATER, command_id="lapse-1", seq=1):
    return cart.LapseReservation(command_id=command_id, now=now, buyer_id=BUYER_ID,
                                 reservation_id=reservation_id or cart_item().reservation_id, seq=seq)


def checkout(*, order_id="order-1", payment_id="payment-1", allocation_ttl_s=1800, fee_bps=1000, now=LATER,
             command_id="checkout-1", listings=()):
    return cart.Checkout(command_id=command_id, now=now, actor=A_BUYER, buyer_id=BUYER_ID, order_id=order_id,
                         payment_id=payment_id, allocation_ttl_s=allocation_ttl_s, fee_bps=fee_bps, listings=listings)


def listing(price_cents=1299, *, product_id=PRODUCT_ID, currency="USD", active=True):
    """A product as the catalog lists it at checkout."""
    return cart.Listing(product_id=product_id, price_cents=price_cents, currency=currency, active=active)


def close_cart(status, *, cart_id=CART_ID, order_id="order-1", now=LATER, command_id="close-1"):
    return cart.CloseCart(command_id=command_id, now=now, buyer_id=BUYER_ID, cart_id=cart_id, order_id=order_id,
                          status=status)


def cart_created(*, cart_id=CART_ID, created_at=NOW):
    return cart.CartCreated(cart_id=cart_id, buyer_id=BUYER_ID, created_at=created_at)


def item_requested(quantity=2, *, item=None, mode="set", at=NOW, cart_id=CART_ID, seq=1, request_id=FIRST_ADD):
    """The cart's request `seq` for the item's total, made at `at` for the buyer's `request_id`, default TTLs."""
    return cart.CartItemRequested(cart_id=cart_id, item=item or cart_item(), quantity=quantity, mode=mode,
                                  reservation_expires_at=at + timedelta(seconds=RESERVATION_TTL_S),
                                  expires_at=at + timedelta(seconds=CART_TTL_S), seq=seq, request_id=request_id)


def item_confirmed(quantity=2, *, product_id=PRODUCT_ID, seq=1):
    return cart.CartItemConfirmed(cart_id=CART_ID, item_id=cart_item(product_id=product_id).item_id,
                                  product_id=product_id, quantity=quantity, seq=seq)


def item_refused(*, product_id=PRODUCT_ID, seq=1):
    return cart.CartItemRefused(cart_id=CART_ID, item_id=cart_item(product_id=product_id).item_id,
                                product_id=product_id, seq=seq)


def item_removed(quantity=2, *, reason="removed", expires_at=LATER + timedelta(seconds=CART_TTL_S),
                 product_id=PRODUCT_ID, seq=None, request_id=None):
    """Removed by `remove_item()` (its release is the cart's 2nd request), or lapsed (answering the 1st)."""
    item = cart_item(product_id=product_id)
    removed = reason == "removed"
    return cart.CartItemRemoved(cart_id=CART_ID, item_id=item.item_id, product_id=product_id,
                                reservation_id=item.reservation_id, quantity=quantity, reason=reason,
                                expires_at=expires_at, seq=seq if seq is not None else (2 if removed else 1),
                                request_id=request_id if request_id is not None else ("remove-1" if removed else ""))


def checked_out(items=None, *, order_id="order-1", payment_id="payment-1", allocation_ttl_s=1800, fee_bps=1000,
                cart_id=CART_ID, at=LATER):
    """A checkout made `at` (None: a record from before checkouts had a deadline)."""
    gives_up_at = at + timedelta(seconds=allocation_ttl_s) + cart.CHECKOUT_GRACE if at else None
    return cart.CartCheckedOut(cart_id=cart_id, buyer_id=BUYER_ID, order_id=order_id, payment_id=payment_id,
                               items=items if items is not None else (cart_item(2),),
                               allocation_ttl_s=allocation_ttl_s, fee_bps=fee_bps, gives_up_at=gives_up_at)


def cart_completed(*, order_id="order-1", at=LATER):
    return cart.CartCompleted(cart_id=CART_ID, order_id=order_id, at=at)


def cart_abandoned(status, items=None, *, at=LATER, seq=2, order_id=""):
    return cart.CartAbandoned(cart_id=CART_ID, buyer_id=BUYER_ID, status=status,
                              items=items if items is not None else (cart_item(2),), at=at, seq=seq,
                              order_id=order_id)


# --- orders -------------------------------------------------------------------------------------
# The default order is the spec's odd-cents one: seller 1 sells 2 × 33.33, seller 2 sells
# 1 × 10.01, 76.67 in all; one shipment per seller, named by `shipment_id(seller)`.

ORDER_ID, ORDER_CART_ID, PAYMENT_ID = "order-1", "cart-1", "payment-1"
ALLOCATION_TTL_S, FEE_BPS = 1800, 1000
TRACKING = dict(tracking_number="1Z999AA10123456784", carrier="UPS")
A_CARRIER = Actor("carrier", "CARRIER")


def order_item(n, *, seller_id=SELLER_ID, quantity=1, price_cents=1000, currency="USD"):
    return order.OrderItem(item_id=f"item-{n}", product_id=f"product-{n}", sku=f"SKU-{n}", seller_id=seller_id,
                           quantity=quantity, price_cents=price_cents, currency=currency,
                           reservation_id=f"reservation-{n}")


ORDER_ITEMS = (order_item(1, quantity=2, price_cents=3333), order_item(2, seller_id=OTHER_SELLER_ID, price_cents=1001))


def shipment_id(seller_id=SELLER_ID):
    return derived_id(ORDER_ID, f"shipment/{seller_id}")


def shipment(seller_id=SELLER_ID, item_ids=("item-1",), **fields):
    return order.Shipment(shipment_id=shipment_id(seller_id), seller_id=seller_id, item_ids=item_ids, **fields)


SHIPMENTS = (shipment(SELLER_ID, ("item-1",)), shipment(OTHER_SELLER_ID, ("item-2",)))


def place_order(items=ORDER_ITEMS, *, now=NOW, command_id="place-order-1", allocation_ttl_s=ALLOCATION_TTL_S,
                fee_bps=FEE_BPS):
    return order.PlaceOrder(command_id=command_id, now=now, order_id=ORDER_ID, buyer_id=BUYER_ID,
                            cart_id=ORDER_CART_ID, payment_id=PAYMENT_ID, items=tuple(items),
                            allocation_ttl_s=allocation_ttl_s, fee_bps=fee_bps)


def order_placed(items=ORDER_ITEMS, shipments=SHIPMENTS, *, total_cents=7667, currency="USD", fee_bps=FEE_BPS,
                 expires_at=NOW + timedelta(seconds=ALLOCATION_TTL_S), created_at=NOW):
    return order.OrderPlaced(order_id=ORDER_ID, buyer_id=BUYER_ID, cart_id=ORDER_CART_ID, payment_id=PAYMENT_ID,
                             items=tuple(items), shipments=tuple(shipments), total_cents=total_cents,
                             currency=currency, fee_bps=fee_bps, expires_at=expires_at, created_at=created_at)


def confirm_allocation(reservation_id="reservation-1", *, now=LATER):
    return order.ConfirmAllocation(command_id=f"allocated-{reservation_id}", now=now, order_id=ORDER_ID,
                                   reservation_id=reservation_id)


def fail_allocation(reservation_id="reservation-2", *, product_id="product-2", available=0, now=LATER):
    return order.FailAllocation(command_id=f"allocation-failed-{reservation_id}", now=now, order_id=ORDER_ID,
                                reservation_id=reservation_id, product_id=product_id, available=available)


def attach_payment(*, actor=A_BUYER, intent_id="pi_1", now=LATER,
                   command_id="attach-1"):
    return order.AttachPayment(command_id=command_id, now=now, actor=actor, order_id=ORDER_ID,
                               payment_id=PAYMENT_ID, intent_id=intent_id)


def confirm_order(*, now=LATER, command_id="confirm-order-1"):
    return order.ConfirmOrder(command_id=command_id, now=now, order_id=ORDER_ID, payment_id=PAYMENT_ID)


def cancel_order(reason="payment_failed", *, actor=None, now=LATER, command_id="cancel-order-1"):
    actor = {} if actor is None else {"actor": actor}  # none: the system's own cancellation
    return order.CancelOrder(command_id=command_id, now=now, order_id=ORDER_ID, reason=reason, **actor)


def process_shipment(seller_id=SELLER_ID, *, actor=None, now=LATER, shipment_key=None):
    return order.ProcessShipment(command_id="process-1", now=now, actor=actor or Actor(seller_id, SELLER),
                                 order_id=ORDER_ID, shipment_id=shipment_key or shipment_id(seller_id))


def ship_shipment(seller_id=SELLER_ID, *, actor=None, now=LATER, shipment_key=None, tracking_number=None,
                  carrier=None):
    return order.ShipShipment(command_id="ship-1", now=now, actor=actor or Actor(seller_id, SELLER),
                              order_id=ORDER_ID, shipment_id=shipment_key or shipment_id(seller_id),
                              tracking_number=tracking_number or TRACKING["tracking_number"],
                              carrier=carrier or TRACKING["carrier"])


def deliver_shipment(seller_id=SELLER_ID, *, actor=None, now=LATER, shipment_key=None):
    return order.DeliverShipment(command_id="deliver-1", now=now, actor=actor or Actor(seller_id, SELLER),
                                 order_id=ORDER_ID, shipment_id=shipment_key or shipment_id(seller_id))


def item_allocated(reservation_id="reservation-1"):
    return order.ItemAllocated(order_id=ORDER_ID, reservation_id=reservation_id)


def order_allocated(amount_cents=7667):
    return order.OrderAllocated(order_id=ORDER_ID, payment_id=PAYMENT_ID, amount_cents=amount_cents, currency="USD")


def payment_attached(*, intent_id="pi_1"):
    return order.OrderPaymentAttached(order_id=ORDER_ID, payment_id=PAYMENT_ID, intent_id=intent_id)


def intent_unused(intent_id="pi_2", reason="superseded", cancel_reason=None):
    return order.PaymentIntentUnused(order_id=ORDER_ID, intent_id=intent_id, reason=reason,
                                     cancel_reason=cancel_reason)


def order_confirmed(*, confirmed_at=LATER):
    return order.OrderConfirmed(order_id=ORDER_ID, payment_id=PAYMENT_ID, confirmed_at=confirmed_at)


def order_cancelled(reason="payment_failed", *, cancelled_at=LATER, product_id=None, available=None,
                    intent_id=None):
    return order.OrderCancelled(order_id=ORDER_ID, reason=reason, cancelled_at=cancelled_at, product_id=product_id,
                                available=available, intent_id=intent_id)


def payment_after_cancellation(*, at=LATER):
    return order.PaymentAfterCancellation(order_id=ORDER_ID, payment_id=PAYMENT_ID, at=at)


def shipment_updated(status, order_status, *, seller_id=SELLER_ID, tracking_number=None, carrier=None, at=LATER):
    return order.ShipmentStatusUpdated(order_id=ORDER_ID, shipment_id=shipment_id(seller_id), seller_id=seller_id,
                                       status=status, order_status=order_status, tracking_number=tracking_number,
                                       carrier=carrier, at=at)


# --- ledger -------------------------------------------------------------------------------------

def post_sale(total_cents, seller_subtotals, *, fee_bps=FEE_BPS, payment_id=PAYMENT_ID, now=LATER,
              command_id="post-sale-1"):
    return ledger.PostSale(command_id=command_id, now=now, payment_id=payment_id, order_id=ORDER_ID,
                           currency="USD", total_cents=total_cents, seller_subtotals=tuple(seller_subtotals),
                           fee_bps=fee_bps)


def sale_posted(entries, *, payment_id=PAYMENT_ID, posted_at=LATER):
    return ledger.LedgerTransactionPosted(transaction_id=derived_id(payment_id, "sale"), payment_id=payment_id,
                                          order_id=ORDER_ID, currency="USD", entries=tuple(entries),
                                          posted_at=posted_at)
