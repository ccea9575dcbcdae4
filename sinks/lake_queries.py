"""The named analytics queries over the lake's fact tables (views from sinks/lake_sql.py).

Every query takes the same parameters: `since` / `until` (a half-open range [since, until) of
naive-UTC times; None is unbounded), `bucket` (minute, hour or day), `seller` (None: every seller;
otherwise only that seller's figures) and `limit` (top-products only). Money is integer cents per
currency (cents of different currencies never add up), times are bucket starts in UTC.

What each one means:
- sales-by-seller / -product / -category: lines of orders confirmed in the range, bucketed by the
  time of confirmation (the `sales` table: an order's lines as they were when it was confirmed).
- top-products: the same sales over the whole range, the `limit` best by gross.
- funnel: carts bucketed by creation; how many got an item reserved, were checked out, were paid.
- cart-abandonment: of those carts with an item, how many ended abandoned (expired or unpaid).
- reservation-expiry: reservations bucketed by when they were first made; how many expired.
- stock-turnover: per product, units sold in the range over the average units on hand
  ((on hand at `since` + on hand at `until`) / 2); null when nothing was on hand.
- platform-fees: the platform's net fee income (BUYIT_REVENUE credits minus debits) per bucket.
- refunds: refunds Stripe made, per bucket, currency and the reason they were owed.
For a seller, funnel and abandonment count the carts that held one of its products, and refunds
the claims taken back from it (a cancelled order's refund credited no seller).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sinks import lake_sql

BUCKETS = ("minute", "hour", "day")

_IN_RANGE = """(($since::TIMESTAMP IS NULL OR {t} >= $since::TIMESTAMP)
               AND ($until::TIMESTAMP IS NULL OR {t} < $until::TIMESTAMP))"""
_SELLER = "($seller::VARCHAR IS NULL OR {c} = $seller::VARCHAR)"

# The catalog dimension: a product's seller (only its creation says), and its latest name and category.
_PRODUCTS = """products_now AS (
  SELECT product_id, max(seller_id) AS seller_id, arg_max(name, version) AS name,
         arg_max(category, version) AS category
  FROM products GROUP BY product_id)"""

# `sales` holds each confirmed line once (sinks/facts.py), at its order's confirmation: no dedupe, no join.
_SALES = f"""sold AS (
  SELECT $sale_bucket AS bucket, *
  FROM sales WHERE {_IN_RANGE.format(t="occurred_at")} AND {_SELLER.format(c="seller_id")})"""

# An order's lines share its confirmation time, so within a bucket an order is counted by the flag on
# its first line of that seller (or product) and currency; categories have no flag and count distinct.
_FIGURES = "sum({orders})::BIGINT AS orders, sum(quantity) AS units, sum(amount_cents) AS grossCents"
_BY_SELLER = _FIGURES.format(orders="orders_of_seller")
_BY_PRODUCT = _FIGURES.format(orders="orders_of_product")
_BY_CATEGORY = "count(DISTINCT order_id) AS orders, sum(quantity) AS units, sum(amount_cents) AS grossCents"

# Carts of the seller asked about: those that asked for one of its products (every cart without one).
_CARTS = f"""created AS (
  SELECT cart_id, min(occurred_at) AS created_at FROM cart_events WHERE event = 'CREATED' GROUP BY cart_id),
reached AS (
  SELECT cart_id, bool_or(event = 'ITEM_CONFIRMED') AS with_items, bool_or(event = 'CHECKED_OUT') AS checked_out,
         bool_or(event = 'COMPLETED') AS completed, bool_or(event = 'ABANDONED') AS abandoned,
         bool_or(event = 'ITEM_REQUESTED' AND {_SELLER.format(c="seller_id")}) AS theirs
  FROM cart_events GROUP BY cart_id),
