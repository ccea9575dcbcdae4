"""A backfill replays the event topics into a fresh schema and ends identical to the live views."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from bytewax.testing import run_main

from buyit.bootstrap import create_schema
from tests.helpers import eventually
from tests.payments import pay
from tests.test_cart_api import add, listed_product

pytestmark = pytest.mark.integration

TABLES = {"users": "user_id", "products": "product_id", "stock": "product_id", "carts": "cart_id",
          "orders": "order_id", "shipments": "shipment_id", "payments": "payment_id",
          "ledger_transactions": "transaction_id", "ledger_entries": "transaction_id, seq",
          "ledger_accounts": "account_id"}


# A window minute's parts (on time, late) may split differently in a replay; their sum may not.
WINDOWS = {"sales_minutes": ("window_start, seller_id, product_id", "units_sold, gross_cents, orders, "
                             "reservations_made, reservations_expired, reservations_converted"),
           "cart_funnel_minutes": ("window_start", "carts_started, items_added, checkouts, paid, abandoned")}


def snapshot(url: str, schema: str) -> dict:
    with psycopg.connect(url) as conn:
        views = {t: conn.execute(f"SELECT * FROM {schema}.{t} ORDER BY {k}").fetchall() for t, k in TABLES.items()}
        for table, (key, counts) in WINDOWS.items():
            sums = ", ".join(f"sum({c})" for c in counts.split(", "))
            views[table] = conn.execute(f"SELECT {key}, {sums} FROM {schema}.{table} GROUP BY {key} "
                                        f"ORDER BY {key}").fetchall()
        return views


def test_backfill_rebuilds_the_live_views(stack, client, monkeypatch):
    seller, pid = listed_product(client, 6)
    seller.post("/api/users/me")
    buyer = client("BUYER")
    add(buyer, pid, 2)
    answer = buyer.post("/api/cart/checkout").json()
    pay(stack, answer["clientSecret"])
    eventually(lambda: buyer.get(f"/api/orders/{answer['orderId']}").json().get("status") == "CONFIRMED")
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["soldQuantity"] == 2)

    url, schema = stack.env["DATABASE_URL"], f"backfill_{uuid.uuid4().hex[:8]}"
    for name, value in stack.env.items():  # the backfill runs here, against the test stack's parts
        monkeypatch.setenv(name, value)
    from buyit.settings import get_settings
    get_settings.cache_clear()
    try:
        from dataflows.project import backfill_flow
        create_schema(url, schema)
        run_main(backfill_flow(url, schema))
    finally:
        get_settings.cache_clear()
    rebuilt = snapshot(url, schema)
    assert rebuilt["orders"] and rebuilt["ledger_entries"] and rebuilt["sales_minutes"]
    assert eventually(lambda: snapshot(url, "public") == rebuilt or None, what="live views equal the backfill")
