"""The double-entry ledger: one balanced transaction per captured payment, keyed by payment id."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from state.common import Aggregate, Command, Event, Rejection, check, derived_id, invalid, message
from state.money import split
from state.user import payable_account

DEBIT, CREDIT = "DEBIT", "CREDIT"
BUYER_EXTERNAL, STRIPE_CLEARING, BUYIT_REVENUE = "BUYER_EXTERNAL", "STRIPE_CLEARING", "BUYIT_REVENUE"


@dataclass(frozen=True)
class Entry:
    account_id: str
    direction: str
    amount_cents: int


@message
class PostSale(Command):
    payment_id: str
    order_id: str
    currency: str
    total_cents: int
    seller_subtotals: tuple[tuple[str, int], ...]
    fee_bps: int


@message
class LedgerTransactionPosted(Event):
    transaction_id: str
    payment_id: str
    order_id: str
    currency: str
    entries: tuple[Entry, ...]
    posted_at: datetime


@dataclass(frozen=True)
class Ledger:
    transaction_id: str | None = None
    payment_id: str = ""
    order_id: str = ""
    currency: str = ""
    entries: tuple[Entry, ...] = ()
    posted_at: datetime | None = None
    version: int = 0


def initial_state() -> Ledger:
    return Ledger()


def sale_entries(total_cents: int, seller_subtotals, fee_bps: int) -> tuple[Entry, ...]:
    """The spec's pattern: the buyer's money into clearing, then per seller out of clearing to payable and fee."""
    entries = [Entry(BUYER_EXTERNAL, DEBIT, total_cents), Entry(STRIPE_CLEARING, CREDIT, total_cents)]
    for seller_id, subtotal in seller_subtotals:
        seller_share, fee = split(subtotal, fee_bps)
        entries += [Entry(STRIPE_CLEARING, DEBIT, subtotal), Entry(payable_account(seller_id), CREDIT, seller_share),
                    Entry(BUYIT_REVENUE, CREDIT, fee)]
    return tuple(entries)


def balanced(entries) -> bool:
    debits = sum(e.amount_cents for e in entries if e.direction == DEBIT)
    credits = sum(e.amount_cents for e in entries if e.direction == CREDIT)
    return debits == credits


def decide(state: Ledger, command: Command) -> list[Event] | Rejection:
    match command:
        case PostSale() if state.transaction_id is not None:
            return []  # one transaction per payment, however often the capture is reported
        case PostSale() if command.total_cents < 0 or any(s < 0 for _, s in command.seller_subtotals):
            return invalid("amounts must not be negative")
        case PostSale() if sum(s for _, s in command.seller_subtotals) != command.total_cents:
            return invalid("seller subtotals must add up to the total")
        case PostSale() if not 0 <= command.fee_bps <= 10_000:
            return invalid("fee must be between 0 and 10000 basis points")
        case PostSale():
            entries = sale_entries(command.total_cents, command.seller_subtotals, command.fee_bps)
            return [LedgerTransactionPosted(transaction_id=derived_id(command.payment_id, "sale"),
                                            payment_id=command.payment_id, order_id=command.order_id,
                                            currency=command.currency, entries=entries, posted_at=command.now)]
    return invalid(f"the ledger does not handle {type(command).__name__}")


def evolve(state: Ledger, event: Event) -> Ledger:
    match event:
        case LedgerTransactionPosted():
            check(balanced(event.entries), "a ledger transaction's debits equal its credits")
            check(all(e.amount_cents >= 0 for e in event.entries), "entry amounts are never negative")
            return replace(state, transaction_id=event.transaction_id, payment_id=event.payment_id,
                           order_id=event.order_id, currency=event.currency, entries=event.entries,
                           posted_at=event.posted_at, version=state.version + 1)
    return replace(state, version=state.version + 1)


def view(state: Ledger) -> dict | None:
    if state.transaction_id is None:
        return None
    return {"transactionId": state.transaction_id, "paymentId": state.payment_id, "orderId": state.order_id,
            "currency": state.currency, "postedAt": state.posted_at.isoformat() if state.posted_at else None,
            "entries": [{"accountId": e.account_id, "direction": e.direction, "amountCents": e.amount_cents}
                        for e in state.entries]}


AGGREGATE = Aggregate("ledger", initial_state, decide, evolve, view)
