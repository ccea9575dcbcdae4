"""Inventory: stock levels for sellers, availability for everyone."""

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ingest_api.auth import SellerOrAdmin
from ingest_api.commands import checked_id, command_id, execute, now
from ingest_api.errors import ApiError, forbidden, not_found
from ingest_api.models import StockLevel
from state.inventory import SetStock

router = APIRouter(prefix="/api/inventory", tags=["inventory"])


def stock_json(row: dict) -> dict:
    return {"productId": row["product_id"], "sellerId": row["seller_id"], "sku": row["sku"],
            "totalQuantity": row["total_quantity"], "availableQuantity": row["available_quantity"],
            "reservedQuantity": row["reserved_quantity"], "allocatedQuantity": row["allocated_quantity"],
            "soldQuantity": row["sold_quantity"], "lowStockThreshold": row["low_stock_threshold"],
            "version": row["version"]}


@router.get("/stock/{product_id}")
async def get_stock(request: Request, product_id: str, actor: SellerOrAdmin):
    """A product's stock (its seller or an admin)."""
    checked_id(product_id, "stock")
    row = await request.app.state.reads.stock(product_id)
    if row is None:
        raise not_found("stock")
    if not (actor.is_admin or actor.user_id == row["seller_id"]):
        raise forbidden("only the product's seller or an admin may see its stock")
    return stock_json(row)


@router.put("/stock")
async def set_stock(request: Request, actor: SellerOrAdmin, body: StockLevel):
    """Set the units on hand; `expectedVersion` makes it a compare-and-set (409 `version_conflict`).

    Without it the total is absolute and ordered by time: one older than the setting in force is
    409 `superseded` (a late redelivery must not bring back units sold since)."""
    checked_id(body.product_id, "stock")
    command = SetStock(command_id=command_id(request, actor), now=now(), actor=actor,
                       product_id=body.product_id, total_quantity=body.total_quantity,
                       expected_version=body.expected_version, low_stock_threshold=body.low_stock_threshold)
    return await execute(request, "inventory", body.product_id, command)


@router.get("/availability/{product_id}")
async def availability(request: Request, product_id: str):
    """How many units a buyer can put in a cart right now."""
    checked_id(product_id, "product")
    row = await request.app.state.reads.one(
        "SELECT s.available_quantity FROM stock s JOIN products p USING (product_id) "
        "WHERE s.product_id = %s AND p.status = 'ACTIVE'", product_id)
    if row is None:
        raise not_found("product")
    return {"productId": product_id, "availableQuantity": row["available_quantity"],
            "inStock": row["available_quantity"] > 0}


STREAM_MAX_S = 3600  # a dashboard reconnects after an hour; keeps idle connections from piling up


@router.get("/stream")
async def stock_stream(request: Request, actor: SellerOrAdmin,
                       sellerId: Annotated[str | None, Query(max_length=128)] = None):
    """A live stock dashboard: Server-Sent Events, one `stock` event per product whenever its stock changes.

    A seller streams its own products; an admin names the seller. The first events carry every
    product's current stock.
    """
    if actor.is_admin:
        if sellerId is None:
            raise ApiError(422, "invalid", "admins name the seller: ?sellerId=")
        seller = checked_id(sellerId, "seller")
    elif sellerId not in (None, actor.user_id):
        raise forbidden("sellers stream only their own stock")
    else:
        seller = actor.user_id
    feeds = request.app.state.stock_feeds
    watcher = feeds.watch(seller)  # 429 past the per-seller cap; one Postgres poll serves every stream

    async def events():
        started = last_sent = time.monotonic()
        try:
            while time.monotonic() - started < STREAM_MAX_S and not await request.is_disconnected():
                try:
                    row = await asyncio.wait_for(watcher.rows.get(), timeout=1.0)
                except TimeoutError:
                    if time.monotonic() - last_sent > 15:  # a comment line keeps proxies from timing out
                        last_sent = time.monotonic()
                        yield ": keep-alive\n\n"
                    continue
                if row is None:  # fell too far behind: reconnecting starts from a fresh snapshot
                    return
                last_sent = time.monotonic()
                # the product's name too, for the dashboard's table
                yield f"event: stock\ndata: {json.dumps({**stock_json(row), 'name': row.get('name')})}\n\n"
        finally:
            feeds.leave(seller, watcher)
    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