carts AS (
  SELECT date_trunc($bucket, created_at) AS bucket, r.*
  FROM created JOIN reached r USING (cart_id)
  WHERE {_IN_RANGE.format(t="created_at")} AND ($seller::VARCHAR IS NULL OR r.theirs))"""


@dataclass(frozen=True)
class Query:
    """A named query: its SQL (with $since, $until, $bucket, $seller, $limit) and what it answers."""

    name: str
    sql: str
    summary: str


QUERIES: dict[str, Query] = {q.name: q for q in (
    Query("sales-by-seller", f"""WITH {_SALES}
        SELECT bucket, seller_id AS sellerId, currency, {_BY_SELLER}
        FROM sold GROUP BY ALL ORDER BY bucket, sellerId, currency""",
          "confirmed sales per seller per bucket"),
    Query("sales-by-product", f"""WITH {_SALES}
        SELECT bucket, product_id AS productId, seller_id AS sellerId, currency, {_BY_PRODUCT}
        FROM sold GROUP BY ALL ORDER BY bucket, productId, currency""",
          "confirmed sales per product per bucket"),
    Query("sales-by-category", f"""WITH {_SALES}, {_PRODUCTS}
        SELECT bucket, p.category, currency, {_BY_CATEGORY}
        FROM sold LEFT JOIN products_now p USING (product_id) GROUP BY ALL ORDER BY bucket, category, currency""",
          "confirmed sales per product category per bucket"),
    Query("top-products", f"""WITH {_SALES}, {_PRODUCTS}
        SELECT product_id AS productId, s.seller_id AS sellerId, p.name, p.category, currency, {_BY_PRODUCT}
        FROM sold s LEFT JOIN products_now p USING (product_id) GROUP BY ALL
        ORDER BY grossCents DESC, units DESC, productId LIMIT $limit""",
          "the best-selling products of the range, by gross"),
    Query("funnel", f"""WITH {_CARTS}
        SELECT bucket, count(*) AS carts, count(*) FILTER (WHERE with_items) AS withItems,
               count(*) FILTER (WHERE checked_out) AS checkedOut, count(*) FILTER (WHERE completed) AS paid
        FROM carts GROUP BY ALL ORDER BY bucket""",
          "carts created per bucket, and how many reached each step"),
    Query("cart-abandonment", f"""WITH {_CARTS}
        SELECT bucket, count(*) AS carts, count(*) FILTER (WHERE abandoned) AS abandoned,
               count(*) FILTER (WHERE completed) AS completed,
               count(*) FILTER (WHERE abandoned) / count(*) AS abandonmentRate
        FROM carts WHERE with_items GROUP BY ALL ORDER BY bucket""",
          "carts with items per bucket of creation, and the share that ended abandoned"),
    Query("reservation-expiry", f"""WITH {_PRODUCTS},
        first_made AS (
          SELECT reservation_id, any_value(product_id) AS product_id, min(occurred_at) AS made_at
          FROM reservations WHERE event IN ('RESERVED', 'ALLOCATED') GROUP BY reservation_id),
        expired AS (SELECT DISTINCT reservation_id FROM reservations WHERE event = 'EXPIRED')
        SELECT date_trunc($bucket, made_at) AS bucket, count(*) AS reservations,
               count(e.reservation_id) AS expired, count(e.reservation_id) / count(*) AS expiryRate
        FROM first_made f LEFT JOIN expired e USING (reservation_id) LEFT JOIN products_now p USING (product_id)
        WHERE {_IN_RANGE.format(t="made_at")} AND {_SELLER.format(c="p.seller_id")}
        GROUP BY ALL ORDER BY bucket""",
          "reservations made per bucket, and the share that expired"),
    Query("stock-turnover", f"""WITH {_PRODUCTS},
        numbered AS (  -- a SET (or the creation) fixes units on hand; each sale after it takes units away
          SELECT *, count(total_after) OVER (PARTITION BY product_id ORDER BY version ROWS UNBOUNDED PRECEDING) AS fixed
          FROM stock_movements),
        levels AS (
          SELECT product_id, occurred_at, event, quantity,
                 max(total_after) OVER (PARTITION BY product_id, fixed)
                 - coalesce(sum(CASE WHEN event = 'SOLD' THEN quantity END) OVER (
                     PARTITION BY product_id, fixed ORDER BY version ROWS UNBOUNDED PRECEDING), 0) AS on_hand,
                 version
          FROM numbered),
        per_product AS (
          SELECT product_id,
                 coalesce(arg_max(on_hand, version) FILTER (WHERE $since::TIMESTAMP IS NOT NULL
                                                            AND occurred_at < $since::TIMESTAMP), 0) AS opening,
                 coalesce(arg_max(on_hand, version) FILTER (WHERE $until::TIMESTAMP IS NULL
                                                            OR occurred_at < $until::TIMESTAMP), 0) AS closing,
                 coalesce(sum(quantity) FILTER (WHERE event = 'SOLD' AND {_IN_RANGE.format(t="occurred_at")}), 0)
                   AS sold
          FROM levels GROUP BY product_id)
        SELECT product_id AS productId, p.seller_id AS sellerId, sold AS unitsSold, opening AS openingUnits,
               closing AS closingUnits,
               CASE WHEN opening + closing > 0 THEN sold / ((opening + closing) / 2) END AS turnover
        FROM per_product LEFT JOIN products_now p USING (product_id)
        WHERE {_SELLER.format(c="p.seller_id")}
        ORDER BY turnover DESC NULLS LAST, productId""",
          "per product: units sold over the average units on hand"),
    Query("platform-fees", f"""
        SELECT date_trunc($bucket, occurred_at) AS bucket, currency,
               sum(CASE direction WHEN 'CREDIT' THEN amount_cents ELSE -amount_cents END) AS feesCents
        FROM ledger_entries
        WHERE account_id = 'BUYIT_REVENUE' AND {_IN_RANGE.format(t="occurred_at")}
          AND {_SELLER.format(c="seller_id")}
        GROUP BY ALL ORDER BY bucket, currency""",
          "the platform's net fees per bucket"),
    Query("refunds", f"""WITH flagged AS (
          SELECT payment_id, refund_key, any_value(reason) AS reason, any_value(seller_id) AS seller_id
          FROM payments WHERE event = 'REFUND_FLAGGED' GROUP BY ALL)
        SELECT date_trunc($bucket, r.occurred_at) AS bucket, r.currency, coalesce(f.reason, 'unknown') AS reason,
               count(*) AS refunds, sum(r.amount_cents) AS refundedCents
        FROM payments r LEFT JOIN flagged f USING (payment_id, refund_key)
        WHERE r.event = 'REFUNDED' AND {_IN_RANGE.format(t="r.occurred_at")} AND {_SELLER.format(c="f.seller_id")}
        GROUP BY ALL ORDER BY bucket, currency, reason""",
          "refunds paid per bucket, currency and reason"),
)}


def naive_utc(moment: datetime | None) -> datetime | None:
    """A time as the lake holds it (naive UTC); None stays None."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment and moment.tzinfo else moment


