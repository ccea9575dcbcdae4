"""What each aggregate's state looks like as rows of the Postgres views."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from state.user import payable_account


@dataclass(frozen=True)
class Row:
    """One view row; `guarded` rows only replace an older version, others are inserted once."""

    table: str
    key: tuple[str, ...]
    values: dict[str, Any]
    guarded: bool = True


def rows(aggregate: str, state: Any) -> list[Row]:
    """The rows an aggregate's current state projects to."""
    return _MAPPERS.get(aggregate, lambda s: [])(state)


def _user(state) -> list[Row]:
    if state.user_id is None:
        return []
    out = [Row("users", ("user_id",), {"user_id": state.user_id, "account_type": state.account_type,
                                        "email": state.email, "created_at": state.created_at,
                                        "version": state.version})]
    if state.account_type == "SELLER":  # the seller's payable account opens at zero
        out.append(Row("ledger_accounts", ("account_id",),
                       {"account_id": payable_account(state.user_id), "kind": "SELLER_PAYABLE",
                        "owner_id": state.user_id, "balance_cents": 0, "currency": "USD", "version": 0},
                       guarded=False))
    return out


def _product(state) -> list[Row]:
    if state.product_id is None:
        return []
    return [Row("products", ("product_id",), {
        "product_id": state.product_id, "seller_id": state.seller_id, "sku": state.sku, "name": state.name,
        "description": state.description, "category": state.category, "price_cents": state.price_cents,
        "currency": state.currency, "status": state.status,
        "image_public_ids": json.dumps(list(state.image_public_ids)), "created_at": state.created_at,
        "updated_at": state.updated_at, "version": state.version})]


def _stock(state) -> list[Row]:
    if state.product_id is None:
        return []
    return [Row("stock", ("product_id",), {
        "product_id": state.product_id, "seller_id": state.seller_id, "sku": state.sku,
        "total_quantity": state.total, "available_quantity": state.available,
        "reserved_quantity": state.reserved, "allocated_quantity": state.allocated,
        "sold_quantity": state.sold, "low_stock_threshold": state.low_stock_threshold,
        "version": state.version})]


def _cart(state) -> list[Row]:
    if state.cart_id is None:
        return []
    from state.cart import view
    body = view(state)
    return [Row("carts", ("cart_id",), {
        "cart_id": state.cart_id, "buyer_id": state.buyer_id, "status": state.status,
        "items": json.dumps(body["items"]), "total_cents": body["totalCents"], "currency": body["currency"],
        "expires_at": state.expires_at, "order_id": state.order_id, "created_at": state.created_at,
        "version": state.version})]


_MAPPERS = {"user": _user, "catalog": _product, "inventory": _stock, "cart": _cart}
