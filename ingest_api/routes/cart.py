"""The buyer's cart: add, change and remove items (each a soft reservation)."""

from __future__ import annotations

import json
from fastapi import APIRouter, Request

from buyit.settings import get_settings
from ingest_api.auth import BuyerOrAdmin
from ingest_api.commands import checked_id, command_id, execute, now
from ingest_api.errors import not_found
from ingest_api.models import CartItemChange, NewCartItem
from sinks.cart_cache import cache_key
from state.cart import AddCartItem, ChangeCartItem, RemoveCartItem

router = APIRouter(prefix="/api/cart", tags=["cart"])


def _ttls():
    s = get_settings()
    return s.buyit_soft_reservation_ttl_s, s.buyit_cart_ttl_s


def empty_cart(buyer_id: str) -> dict:
    return {"cartId": None, "buyerId": buyer_id, "status": "ACTIVE", "items": [], "totalCents": 0,
            "currency": None, "expiresAt": None, "orderId": None}


@router.get("")
async def get_cart(request: Request, actor: BuyerOrAdmin):
    """The caller's open cart (from the Redis cache, else the Postgres view); empty if there is none."""
    cached = await request.app.state.redis.get(cache_key(actor.user_id))
    if cached:
        return json.loads(cached)
    row = await request.app.state.reads.one(
        "SELECT * FROM carts WHERE buyer_id = %s AND status IN ('ACTIVE', 'CHECKOUT') "
        "ORDER BY version DESC LIMIT 1", actor.user_id)
    if row is None or (row["status"] == "ACTIVE" and row["expires_at"] and row["expires_at"] <= now()):
        return empty_cart(actor.user_id)
    return {"cartId": row["cart_id"], "buyerId": row["buyer_id"], "status": row["status"],
            "items": row["items"], "totalCents": row["total_cents"],
            "currency": row["currency"].strip() if row["currency"] else None,
            "expiresAt": row["expires_at"].isoformat() if row["expires_at"] else None,
            "orderId": row["order_id"], "version": row["version"]}


@router.post("/items", status_code=201)
async def add_item(request: Request, actor: BuyerOrAdmin, body: NewCartItem):
    """Add units of a product (soft-reserving them); adding a product already in the cart raises its quantity."""
    checked_id(body.product_id, "product")
    product = await request.app.state.reads.sellable(body.product_id)
    if product is None:
        raise not_found("product")
    reservation_ttl, cart_ttl = _ttls()
    command = AddCartItem(command_id=command_id(request, actor), now=now(), actor=actor, buyer_id=actor.user_id,
                          product_id=body.product_id, sku=product["sku"], seller_id=product["seller_id"],
                          price_cents=product["price_cents"], currency=product["currency"].strip(),
                          quantity=body.quantity, reservation_ttl_s=reservation_ttl, cart_ttl_s=cart_ttl)
    return await execute(request, "cart", actor.user_id, command, 201)


@router.put("/items/{item_id}")
async def change_item(request: Request, item_id: str, actor: BuyerOrAdmin, body: CartItemChange):
    """Set an item's quantity; beyond what is available → 409 and the old quantity stays."""
    checked_id(item_id, "cart item")
    reservation_ttl, cart_ttl = _ttls()
    command = ChangeCartItem(command_id=command_id(request, actor), now=now(), actor=actor, buyer_id=actor.user_id,
                             item_id=item_id, quantity=body.quantity, reservation_ttl_s=reservation_ttl,
                             cart_ttl_s=cart_ttl)
    return await execute(request, "cart", actor.user_id, command)


@router.delete("/items/{item_id}")
async def remove_item(request: Request, item_id: str, actor: BuyerOrAdmin):
    """Remove an item; its reservation is released."""
    checked_id(item_id, "cart item")
    command = RemoveCartItem(command_id=command_id(request, actor), now=now(), actor=actor, buyer_id=actor.user_id,
                             item_id=item_id, cart_ttl_s=_ttls()[1])
    return await execute(request, "cart", actor.user_id, command)
