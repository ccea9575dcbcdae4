"""Events as rows of the lake's typed fact tables: a pure mapping, no I/O.

Every fact row starts with the same three columns: `event_id` and `line` (the natural key: an
event gives one row per line, e.g. one per order item or ledger entry) and `occurred_at` (the
envelope's time, naive UTC; it also names the day partition). The tables:

- order_lines: one per item of a placed order (sales join them to the order's confirmation).
- order_events: an order placed, confirmed or cancelled.
- reservations: every step of a soft or hard reservation (reserved ... expired, fulfilled).
- stock_movements: units on hand changing: created (0), set by the seller, sold.
- payments: created, captured, failed, cancelled, flagged for refund, refunded.
- ledger_entries: one per entry of each posted transaction.
- cart_events: a cart created, items asked for, confirmed, refused, removed, checkout, its end.
- products: a product created or updated (the catalog dimension: seller, category, name).
- sales: one per line of a confirmed order, at the time of confirmation (the sales queries read only
  this). The event alone cannot give them (`OrderConfirmed` carries no lines), so the projection's
  fold derives them from the order's state (`sale_rows`), once per confirmation: it skips redelivered
  events, so this table holds no duplicates and its readers need not dedupe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from datetime import UTC, datetime

from buyit.envelope import Envelope
from state import catalog, inventory, ledger, order
from state import registry  # noqa: F401  (registers every event type, so an envelope's message decodes)
from state.user import PAYABLE_PREFIX

KEY = (("event_id", "VARCHAR"), ("line", "INTEGER"), ("occurred_at", "TIMESTAMP"))

# table -> its columns after KEY, with DuckDB types (the Parquet files are written with these).
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "order_lines": (("order_id", "VARCHAR"), ("item_id", "VARCHAR"), ("buyer_id", "VARCHAR"),
                    ("seller_id", "VARCHAR"), ("product_id", "VARCHAR"), ("sku", "VARCHAR"),
                    ("quantity", "BIGINT"), ("price_cents", "BIGINT"), ("amount_cents", "BIGINT"),
                    ("currency", "VARCHAR"), ("fee_bps", "INTEGER")),
    "order_events": (("order_id", "VARCHAR"), ("event", "VARCHAR"), ("buyer_id", "VARCHAR"),
                     ("total_cents", "BIGINT"), ("currency", "VARCHAR"), ("reason", "VARCHAR")),
    "reservations": (("product_id", "VARCHAR"), ("reservation_id", "VARCHAR"), ("event", "VARCHAR"),
                     ("kind", "VARCHAR"), ("buyer_id", "VARCHAR"), ("cart_id", "VARCHAR"),
                     ("order_id", "VARCHAR"), ("quantity", "BIGINT"), ("available", "BIGINT"),
                     ("reason", "VARCHAR")),
    "stock_movements": (("product_id", "VARCHAR"), ("version", "BIGINT"), ("event", "VARCHAR"),
                        ("seller_id", "VARCHAR"), ("quantity", "BIGINT"), ("total_after", "BIGINT")),
    "payments": (("payment_id", "VARCHAR"), ("order_id", "VARCHAR"), ("event", "VARCHAR"),
                 ("amount_cents", "BIGINT"), ("currency", "VARCHAR"), ("reason", "VARCHAR"),
                 ("refund_key", "VARCHAR"), ("seller_id", "VARCHAR")),
    "ledger_entries": (("transaction_id", "VARCHAR"), ("payment_id", "VARCHAR"), ("order_id", "VARCHAR"),
                       ("currency", "VARCHAR"), ("account_id", "VARCHAR"), ("direction", "VARCHAR"),
                       ("amount_cents", "BIGINT"), ("seller_id", "VARCHAR")),
    "cart_events": (("cart_id", "VARCHAR"), ("buyer_id", "VARCHAR"), ("event", "VARCHAR"),
                    ("product_id", "VARCHAR"), ("seller_id", "VARCHAR"), ("quantity", "BIGINT"),
                    ("status", "VARCHAR")),
    # orders_of_seller / orders_of_product: 1 on an order's first line of that seller (product) and
    # currency, else 0, so sum() counts orders without a count(DISTINCT order_id) (5 s over 10 M lines).
    "sales": (("order_id", "VARCHAR"), ("buyer_id", "VARCHAR"), ("seller_id", "VARCHAR"), ("product_id", "VARCHAR"),
              ("quantity", "BIGINT"), ("amount_cents", "BIGINT"), ("currency", "VARCHAR"),
              ("orders_of_seller", "INTEGER"), ("orders_of_product", "INTEGER")),
    "products": (("product_id", "VARCHAR"), ("version", "BIGINT"), ("event", "VARCHAR"),
                 ("seller_id", "VARCHAR"), ("sku", "VARCHAR"), ("name", "VARCHAR"), ("category", "VARCHAR"),
                 ("price_cents", "BIGINT"), ("currency", "VARCHAR"), ("status", "VARCHAR")),
}


@dataclass(frozen=True)
class Derived:
    """Fact rows the projection derived from an aggregate's state, not from its event alone (`sale_rows`)."""

    rows: tuple[tuple[str, tuple], ...]


