"""Catalog: products and their images."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse

from buyit.settings import get_settings
from ingest_api.auth import SellerOrAdmin, optional_actor
from ingest_api.commands import checked_id, command_id, execute, now
from ingest_api.errors import ApiError, forbidden, not_found
from ingest_api.images import fetch
from ingest_api.models import ImageUrl, NewProduct, ProductChanges
from ingest_api.reads import PRODUCT_COLUMNS, image_ids
from state.catalog import CreateProduct, UpdateProduct

router = APIRouter(tags=["catalog"])

Limit = Annotated[int, Query(ge=1, le=100)]


def product_id_for(seller_id: str, sku: str) -> str:
    """One product per seller and SKU: the id is derived from both.

    Joined with ':' while the seller id holds none (the ids every product has had); a seller id with a
    ':' is JSON-encoded instead, else seller "a:b" with SKU "c" and seller "a" with SKU "b:c" shared one
    product id, and the second seller's create landed on the first seller's product."""
    if ":" not in seller_id:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"buyit:product:{seller_id}:{sku}"))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "buyit:product-v2:" + json.dumps([seller_id, sku])))


def product_json(request: Request, row: dict) -> dict:
    """A product as clients see it, from a view row or a decider's answer."""
    images = request.app.state.images
    if "product_id" in row:
        ids = image_ids(row)
        out = {"productId": row["product_id"], "sellerId": row["seller_id"], "sku": row["sku"],
               "name": row["name"], "description": row["description"], "category": row["category"],
               "priceCents": row["price_cents"], "currency": row["currency"].strip(), "status": row["status"],
               "imagePublicIds": ids,
               "createdAt": row["created_at"].isoformat() if row["created_at"] else None,
               "updatedAt": row["updated_at"].isoformat() if row["updated_at"] else None,
               "version": row["version"]}
        if "available_quantity" in row:
            out["availableQuantity"] = row["available_quantity"]
    else:
        out = dict(row)
    out["imageUrls"] = [images.url(i) for i in out["imagePublicIds"]]
    return out


@router.post("/api/catalog/products", status_code=201)
async def create_product(request: Request, actor: SellerOrAdmin, body: NewProduct):
    """Create a product for the caller (the seller comes from the token, never the body)."""
    pid = product_id_for(actor.user_id, body.sku)
    command = CreateProduct(command_id=command_id(request, actor), now=now(), actor=actor, product_id=pid,
                            seller_id=actor.user_id, sku=body.sku, name=body.name, description=body.description,
                            category=body.category, price_cents=body.price_cents, currency=body.currency,
                            status=body.status, image_public_ids=tuple(body.image_public_ids))
    return await execute(request, "catalog", pid, command, 201, lambda body: product_json(request, body))


@router.put("/api/catalog/products/{product_id}")
async def update_product(request: Request, product_id: str, actor: SellerOrAdmin, body: ProductChanges):
    """Change a product's fields (owner or admin); the SKU cannot change.

    The fields named are set to absolute values, so updates are ordered by time: one older than the
    change in force is 409 `superseded` (a late redelivery must not undo a newer change)."""
    checked_id(product_id, "product")
    changes = body.model_dump(exclude_none=True)
    if "image_public_ids" in changes:
        changes["image_public_ids"] = tuple(changes["image_public_ids"])
    command = UpdateProduct(command_id=command_id(request, actor), now=now(), actor=actor,
                            product_id=product_id, **changes)
    return await execute(request, "catalog", product_id, command, shape=lambda body: product_json(request, body))


@router.get("/api/catalog/products/browse")
async def browse(request: Request, category: Annotated[str | None, Query(max_length=100)] = None,
                 minPriceCents: Annotated[int | None, Query(ge=0, le=10**12)] = None,
                 maxPriceCents: Annotated[int | None, Query(ge=0, le=10**12)] = None,
                 q: Annotated[str | None, Query(max_length=200)] = None,
                 limit: Limit = 20, cursor: Annotated[str | None, Query(max_length=500)] = None):
    """ACTIVE products, filtered by category, price range and text, with images and availability."""
    where, params = ["p.status = 'ACTIVE'"], []
    if category:
        where.append("p.category = %s")
        params.append(_clean(category))
    if minPriceCents is not None:
        where.append("p.price_cents >= %s")
        params.append(minPriceCents)
    if maxPriceCents is not None:
        where.append("p.price_cents <= %s")
        params.append(maxPriceCents)
    if q:
        where.append("(p.name ILIKE %s OR p.description ILIKE %s)")
        like = "%" + _clean(q).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like]
    rows, next_cursor = await request.app.state.reads.page(
        " AND ".join(where), params, "p.product_id", cursor, limit,
        f"SELECT {PRODUCT_COLUMNS} FROM products p LEFT JOIN stock s USING (product_id)")
    return {"items": [product_json(request, r) for r in rows], "nextCursor": next_cursor}


@router.get("/api/catalog/products/by-seller/{seller_id}")
async def by_seller(request: Request, seller_id: str, actor: SellerOrAdmin, limit: Limit = 20,
                    cursor: Annotated[str | None, Query(max_length=500)] = None):
    """Every product of one seller, whatever its status (that seller or an admin)."""
    checked_id(seller_id, "seller")
    if not (actor.is_admin or actor.user_id == seller_id):
        raise forbidden("sellers see only their own products")
    rows, next_cursor = await request.app.state.reads.page(
        "p.seller_id = %s", [seller_id], "p.product_id", cursor, limit,
        f"SELECT {PRODUCT_COLUMNS} FROM products p LEFT JOIN stock s USING (product_id)")
    return {"items": [product_json(request, r) for r in rows], "nextCursor": next_cursor}


@router.get("/api/catalog/products/{product_id}")
async def get_product(request: Request, product_id: str):
    """A product's details; drafts and inactive products only to their seller or an admin."""
    checked_id(product_id, "product")
    row = await request.app.state.reads.product(product_id)
    if row is None:
        raise not_found("product")
    if row["status"] != "ACTIVE":
        actor = await optional_actor(request)
        if actor is None or not (actor.is_admin or actor.user_id == row["seller_id"]):
            raise not_found("product")
    return product_json(request, row)


@router.post("/api/catalog/images/upload", status_code=201)
async def upload_image(request: Request, actor: SellerOrAdmin, file: UploadFile = File(...)):
    """Store an uploaded image; answers its `publicId` and CDN `url`."""
    store = request.app.state.images
    data = await file.read(store.max_bytes + 1)
    return store.upload(data)


@router.post("/api/catalog/images/upload-url", status_code=201)
async def upload_image_url(request: Request, actor: SellerOrAdmin, body: ImageUrl):
    """Fetch an image from a URL and store it."""
    store = request.app.state.images
    allow_private = get_settings().buyit_allow_private_image_urls
    return store.upload(await fetch(body.url, store.max_bytes, allow_private))


@router.get("/images/{public_id}", include_in_schema=False)
async def image(request: Request, public_id: str):
    path = request.app.state.images.path(public_id)
    if path is None:
        raise not_found("image")
    return FileResponse(path)


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ApiError(422, "invalid", "query parameters must not contain NUL characters")
    return value
