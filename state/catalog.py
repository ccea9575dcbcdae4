"""Catalog: a seller's products. The product id is derived from seller and SKU, so a SKU is unique per seller.

An update sets the fields it names to absolute values, so it is ordered by its time, however late a
redelivery comes: one older than the change in force is `superseded` (re-applied, it would undo the
newer change), and the change in force is known by its id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from state.common import (Aggregate, Command, Event, Rejection, forbidden, invalid, may_manage,
                          message, not_found, replace)

STATUSES = ("DRAFT", "ACTIVE", "INACTIVE")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@message
class CreateProduct(Command):
    product_id: str
    seller_id: str
    sku: str
    name: str
    description: str = ""
    category: str = ""
    price_cents: int
    currency: str
    status: str = "DRAFT"
    image_public_ids: tuple[str, ...] = ()


@message
class UpdateProduct(Command):
    product_id: str
    sku: str | None = None
    name: str | None = None
    description: str | None = None
    category: str | None = None
    price_cents: int | None = None
    currency: str | None = None
    status: str | None = None
    image_public_ids: tuple[str, ...] | None = None


@message
class ProductCreated(Event):
    TYPE = "PRODUCT_CREATED"
    product_id: str
    seller_id: str
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    status: str
    image_public_ids: tuple[str, ...]
    created_at: datetime


@message
class ProductUpdated(Event):
    TYPE = "PRODUCT_UPDATED"
    product_id: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    status: str
    image_public_ids: tuple[str, ...]
    updated_at: datetime
    request_id: str = ""  # the UpdateProduct's id, so a redelivery of it is known by state


@dataclass(frozen=True)
class Product:
    product_id: str | None = None
    seller_id: str = ""
    sku: str = ""
    name: str = ""
    description: str = ""
    category: str = ""
    price_cents: int = 0
    currency: str = ""
    status: str = "DRAFT"
    image_public_ids: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0
    # A plain (immutable) default: a recovery snapshot taken before this field existed unpickles without it.
    update_ids: tuple[str, ...] = ()  # the ids of the updates applied at `updated_at` (the one in force among them)


def initial_state() -> Product:
    return Product()


def _fields_problem(name: str, price_cents: int, currency: str, status: str) -> Rejection | None:
    if not name.strip():
        return invalid("name must not be empty")
    if price_cents < 0:
        return invalid("priceCents must not be negative")
    if not _CURRENCY.fullmatch(currency):
        return invalid("currency must be a 3-letter ISO code such as USD")
    if status not in STATUSES:
        return invalid(f"status must be one of {', '.join(STATUSES)}")
    return None


def decide(state: Product, command: Command) -> list[Event] | Rejection:
    match command:
        case CreateProduct() if state.product_id is not None:
            return Rejection("sku_taken", f"this seller already has a product with SKU {state.sku!r}",
                             409, {"productId": state.product_id})
        case CreateProduct() if not command.sku.strip():
            return invalid("sku must not be empty")
        case CreateProduct():
            problem = _fields_problem(command.name, command.price_cents, command.currency, command.status)
            return problem or [ProductCreated(
                product_id=command.product_id, seller_id=command.seller_id, sku=command.sku,
                name=command.name, description=command.description, category=command.category,
                price_cents=command.price_cents, currency=command.currency, status=command.status,
                image_public_ids=tuple(command.image_public_ids), created_at=command.now)]
        case UpdateProduct() if state.product_id is None:
            return not_found("product")
        case UpdateProduct() if not may_manage(command.actor, state.seller_id):
            return forbidden("only the product's seller or an admin may change it")
        case UpdateProduct() if command.command_id in state.update_ids:
            return []  # the change in force, again (redelivered, or retried by the API with a fresh `now`)
        case UpdateProduct() if state.updated_at is not None and command.now < state.updated_at:
            return Rejection("superseded", "a newer change to this product was already applied", 409,
                             {"currentVersion": state.version})
        case UpdateProduct() if command.sku is not None and command.sku != state.sku:
            return invalid("sku cannot change; create a new product instead")
        case UpdateProduct():
            new = {f: getattr(command, f) if getattr(command, f) is not None else getattr(state, f)
                   for f in ("name", "description", "category", "price_cents", "currency", "status",
                             "image_public_ids")}
            problem = _fields_problem(new["name"], new["price_cents"], new["currency"], new["status"])
            return problem or [ProductUpdated(product_id=state.product_id, updated_at=command.now,
                                              request_id=command.command_id,
                                              **{**new, "image_public_ids": tuple(new["image_public_ids"])})]
    return invalid(f"catalog does not handle {type(command).__name__}")


def evolve(state: Product, event: Event) -> Product:
    match event:
        case ProductCreated():
            return Product(product_id=event.product_id, seller_id=event.seller_id, sku=event.sku,
                           name=event.name, description=event.description, category=event.category,
                           price_cents=event.price_cents, currency=event.currency, status=event.status,
                           image_public_ids=event.image_public_ids, created_at=event.created_at,
                           updated_at=event.created_at, version=state.version + 1)
        case ProductUpdated():
            return replace(state, name=event.name, description=event.description, category=event.category,
                           price_cents=event.price_cents, currency=event.currency, status=event.status,
                           image_public_ids=event.image_public_ids, updated_at=event.updated_at,
                           update_ids=_in_force(state, event), version=state.version + 1)
    return state


def _in_force(state: Product, event: ProductUpdated) -> tuple[str, ...]:
    """The ids of the updates applied at the event's time, so a redelivery of any of them is known."""
    ids = state.update_ids if event.updated_at == state.updated_at else ()
    return (*ids, event.request_id) if event.request_id else ids


def view(state: Product) -> dict | None:
    if state.product_id is None:
        return None
    return {"productId": state.product_id, "sellerId": state.seller_id, "sku": state.sku,
            "name": state.name, "description": state.description, "category": state.category,
            "priceCents": state.price_cents, "currency": state.currency, "status": state.status,
            "imagePublicIds": list(state.image_public_ids),
            "createdAt": state.created_at.isoformat() if state.created_at else None,
            "updatedAt": state.updated_at.isoformat() if state.updated_at else None,
            "version": state.version}


AGGREGATE = Aggregate("catalog", initial_state, decide, evolve, view)