def columns(table: str) -> tuple[tuple[str, str], ...]:
    """Every column of `table`, the key columns first."""
    return KEY + TABLES[table]


def utc(occurred_at: str) -> datetime:
    """`occurredAt` as a naive UTC timestamp (what the Parquet column holds)."""
    moment = datetime.fromisoformat(occurred_at)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def fact_rows(envelope: Envelope, event: Any = None) -> list[tuple[str, tuple]]:
    """The fact rows of one event, as (table, row) with the row's values in `columns(table)` order.

    `event` is the envelope's message if the caller has decoded it already (the projection has).
    `occurred_at` stays the envelope's ISO string: the writer casts a whole column at once, which is
    cheaper than parsing each row in Python. Events no table wants (and records that are not events)
    give no rows."""
    mapper = _MAPPERS.get(envelope.type)
    if mapper is None:
        return []
    at = envelope.occurred_at
    return [(table, (envelope.event_id, line, at, *values))
            for line, (table, values) in enumerate(mapper(envelope, envelope.message() if event is None else event))]


def sale_rows(envelope: Envelope, event: Any, confirmed: order.Order) -> list[tuple[str, tuple]]:
    """The `sales` rows of an `OrderConfirmed` (`event`), from the order's state after it; [] for any
    other event. The projection's fold calls it once per event it applies."""
    if not isinstance(event, order.OrderConfirmed):
        return []
    rows, sellers, products = [], set(), set()
    for line, item in enumerate(confirmed.items):
        first_of_seller = (item.seller_id, item.currency) not in sellers
        first_of_product = (item.product_id, item.currency) not in products
        sellers.add((item.seller_id, item.currency))
        products.add((item.product_id, item.currency))
        rows.append(("sales", (envelope.event_id, line, envelope.occurred_at, confirmed.order_id, confirmed.buyer_id,
                               item.seller_id, item.product_id, item.quantity, item.quantity * item.price_cents,
                               item.currency, int(first_of_seller), int(first_of_product))))
    return rows


# --- one mapper per event type: (envelope, event) -> [(table, values after KEY)] ----------------------

def _order_placed(env, e: order.OrderPlaced):
    lines = [("order_lines", (e.order_id, i.item_id, e.buyer_id, i.seller_id, i.product_id, i.sku, i.quantity,
                              i.price_cents, i.quantity * i.price_cents, i.currency, e.fee_bps)) for i in e.items]
    return [("order_events", (e.order_id, "PLACED", e.buyer_id, e.total_cents, e.currency, None)), *lines]


def _order_status(event: str, reason: Callable = lambda e: None):
    return lambda env, e: [("order_events", (e.order_id, event, None, None, None, reason(e)))]


def _reservation(event: str, kind=lambda e: getattr(e, "kind", None), reason=lambda e: getattr(e, "reason", None),
                 quantity=lambda e: e.quantity):
    def rows(env, e):
        return [("reservations", (e.product_id, e.reservation_id, event, kind(e), getattr(e, "buyer_id", None),
                                  getattr(e, "cart_id", None), getattr(e, "order_id", None) or None, quantity(e),
                                  getattr(e, "available", None), reason(e)))]
    return rows


def _fulfilled(env, e: inventory.ReservationFulfilled):
    # A sale is both the reservation's last step and units leaving the shelf.
    return [*_reservation("FULFILLED", kind=lambda e: inventory.HARD)(env, e),
            ("stock_movements", (e.product_id, env.version, "SOLD", None, e.quantity, None))]


