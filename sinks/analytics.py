"""DuckDB queries over the Parquet event lake (written by sinks/lake.py).

Every query reads the lake through `_events`, which keeps one row per `event_id`: the lake is
written at least once, so the same event may sit in several files. Each call opens its own
in-memory DuckDB connection, so calls may run in parallel threads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from state.common import type_name
from state.inventory import LowStockAlert
from state.order import OrderConfirmed, OrderPlaced

# One row per event of one topic (topic is a hive partition, so other topics' files are skipped).
_EVENTS = """(SELECT DISTINCT ON (event_id) * FROM read_parquet($glob, hive_partitioning = true)
              WHERE topic = '{topic}' AND type IN ({types}))"""

_SALES = """
WITH events AS {events},
confirmed AS (SELECT key AS order_id, min(occurred_at) AS at FROM events WHERE type = $confirmed GROUP BY key),
placed AS (SELECT key AS order_id, any_value(payload) AS payload FROM events WHERE type = $placed GROUP BY key),
items AS (
  SELECT c.order_id, date_trunc('minute', c.at) AS minute,
         unnest(from_json(json_extract(p.payload, '$.items'),
                '[{{"sellerId": "VARCHAR", "quantity": "BIGINT", "priceCents": "BIGINT", "currency": "VARCHAR"}}]'),
                recursive := true)
  FROM confirmed c JOIN placed p USING (order_id)
  WHERE $since::TIMESTAMP IS NULL OR c.at >= $since::TIMESTAMP)
SELECT minute, sellerId, currency, count(DISTINCT order_id) AS orders, sum(quantity) AS units,
       sum(quantity * priceCents) AS grossCents
FROM items GROUP BY ALL ORDER BY minute, sellerId, currency
"""

_ALERTS = """
SELECT event_id, occurred_at, payload ->> '$.productId' AS productId, payload ->> '$.sellerId' AS sellerId,
       CAST(payload ->> '$.available' AS BIGINT) AS available, CAST(payload ->> '$.threshold' AS BIGINT) AS threshold
FROM {events}
WHERE $seller::VARCHAR IS NULL OR payload ->> '$.sellerId' = $seller::VARCHAR
ORDER BY occurred_at DESC, event_id LIMIT $limit
"""


def _glob(lake_dir: Path | str) -> str | None:
    """The lake's Parquet glob, or None when no file has been written yet (DuckDB errors on no match)."""
    root = Path(lake_dir) / "events"
    return f"{root}/**/*.parquet" if next(root.glob("**/*.parquet"), None) is not None else None


def _events(topic: str, *types: type) -> str:
    return _EVENTS.format(topic=topic, types=", ".join(f"'{type_name(t)}'" for t in types))


def _query(sql: str, params: dict) -> list[dict]:
    with duckdb.connect() as con:
        cursor = con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values)) for values in cursor.fetchall()]


def _iso(moment: datetime) -> str:
    """A lake timestamp (naive UTC) as ISO 8601 with its offset, like every other time the API answers."""
    return moment.replace(tzinfo=UTC).isoformat()


def _naive_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment and moment.tzinfo else moment


def sales_per_seller_per_minute(lake_dir: Path | str, since: datetime | None = None) -> list[dict]:
    """Confirmed sales per seller per minute of confirmation (UTC), optionally confirmed at or after `since`.

    Rows: minute, sellerId, currency, orders, units, grossCents. `OrderConfirmed` carries no items,
    so each confirmed order is joined to its `OrderPlaced` for them. Currency is a grouping column
    because cents of different currencies do not add up.
    """
    glob = _glob(lake_dir)
    if glob is None:
        return []
    rows = _query(_SALES.format(events=_events("order.events", OrderPlaced, OrderConfirmed)),
                  {"glob": glob, "confirmed": type_name(OrderConfirmed), "placed": type_name(OrderPlaced),
                   "since": _naive_utc(since)})
    return [{**r, "minute": _iso(r["minute"]), "orders": int(r["orders"]), "units": int(r["units"]),
             "grossCents": int(r["grossCents"])} for r in rows]


def stock_alerts(lake_dir: Path | str, seller_id: str | None = None, limit: int = 100) -> list[dict]:
    """`LowStockAlert` events, newest first, optionally of one seller: eventId, at, productId, sellerId,
    available, threshold."""
    glob = _glob(lake_dir)
    if glob is None:
        return []
    rows = _query(_ALERTS.format(events=_events("inventory.events", LowStockAlert)),
                  {"glob": glob, "seller": seller_id, "limit": limit})
    return [{"eventId": r["event_id"], "at": _iso(r["occurred_at"]), "productId": r["productId"],
             "sellerId": r["sellerId"], "available": r["available"], "threshold": r["threshold"]} for r in rows]
