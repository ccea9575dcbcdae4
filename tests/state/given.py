"""Given/when/then for the deciders: fold events into a state, build commands and events.

Every builder has one sensible default per field and takes keyword overrides, so a
table row names only what its rule is about. Commands default to `NOW`; updates of
an existing thing default to `LATER`, so created and updated times differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import reduce

from state import catalog, inventory, user
from state.common import ADMIN, BUYER, SELLER, SYSTEM, Actor, Rejection

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


def product_updated(*, updated_at=LATER, **changes):
    """The update event: every changeable field, unchanged ones as `product_created()` has them."""
    return catalog.ProductUpdated(product_id=PRODUCT_ID, updated_at=updated_at,
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


def stock_updated(total, *, threshold=5, reserved=0, allocated=0, sold=0):
    """Stock set to `total`; the levels follow from the units held."""
    return inventory.StockUpdated(product_id=PRODUCT_ID, total_quantity=total, low_stock_threshold=threshold,
                                  levels=inventory.Levels(total=total, available=total - reserved - allocated,
                                                          reserved=reserved, allocated=allocated, sold=sold))


def low_stock_alert(available, *, threshold=5):
    return inventory.LowStockAlert(product_id=PRODUCT_ID, seller_id=SELLER_ID, available=available,
                                   threshold=threshold)


# Units held by carts and orders, only to set up states for the stock rules above.

def reserved(quantity, *, reservation_id="reservation-1", available=0, expires_at=LATER):
    return inventory.StockReserved(product_id=PRODUCT_ID, reservation_id=reservation_id, cart_id="cart-1",
                                   buyer_id="buyer-1", quantity=quantity, expires_at=expires_at,
                                   available=available)


def allocated(quantity, *, reservation_id="reservation-2", available=0, expires_at=LATER):
    return inventory.StockAllocated(product_id=PRODUCT_ID, reservation_id=reservation_id, order_id="order-1",
                                    quantity=quantity, expires_at=expires_at, available=available)
