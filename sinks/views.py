"""What each aggregate's state looks like as rows of the Postgres views."""

from __future__ import annotations

from datetime import datetime
from dataclasses import dataclass
from typing import Any

import msgspec

from state.user import payable_account, payable_owner


_ENCODER = msgspec.json.Encoder()


def json_text(value: Any) -> str:
    """`value` as JSON text (msgspec: a replay writes a JSON column for most of its rows, and the standard
    library's encoder took a tenth of its time)."""
    return _ENCODER.encode(value).decode()


@dataclass(frozen=True)
class Row:
    """One view row; `guarded` rows only replace an older version, others are inserted once."""

    table: str
    key: tuple[str, ...]
    values: dict[str, Any]
    guarded: bool = True


def rows(aggregate: str, state: Any) -> list[Row]:
    """The rows an aggregate's current state projects to."""
    return _MAPPERS.get(aggregate, lambda s: [])(state)


def _user(state) -> list[Row]:
    if state.user_id is None:
        return []
    out = [Row("users", ("user_id",), {"user_id": state.user_id, "account_type": state.account_type,
                                        "email": state.email, "created_at": state.created_at,
                                        "version": state.version})]
    if state.account_type == "SELLER":  # the seller's payable account opens at zero
        out.append(_payable_account_row(state.user_id, "USD"))
    return out


def _payable_account_row(seller_id: str, currency: str, opened_at: datetime | None = None) -> Row:
    """The seller's payable account. Its currency is the registration's, or else that of the earliest
    posting: the projection reads different payments' events in no fixed order, so "the first one read"
    would differ between the live views and a replay. The row's version says which wins: 0 for the
    registration, and for a posting minus its epoch millisecond (an earlier posting is "newer"), then the
    currency's letters (two currencies posted in the same millisecond: the alphabetically first wins; with
    epoch seconds alone such a tie was decided by the order of reading, found by tests/faults)."""
    version = 0 if opened_at is None else -(int(opened_at.timestamp() * 1000) * 20_000 + _letters(currency))
    return Row("ledger_accounts", ("account_id",),
               {"account_id": payable_account(seller_id), "kind": "SELLER_PAYABLE", "owner_id": seller_id,
                "balance_cents": 0, "currency": currency, "version": version})


def _letters(currency: str) -> int:
    """A three-letter code as a number below 26³, in alphabetical order."""
    code = 0
    for letter in currency.upper()[:3].ljust(3, "A"):
        code = code * 26 + min(max(ord(letter) - ord("A"), 0), 25)
    return code


def _product(state) -> list[Row]:
    if state.product_id is None:
        return []
    return [Row("products", ("product_id",), {
        "product_id": state.product_id, "seller_id": state.seller_id, "sku": state.sku, "name": state.name,
        "description": state.description, "category": state.category, "price_cents": state.price_cents,
        "currency": state.currency, "status": state.status,
        "image_public_ids": json_text(list(state.image_public_ids)), "created_at": state.created_at,
        "updated_at": state.updated_at, "version": state.version})]


def _stock(state) -> list[Row]:
    if state.product_id is None:
        return []
    return [Row("stock", ("product_id",), {
        "product_id": state.product_id, "seller_id": state.seller_id, "sku": state.sku,
        "total_quantity": state.total, "available_quantity": state.available,
        "reserved_quantity": state.reserved, "allocated_quantity": state.allocated,
        "sold_quantity": state.sold, "low_stock_threshold": state.low_stock_threshold,
        "version": state.version})]


def _cart(state) -> list[Row]:
    if state.cart_id is None:
        return []
    from state.cart import view
    body = view(state)
    return [Row("carts", ("cart_id",), {
        "cart_id": state.cart_id, "buyer_id": state.buyer_id, "status": state.status,
        "items": json_text(body["items"]), "total_cents": body["totalCents"], "currency": body["currency"],
        "expires_at": state.expires_at, "order_id": state.order_id, "created_at": state.created_at,
        "version": state.version})]


def _order(state) -> list[Row]:
    if state.order_id is None:
        return []
    from state.order import shipment_view, view
    body = view(state)
    out = [Row("orders", ("order_id",), {
        "order_id": state.order_id, "buyer_id": state.buyer_id, "status": body["status"],
        "provisional": state.provisional, "total_cents": state.total_cents, "currency": state.currency,
        "payment_id": state.payment_id, "body": json_text(body), "created_at": state.created_at,
        "confirmed_at": state.confirmed_at, "cancelled_at": state.cancelled_at, "version": state.version})]
    for shipment in state.shipments:
        ship = shipment_view(state, shipment)
        out.append(Row("shipments", ("shipment_id",), {
            "shipment_id": shipment.shipment_id, "order_id": state.order_id, "seller_id": shipment.seller_id,
            "status": shipment.status, "provisional": state.provisional, "body": json_text(ship),
            "version": state.version}))
    return out