def _payment(event: str, amount=lambda e: getattr(e, "amount_cents", None), reason=lambda e: getattr(e, "reason", None)):
    def rows(env, e):
        return [("payments", (e.payment_id, e.order_id, event, amount(e), getattr(e, "currency", None) or None,
                              reason(e), getattr(e, "refund_key", None), getattr(e, "seller_id", None) or None))]
    return rows


def _ledger(env, e: ledger.LedgerTransactionPosted):
    # The platform's fee has no seller on its entry; in every transaction the ledger posts, a fee entry
    # follows the payable entry of the seller it was taken from, so it is that seller's fee.
    rows, seller = [], None
    for entry in e.entries:
        if entry.account_id.startswith(PAYABLE_PREFIX):
            seller = entry.account_id.removeprefix(PAYABLE_PREFIX)
        owner = seller if entry.account_id.startswith(PAYABLE_PREFIX) or entry.account_id == ledger.BUYIT_REVENUE else None
        rows.append(("ledger_entries", (e.transaction_id, e.payment_id, e.order_id, e.currency, entry.account_id,
                                        entry.direction, entry.amount_cents, owner)))
    return rows


def _cart(event: str, product=lambda e: None, seller=lambda e: None, quantity=lambda e: None,
          status=lambda e: None):
    # Carts are keyed by buyer: the envelope's key is the buyer even where the event does not say so.
    return lambda env, e: [("cart_events", (e.cart_id, env.key, event, product(e), seller(e), quantity(e),
                                            status(e)))]


def _product(env, e):
    created = isinstance(e, catalog.ProductCreated)
    return [("products", (e.product_id, env.version, "CREATED" if created else "UPDATED",
                          e.seller_id if created else None, e.sku if created else None, e.name, e.category,
                          e.price_cents, e.currency, e.status))]


_MAPPERS: dict[str, Callable] = {
    "OrderPlaced": _order_placed,
    "OrderConfirmed": _order_status("CONFIRMED"),
    "OrderCancelled": _order_status("CANCELLED", reason=lambda e: e.reason),
    "StockReserved": _reservation("RESERVED", kind=lambda e: inventory.SOFT, reason=lambda e: None),
    "ReservationRefused": _reservation("REFUSED", kind=lambda e: inventory.SOFT, reason=lambda e: None,
                                       quantity=lambda e: e.requested),
    "ReservationReleased": _reservation("RELEASED"),
    "ReservationExpired": _reservation("EXPIRED", reason=lambda e: None),
    "StockAllocated": _reservation("ALLOCATED", kind=lambda e: inventory.HARD),
    "AllocationRefused": _reservation("ALLOCATION_REFUSED", kind=lambda e: inventory.HARD,
                                      quantity=lambda e: e.requested),
    "ReservationFulfilled": _fulfilled,
    "StockCreated": lambda env, e: [("stock_movements", (e.product_id, env.version, "CREATED", e.seller_id, None, 0))],
    "StockUpdated": lambda env, e: [("stock_movements", (e.product_id, env.version, "SET", None, None,
                                                         e.total_quantity))],
    "PaymentCreated": _payment("CREATED"),
    "PAYMENT_CAPTURED": _payment("CAPTURED"),
    "PAYMENT_FAILED": _payment("FAILED", amount=lambda e: None),
    "PaymentCancelled": _payment("CANCELLED", amount=lambda e: None),
    "PaymentFlaggedForRefund": _payment("REFUND_FLAGGED"),
    "PaymentRefunded": _payment("REFUNDED", reason=lambda e: None),
    "LedgerTransactionPosted": _ledger,
    "CartCreated": _cart("CREATED"),
    "CartItemRequested": _cart("ITEM_REQUESTED", product=lambda e: e.item.product_id,
                               seller=lambda e: e.item.seller_id, quantity=lambda e: e.quantity),
    "CartItemConfirmed": _cart("ITEM_CONFIRMED", product=lambda e: e.product_id, quantity=lambda e: e.quantity),
    "CartItemRefused": _cart("ITEM_REFUSED", product=lambda e: e.product_id),
    "CartItemRemoved": _cart("ITEM_REMOVED", product=lambda e: e.product_id, quantity=lambda e: e.quantity,
                             status=lambda e: e.reason),
    "CartCheckedOut": _cart("CHECKED_OUT"),
    "CartCompleted": _cart("COMPLETED"),
    "CartAbandoned": _cart("ABANDONED", status=lambda e: e.status),
    "PRODUCT_CREATED": _product,
    "PRODUCT_UPDATED": _product,
}
