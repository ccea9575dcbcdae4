"""Request bodies. Strict: unknown fields, out-of-range values and values of the wrong JSON type are a 422,
never a 500 (and never quietly coerced: `"quantity": true` is not one unit, `"priceCents": "12"` not 12)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

MAX_QUANTITY = 1_000_000_000
MAX_PRICE_CENTS = 10**12
MAX_VERSION = 2**63 - 1  # a Postgres bigint: a version beyond it can never match one


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def Text(max_length: int, min_length: int = 0):
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_no_nul)]


Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Status = Literal["DRAFT", "ACTIVE", "INACTIVE"]


class Body(BaseModel):
    # strict: the body is JSON, whose types are the client's to get right; lax mode took booleans and
    # numeric strings for integers, so `"quantity": true` put one unit in a cart
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True)


class NewProduct(Body):
    sku: Text(64, 1)
    name: Text(200, 1)
    description: Text(5000) = ""
    category: Text(100) = ""
    price_cents: Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS)]
    currency: Currency
    status: Status = "DRAFT"
    image_public_ids: Annotated[list[Text(200, 1)], Field(max_length=20)] = []


class ProductChanges(Body):
    sku: Text(64, 1) | None = None
    name: Text(200, 1) | None = None
    description: Text(5000) | None = None
    category: Text(100) | None = None
    price_cents: Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS)] | None = None
    currency: Currency | None = None
    status: Status | None = None
    image_public_ids: Annotated[list[Text(200, 1)], Field(max_length=20)] | None = None


class StockLevel(Body):
    product_id: Text(128, 1)
    total_quantity: Quantity
    expected_version: Annotated[int, Field(ge=0, le=MAX_VERSION)] | None = None
    low_stock_threshold: Quantity | None = None


class ImageUrl(Body):
    url: Text(2048, 1)


# Not a full RFC 5322 check (the issuer verified the address): something@somewhere, no spaces.
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"), AfterValidator(_no_nul)]


class Registration(Body):
    email: Email | None = None


class NewCartItem(Body):
    product_id: Text(128, 1)
    quantity: Annotated[int, Field(ge=1, le=10_000)]


class CartItemChange(Body):
    quantity: Annotated[int, Field(ge=1, le=10_000)]


class Tracking(Body):
    tracking_number: Text(100, 1)
    carrier: Text(100, 1)


def _iso_only(value):
    """Pydantic reads a number as unix seconds (`since=6.1e-05` was 1970); the document promises an
    ISO 8601 date-time, so a number is a 422."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("times must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z")
    return value


# A time in a query string: an ISO 8601 date-time, or absent.
Since = Annotated[datetime | None, Query(), BeforeValidator(_iso_only)]
