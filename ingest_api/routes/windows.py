"""Per-minute figures of the projection's windows, for the seller dashboard: a seller its own, an admin any."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ingest_api.models import Since
from ingest_api.auth import AdminOnly, SellerOrAdmin
from ingest_api.commands import checked_id
from ingest_api.errors import ApiError, forbidden
from state.analytics import FUNNEL_COUNTS, SALES_COUNTS, stock_out_at, velocity
from buyit.envelope import camel

router = APIRouter(prefix="/api/analytics", tags=["analytics"])

DEFAULT_SPAN = timedelta(hours=1)
LONGEST_SPAN = timedelta(days=7)  # a dashboard's chart, not a report: keeps one request's rows bounded
PACE_MINUTES = 15


def _since(since: datetime | None, now: datetime) -> datetime:
    if since is None:
        return now - DEFAULT_SPAN
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    if now - since > LONGEST_SPAN:
        raise ApiError(422, "invalid", f"since: at most {LONGEST_SPAN.days} days back")
    return since


def _minute(row: dict, counts: tuple[str, ...]) -> dict:
    return {"windowStart": row["window_start"].isoformat(), **{camel(c): row[c] for c in counts}}


# Parts ('on_time', 'late') of a minute add up; see dataflows/windows.py.
_SALES_SUMS = ", ".join(f"sum({c})::bigint AS {c}" for c in SALES_COUNTS)
_FUNNEL_SUMS = ", ".join(f"sum({c})::bigint AS {c}" for c in FUNNEL_COUNTS)


@router.get("/windows")
async def sales_windows(request: Request, actor: SellerOrAdmin,
                        sellerId: Annotated[str | None, Query(max_length=128)] = None,
                        since: Since = None):
    """Sales and reservations per minute (UTC, since `since`, default the last hour).

    A seller sees its own (naming another seller is 403); an admin names any seller, or none for
    every seller's totals. For one seller: its totals per minute (`minutes`), each product's
    minutes (`productMinutes`), and per product the pace over the last 15 minutes and when its
    available units run out at that pace (`products`)."""
    if not actor.is_admin:
        if sellerId not in (None, actor.user_id):
            raise forbidden("sellers see only their own figures")
        sellerId = actor.user_id
    now = datetime.now(UTC)
    start = _since(since, now)
    reads = request.app.state.reads
    if sellerId is None:  # an admin, across sellers
        rows = await reads.all(
            f"SELECT window_start, seller_id, {_SALES_SUMS} FROM sales_minutes WHERE product_id = '' "
            "AND window_start >= %s GROUP BY window_start, seller_id ORDER BY window_start, seller_id LIMIT 20000",
            start)
        return {"sellerId": None, "since": start.isoformat(),
                "minutes": [{**_minute(r, SALES_COUNTS), "sellerId": r["seller_id"]} for r in rows]}
    seller = checked_id(sellerId, "seller")
    rows = await reads.all(
        f"SELECT window_start, product_id, {_SALES_SUMS} FROM sales_minutes WHERE seller_id = %s "
        "AND window_start >= %s GROUP BY window_start, product_id ORDER BY window_start, product_id LIMIT 20000",
        seller, min(start, now - timedelta(minutes=PACE_MINUTES + 1)))
    stock = await reads.all(
        "SELECT s.product_id, s.available_quantity, p.name FROM stock s LEFT JOIN products p USING (product_id) "
        "WHERE s.seller_id = %s ORDER BY s.product_id LIMIT 5000", seller)
    shown = [r for r in rows if r["window_start"] >= start]
    return {"sellerId": seller, "since": start.isoformat(),
            "minutes": [_minute(r, SALES_COUNTS) for r in shown if r["product_id"] == ""],
            "productMinutes": [{**_minute(r, SALES_COUNTS), "productId": r["product_id"]}
                               for r in shown if r["product_id"] != ""],
            "products": [_pace(s, rows, now) for s in stock]}


def _pace(stock: dict, rows: list[dict], now: datetime) -> dict:
    units = [(r["window_start"], r["units_sold"]) for r in rows if r["product_id"] == stock["product_id"]]
    pace = velocity(units, now, PACE_MINUTES)
    out_at = stock_out_at(stock["available_quantity"], pace, now)
    return {"productId": stock["product_id"], "name": stock["name"], "availableQuantity": stock["available_quantity"],
            "unitsPerMinute": round(pace, 3), "paceMinutes": PACE_MINUTES,
            "stockOutAt": out_at.isoformat() if out_at else None}


@router.get("/windows/funnel")
async def cart_funnel(request: Request, actor: AdminOnly, since: Since = None):
    """The cart funnel per minute, platform-wide (admins): carts started, items added, checkouts, paid, abandoned."""
    start = _since(since, datetime.now(UTC))
    rows = await request.app.state.reads.all(
        f"SELECT window_start, {_FUNNEL_SUMS} FROM cart_funnel_minutes WHERE window_start >= %s "
        "GROUP BY window_start ORDER BY window_start LIMIT 20000", start)
    return {"since": start.isoformat(), "minutes": [_minute(r, FUNNEL_COUNTS) for r in rows]}


@router.get("/sellers")
async def sellers(request: Request, actor: AdminOnly):
    """Every seller with stock, for an admin's seller picker."""
    rows = await request.app.state.reads.all("SELECT DISTINCT seller_id FROM stock ORDER BY seller_id LIMIT 5000")
    return {"sellers": [r["seller_id"] for r in rows]}