def _plain(value):
    """A DuckDB value as JSON-ready data: times ISO 8601 with their offset, big sums as int."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def run(lake_root: Path | str, name: str, since: datetime | None = None, until: datetime | None = None,
        bucket: str = "day", seller: str | None = None, limit: int = 10) -> list[dict]:
    """Rows of the named query over the lake at `lake_root`; KeyError for an unknown name, ValueError for
    a bucket not in BUCKETS or a range that ends before it starts."""
    sql, params = statement(name, since, until, bucket, seller, limit)
    con = lake_sql.connect(lake_root)
    try:
        cursor = con.execute(sql, params)
        return [{k: _plain(v) for k, v in row.items()} for row in lake_sql.fetch_dicts(cursor)]
    finally:
        con.close()


def statement(name: str, since: datetime | None = None, until: datetime | None = None, bucket: str = "day",
              seller: str | None = None, limit: int = 10) -> tuple[str, dict]:
    """The SQL and parameters `run` executes for the named query; the same errors as `run`."""
    query = QUERIES[name]
    since, until = naive_utc(since), naive_utc(until)
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    if since and until and until < since:
        raise ValueError("until is before since")
    # The bucket (checked against BUCKETS above) goes in as a literal: date_trunc of a constant part is
    # folded once, of a parameter evaluated per row (3x the sales scan's time, bench/analytics.py).
    # A day of sales is the partition's own day, read for free: date_trunc over every row's time took
    # a third of sales-by-seller's time.
    sale_bucket = "date::TIMESTAMP" if bucket == "day" else "date_trunc($bucket, occurred_at)"
    sql = query.sql.replace("$sale_bucket", sale_bucket).replace("$bucket", f"'{bucket}'")
    params = {"since": since, "until": until, "seller": seller, "limit": limit}
    return sql, {k: v for k, v in params.items() if f"${k}" in sql}  # DuckDB refuses unused names
