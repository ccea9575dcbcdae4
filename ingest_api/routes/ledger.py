"""Ledger reads: account balances and transactions."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ingest_api.auth import AdminOnly, SellerOrAdmin
from ingest_api.commands import checked_id
from ingest_api.errors import forbidden, not_found

router = APIRouter(prefix="/api/ledger", tags=["ledger"])

# Payables and revenue grow with credits; the buyer's external account and Stripe clearing with debits.
CREDIT_NORMAL = ("SELLER_PAYABLE", "REVENUE", "REFUNDS_PAYABLE")


@router.get("/accounts/{account_id}")
async def account(request: Request, account_id: str, actor: SellerOrAdmin,
                  currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None):
    """An account's balance in its normal direction (a seller sees its own payable; admins all).

    Balances are kept per currency and never added across them: `balanceCents` is the one in
    `currency` (by default the account's own), `balances` lists every currency it holds."""
    checked_id(account_id, "account")
    row = await request.app.state.reads.ledger_account(account_id)
    if row is None:
        raise not_found("account")
    if not (actor.is_admin or (row["kind"] == "SELLER_PAYABLE" and row["owner_id"] == actor.user_id)):
        raise forbidden("sellers see only their own payable account")
    totals = await request.app.state.reads.all(
        "SELECT currency, coalesce(sum(amount_cents) FILTER (WHERE direction = 'CREDIT'), 0) AS credits, "
        "coalesce(sum(amount_cents) FILTER (WHERE direction = 'DEBIT'), 0) AS debits "
        "FROM ledger_entries WHERE account_id = %s GROUP BY currency ORDER BY currency", account_id)
    sign = 1 if row["kind"] in CREDIT_NORMAL else -1
    balances = {t["currency"].strip(): sign * (int(t["credits"]) - int(t["debits"])) for t in totals}
    shown = currency or row["currency"].strip()
    return {"accountId": row["account_id"], "balanceCents": balances.get(shown, 0), "currency": shown,
            "balances": [{"currency": c, "balanceCents": b} for c, b in balances.items()]}


@router.get("/transactions")
async def transactions(request: Request, actor: AdminOnly, orderId: Annotated[str | None, Query(max_length=128)] = None,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20,
                       cursor: Annotated[str | None, Query(max_length=500)] = None):
    """Ledger transactions with their entries, optionally for one order (admins)."""
    where, params = ("order_id = %s", [orderId]) if orderId else ("", [])
    rows, next_cursor = await request.app.state.reads.page(where, params, "transaction_id", cursor, limit,
                                                           "SELECT * FROM ledger_transactions")
    items = []
    for row in rows:
        entries = await request.app.state.reads.all(
            "SELECT account_id, direction, amount_cents FROM ledger_entries WHERE transaction_id = %s ORDER BY seq",
            row["transaction_id"])
        items.append({"transactionId": row["transaction_id"], "paymentId": row["payment_id"],
                      "orderId": row["order_id"], "currency": row["currency"].strip(),
                      "postedAt": row["posted_at"].isoformat() if row["posted_at"] else None,
                      "entries": [{"accountId": e["account_id"], "direction": e["direction"],
                                   "amountCents": e["amount_cents"]} for e in entries]})
    return {"items": items, "nextCursor": next_cursor}
