"""Ledger reads: account balances and transactions."""

from fastapi import APIRouter, Request

from ingest_api.auth import Caller
from ingest_api.commands import checked_id
from ingest_api.errors import forbidden, not_found

router = APIRouter(prefix="/api/ledger", tags=["ledger"])


@router.get("/accounts/{account_id}")
async def account(request: Request, account_id: str, actor: Caller):
    """An account's balance in its normal direction (a seller sees its own payable; admins all)."""
    checked_id(account_id, "account")
    row = await request.app.state.reads.ledger_account(account_id)
    if row is None:
        raise not_found("account")
    if not (actor.is_admin or (row["kind"] == "SELLER_PAYABLE" and row["owner_id"] == actor.user_id)):
        raise forbidden("sellers see only their own payable account")
    return {"accountId": row["account_id"], "balanceCents": row["balance_cents"],
            "currency": row["currency"].strip()}
