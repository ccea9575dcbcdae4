"""Queries against the Postgres views (the read side); nothing here writes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ingest_api.errors import ApiError

# How long the price and status a cart add is stamped with may be reused. The view they come from
# already trails the catalog's events; a hot product is read once a second instead of per request.
SELLABLE_TTL_S = 1.0
SELLABLE_CACHED = 10_000

PRODUCT_COLUMNS = """p.product_id, p.seller_id, p.sku, p.name, p.description, p.category, p.price_cents,
    p.currency, p.status, p.image_public_ids, p.created_at, p.updated_at, p.version,
    coalesce(s.available_quantity, 0) AS available_quantity"""


CURSOR_MAC_BYTES = 12


def _cursor_mac(secret: str, scope: str, raw: bytes) -> bytes:
    return hmac.new(secret.encode(), scope.encode() + b"\x00" + raw, hashlib.sha256).digest()[:CURSOR_MAC_BYTES]


def encode_cursor(value: str, scope: str, secret: str) -> str:
    """The last key of a page, signed for the list (`scope`) that handed it out."""
    raw = value.encode()
    return base64.urlsafe_b64encode(_cursor_mac(secret, scope, raw) + raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, scope: str, secret: str) -> str | None:
    """The key a page starts after; a cursor this API did not hand out for this list is a 422.

    Signed, so a tampered cursor (or one from another list) is refused rather than quietly starting a
    page somewhere else; it hides nothing (the WHERE clause decides what a caller sees)."""
    if not cursor:
        return None
    try:
        data = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
        mac, raw = data[:CURSOR_MAC_BYTES], data[CURSOR_MAC_BYTES:]
        value = raw.decode() if hmac.compare_digest(mac, _cursor_mac(secret, scope, raw)) else None
    except (ValueError, UnicodeError):
        value = None
    if value is None or "\x00" in value or len(value) > 200:
        raise ApiError(422, "invalid", "cursor is not one this API handed out for this list")
    return value


class Reads:
    """A small async pool over the views."""

    def __init__(self, url: str, cursor_secret: str):
        self.cursor_secret = cursor_secret
        self.pool = AsyncConnectionPool(url, min_size=1, max_size=10, open=False,
                                        kwargs={"row_factory": dict_row, "autocommit": True})
        self._sellable: dict[str, tuple[float, dict]] = {}

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    async def one(self, sql: str, *params) -> dict | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

    async def all(self, sql: str, *params) -> list[dict]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def page(self, sql_where: str, params: list, order_key: str, cursor: str | None, limit: int,
                   select: str) -> tuple[list[dict], str | None]:
        """Keyset pagination over `order_key`; returns the rows and the next cursor (or None)."""
        scope = f"{select} ORDER BY {order_key}"
        after = decode_cursor(cursor, scope, self.cursor_secret)
        where = [sql_where] if sql_where else []
        if after is not None:
            where.append(f"{order_key} > %s")
            params = [*params, after]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.all(f"{select} {clause} ORDER BY {order_key} LIMIT %s", *params, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (encode_cursor(str(rows[-1][order_key.split('.')[-1]]), scope, self.cursor_secret)
                       if more and rows else None)
        return rows, next_cursor

    async def product(self, product_id: str) -> dict | None:
        return await self.one(f"SELECT {PRODUCT_COLUMNS} FROM products p LEFT JOIN stock s USING (product_id) "
                              "WHERE p.product_id = %s", product_id)

    async def sellable(self, product_id: str) -> dict | None:
        """An ACTIVE product's row as a cart add needs it (sku, seller, price, currency), at most
        `SELLABLE_TTL_S` older than the view; None if it is missing or not for sale."""
        now = time.monotonic()
        known = self._sellable.get(product_id)
        if known is not None and now - known[0] < SELLABLE_TTL_S:
            return known[1]
        row = await self.one("SELECT product_id, sku, seller_id, price_cents, currency, status FROM products "
                             "WHERE product_id = %s", product_id)
        if row is None or row["status"] != "ACTIVE":
            self._sellable.pop(product_id, None)
            return None
        if len(self._sellable) >= SELLABLE_CACHED:
            self._sellable.clear()
        self._sellable[product_id] = (now, row)
        return row

    async def stock(self, product_id: str) -> dict | None:
        return await self.one("SELECT * FROM stock WHERE product_id = %s", product_id)

    async def ledger_account(self, account_id: str) -> dict | None:
        return await self.one("SELECT * FROM ledger_accounts WHERE account_id = %s", account_id)

    async def command_result(self, command_id: str) -> dict | None:
        """A command's answer as the projection recorded it (the `command.results` envelope), or None."""
        row = await self.one("SELECT result FROM command_results WHERE command_id = %s", command_id)
        return json_value(row["result"]) if row else None

    async def health(self) -> bool:
        return (await self.one("SELECT 1 AS ok"))["ok"] == 1


def json_value(value):
    """A jsonb column's value (psycopg parses jsonb; a text cast arrives as a string)."""
    return json.loads(value) if isinstance(value, str) else value


def image_ids(row: dict) -> list[str]:
    return list(json_value(row.get("image_public_ids") or []))
