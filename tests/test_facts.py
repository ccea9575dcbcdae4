"""Events as fact rows (sinks/facts.py): a pure mapping, checked without any file or database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from buyit.envelope import Envelope, to_wire
from sinks.facts import TABLES, columns, fact_rows
from state import inventory, ledger, order
from state.common import type_name

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def envelope(event, key="k", version=3) -> Envelope:
    return Envelope(event_id="e1", type=type_name(event), key=key, occurred_at=AT.isoformat(), correlation_id="c",
                    causation_id=None, version=version, payload=to_wire(event))


def as_dicts(rows):
    return [(table, dict(zip((name for name, _ in columns(table)), row))) for table, row in rows]


def item(n: int, seller: str, quantity: int, price: int) -> order.OrderItem:
    return order.OrderItem(item_id=f"i{n}", product_id=f"p{n}", sku="S", seller_id=seller, quantity=quantity,
                           price_cents=price, currency="EUR", reservation_id=f"r{n}")


class TestFactRows:
    def test_a_placed_order_is_an_order_event_and_one_line_per_item(self):
        placed = order.OrderPlaced(order_id="o", buyer_id="b", cart_id="c", payment_id="pay",
                                   items=(item(1, "s1", 2, 250), item(2, "s2", 1, 99)), shipments=(),
                                   total_cents=599, currency="EUR", fee_bps=1000, expires_at=AT, created_at=AT)
        rows = as_dicts(fact_rows(envelope(placed, "o", 1)))
        assert [t for t, _ in rows] == ["order_events", "order_lines", "order_lines"]
        assert [r["line"] for _, r in rows] == [0, 1, 2]  # the natural key is (event_id, line)
        assert rows[1][1] == {"event_id": "e1", "line": 1, "occurred_at": AT.isoformat(),
                                   "order_id": "o", "item_id": "i1", "buyer_id": "b", "seller_id": "s1",
                                   "product_id": "p1", "sku": "S", "quantity": 2, "price_cents": 250,
                                   "amount_cents": 500, "currency": "EUR", "fee_bps": 1000}

    def test_a_fee_belongs_to_the_seller_whose_payable_entry_it_follows(self):
        entries = ledger.sale_entries(1_500, (("s1", 1_000), ("s2", 500)), 1000)
        posted = ledger.LedgerTransactionPosted(transaction_id="t", payment_id="pay", order_id="o", currency="USD",
                                                entries=entries, posted_at=AT)
        rows = as_dicts(fact_rows(envelope(posted)))
        fees = [(r["seller_id"], r["amount_cents"]) for _, r in rows if r["account_id"] == ledger.BUYIT_REVENUE]
        assert fees == [("s1", 100), ("s2", 50)]
        assert [r["seller_id"] for _, r in rows if r["account_id"] == ledger.STRIPE_CLEARING] == [None] * 3  # one in, one out per seller

    def test_a_sale_ends_a_reservation_and_takes_units_off_the_shelf(self):
        sold = inventory.ReservationFulfilled(product_id="p", reservation_id="r", order_id="o", quantity=3)
        rows = as_dicts(fact_rows(envelope(sold, "p", 9)))
        assert [(t, r["event"], r["quantity"]) for t, r in rows] == [("reservations", "FULFILLED", 3),
                                                                     ("stock_movements", "SOLD", 3)]
        assert rows[1][1]["version"] == 9 and rows[1][1]["total_after"] is None

    @pytest.mark.parametrize("event", [
        order.ItemAllocated(order_id="o", reservation_id="r"),
        inventory.LowStockAlert(product_id="p", seller_id="s", available=1, threshold=5),
    ], ids=["saga_step", "alert"])
    def test_events_no_table_wants_give_no_rows(self, event):
        assert fact_rows(envelope(event)) == []

    def test_every_table_starts_with_the_natural_key(self):
        for table in TABLES:
            assert [name for name, _ in columns(table)][:3] == ["event_id", "line", "occurred_at"]
