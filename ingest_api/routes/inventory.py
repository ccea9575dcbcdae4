"""Inventory: stock levels for sellers, availability for everyone."""

from fastapi import APIRouter, Request

from ingest_api.auth import SellerOrAdmin
from ingest_api.commands import checked_id, command_id, execute, now
from ingest_api.errors import forbidden, not_found
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
    """Set the units on hand; `expectedVersion` makes it a compare-and-set (409 `version_conflict`)."""
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