def _payment(state) -> list[Row]:
    if state.payment_id is None:
        return []
    from state.payment import REFUND_PENDING, view
    return [Row("payments", ("payment_id",), {
        "payment_id": state.payment_id, "order_id": state.order_id, "buyer_id": state.buyer_id,
        "state": state.state, "amount_cents": state.amount_cents, "currency": state.currency,
        "intent_id": state.intent_id, "refund_flagged": state.state == REFUND_PENDING,
        "body": json_text(view(state)), "version": state.version})]


def _ledger(state) -> list[Row]:
    from state.ledger import DEBIT
    out = []
    for posted in state.transactions:
        debits = sum(e.amount_cents for e in posted.entries if e.direction == DEBIT)
        credits = sum(e.amount_cents for e in posted.entries if e.direction != DEBIT)
        out.append(Row("ledger_transactions", ("transaction_id",), {
            "transaction_id": posted.transaction_id, "payment_id": posted.payment_id, "order_id": posted.order_id,
            "currency": posted.currency, "debit_cents": debits, "credit_cents": credits,
            "posted_at": posted.posted_at, "version": state.version}))
        out += [Row("ledger_entries", ("transaction_id", "seq"), {
            "transaction_id": posted.transaction_id, "seq": seq, "account_id": e.account_id,
            "direction": e.direction, "amount_cents": e.amount_cents, "currency": posted.currency}, guarded=False)
            for seq, e in enumerate(posted.entries)]
        # a seller's payable account exists from its first entry, whether or not the seller registered
        out += [_payable_account_row(seller_id, posted.currency, posted.posted_at)
                for seller_id in dict.fromkeys(payable_owner(e.account_id) for e in posted.entries) if seller_id]
    return out


def stale_row(aggregate: str, key: str, version: int | None, reason: str, error: str, occurred_at: str) -> Row:
    """An aggregate whose views may be wrong from `version` on (see `stale_aggregates` in schema.sql)."""
    return Row("stale_aggregates", ("aggregate", "aggregate_id", "version", "reason"), {
        "aggregate": aggregate, "aggregate_id": key, "version": version if version is not None else -1,
        "reason": reason, "error": error[-2000:], "occurred_at": occurred_at}, guarded=False)


def answer_row(result: dict) -> Row:
    """A command's answer (a `command.results` envelope) as its row; the first answer stands."""
    return Row("command_results", ("command_id",), {
        "command_id": result["correlationId"], "requested_by": result.get("requestedBy"),
        "result": json_text(result), "answered_at": result["occurredAt"]}, guarded=False)


# Every table the rows above go to.
TABLES = ("users", "ledger_accounts", "products", "stock", "carts", "orders", "shipments", "payments",
          "ledger_transactions", "ledger_entries", "stale_aggregates", "command_results")

_MAPPERS = {"user": _user, "catalog": _product, "inventory": _stock, "cart": _cart, "order": _order,
            "payment": _payment, "ledger": _ledger}


def window_rows(figures) -> list[Row]:
    """A window's figures (`state.analytics.WindowFigures`) as its row; the fact count is the version,
    so a part only ever moves forward to a fuller count."""
    from state.analytics import SALES
    values = {"window_start": figures.window_start, "part": figures.part, **figures.counts,
              "closed": figures.closed, "version": figures.facts}
    if figures.scope == SALES:
        return [Row("sales_minutes", ("window_start", "seller_id", "product_id", "part"),
                    {"seller_id": figures.seller_id, "product_id": figures.product_id, **values})]
    return [Row("cart_funnel_minutes", ("window_start", "part"), values)]


def window_record(figures) -> tuple[str, str, bytes]:
    """A window's figures as an `analytics.windows` record: (topic, key, JSON value) in camelCase."""
    from buyit.envelope import ANALYTICS_WINDOWS, camel
    body = {"scope": figures.scope, "sellerId": figures.seller_id, "productId": figures.product_id,
            "windowStart": figures.window_start.isoformat(), "part": figures.part, "closed": figures.closed,
            "facts": figures.facts, **{camel(k): v for k, v in figures.counts.items()}}
    key = f"{figures.scope}/{figures.seller_id}/{figures.product_id}"
    return (ANALYTICS_WINDOWS, key, _ENCODER.encode(body))
