"""Analytics over the Parquet lake: the named queries under /api/analytics/{name} (a seller sees its own
figures, an admin everyone's), and the older admin pair (sales per seller per minute, low-stock alerts)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from buyit.settings import get_settings
from ingest_api.auth import AdminOnly, SellerOrAdmin
from ingest_api.errors import ApiError, forbidden, not_found
from sinks import analytics, lake_queries
from ingest_api.models import Since
from sinks.lake import lake_dir

router = APIRouter(prefix="/api/admin/analytics", tags=["analytics"])
named = APIRouter(prefix="/api/analytics", tags=["analytics"])


@named.get("/{name}")
async def named_query(name: str, actor: SellerOrAdmin, since: Since = None, until: Since = None,
                      bucket: Annotated[Literal["minute", "hour", "day"], Query()] = "day",
                      sellerId: Annotated[str | None, Query(max_length=128)] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 10):
    """One named query over the lake (see sinks/lake_queries.py): `{"name", "items"}`. A seller's figures
    are always its own (a `sellerId` naming another seller is 403); an admin sees all, or one `sellerId`."""
    if name not in lake_queries.QUERIES:
        raise not_found(f"analytics query {name!r} (known: {', '.join(lake_queries.QUERIES)})")
    if not actor.is_admin:
        if sellerId not in (None, actor.user_id):
            raise forbidden("a seller sees only its own figures")
        sellerId = actor.user_id  # from the token, never the query string
    since, until = lake_queries.naive_utc(since), lake_queries.naive_utc(until)  # comparable, as the lake holds them
    if since and until and until < since:
        raise ApiError(422, "invalid", "until is before since", problems=[{"loc": ["query", "until"],
                                                                              "msg": "before since"}])
    items = await run_in_threadpool(lake_queries.run, lake_dir(get_settings().buyit_data_dir), name, since, until,
                                    bucket, sellerId, limit)
    return {"name": name, "items": items}




@router.get("/sales-per-minute")
async def sales_per_minute(actor: AdminOnly, since: Since = None):
    """Confirmed sales per seller per minute (UTC), optionally confirmed at or after `since` (admins)."""
    # DuckDB scans files and blocks: keep it off the event loop.
    items = await run_in_threadpool(analytics.sales_per_seller_per_minute, lake_dir(get_settings().buyit_data_dir),
                                    since)
    return {"items": items}


@router.get("/stock-alerts")
async def stock_alerts(actor: SellerOrAdmin, sellerId: Annotated[str | None, Query(max_length=128)] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Low-stock alerts, newest first: admins see any seller's, a seller only its own."""
    if not actor.is_admin:
        if sellerId not in (None, actor.user_id):
            raise forbidden("sellers see only their own stock alerts")
        sellerId = actor.user_id
    items = await run_in_threadpool(analytics.stock_alerts, lake_dir(get_settings().buyit_data_dir), sellerId,
                                    limit)
    return {"items": items}
