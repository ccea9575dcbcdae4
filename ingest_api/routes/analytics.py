"""Admin analytics over the Parquet event lake: sales per seller per minute, low-stock alerts."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from fastapi.concurrency import run_in_threadpool

from buyit.settings import get_settings
from ingest_api.auth import AdminOnly, SellerOrAdmin
from ingest_api.errors import forbidden
from sinks import analytics
from sinks.lake import lake_dir

router = APIRouter(prefix="/api/admin/analytics", tags=["analytics"])


def _iso_only(value):
    """Pydantic reads a number as unix seconds (`since=6.1e-05` was 1970); the document promises an
    ISO 8601 date-time, so a number is a 422."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("since must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z")
    return value


Since = Annotated[datetime | None, Query(), BeforeValidator(_iso_only)]


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
