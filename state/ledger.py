"""The double-entry ledger, keyed by payment id: the balanced transactions one payment causes.

A capture for a confirmed order posts its sale (the spec's split). A capture that lands on a
cancelled order posts the cash received and the refund owed instead (no seller is credited), and
the refund, once Stripe made it, settles what is owed. Each kind is posted at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from state.common import (Aggregate, Command, Event, Rejection, check, derived_id, invalid, message, per_claim,
                          replace)
from state.money import split
from state.user import payable_account

DEBIT, CREDIT = "DEBIT", "CREDIT"
BUYER_EXTERNAL, STRIPE_CLEARING, BUYIT_REVENUE = "BUYER_EXTERNAL", "STRIPE_CLEARING", "BUYIT_REVENUE"
REFUNDS_PAYABLE = "REFUNDS_PAYABLE"
SALE, REFUND_OWED, REFUND = "sale", "refund-owed", "refund"


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
class PostRefundOwed(Command):
    """Money captured that is owed back to the buyer: all of a cancelled order's (no seller was credited),
    or, with `seller_id`, the part a seller was credited for but could not deliver (taken back from the
    seller and the fee)."""

    payment_id: str
    order_id: str
    currency: str
    amount_cents: int
    refund_key: str = ""
    seller_id: str = ""
    fee_bps: int = 0


@message
class PostRefund(Command):
    """Stripe refunded the buyer: what was owed is paid out."""

    payment_id: str
    order_id: str
    currency: str
    amount_cents: int
    refund_id: str
    refund_key: str = ""


@message
class LedgerTransactionPosted(Event):
    settles = False  # a saga step's fact, never the answer to the request that started it
    transaction_id: str
    payment_id: str
    order_id: str
    currency: str
    entries: tuple[Entry, ...]
    posted_at: datetime


@dataclass(frozen=True)
class Ledger:
    payment_id: str | None = None
    order_id: str = ""
    currency: str = ""
    transactions: tuple[LedgerTransactionPosted, ...] = ()
    version: int = 0

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry of every transaction, in the order they were posted."""
        return tuple(e for t in self.transactions for e in t.entries)

    def posted(self, kind: str) -> bool:
        return any(t.transaction_id == derived_id(self.payment_id or "", kind) for t in self.transactions)


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


def refund_owed_entries(amount_cents: int) -> tuple[Entry, ...]:
    """Cash received into clearing, and out of it to what the buyer is owed: no seller, no fee."""
    return (Entry(BUYER_EXTERNAL, DEBIT, amount_cents), Entry(STRIPE_CLEARING, CREDIT, amount_cents),
            Entry(STRIPE_CLEARING, DEBIT, amount_cents), Entry(REFUNDS_PAYABLE, CREDIT, amount_cents))


def shortfall_entries(amount_cents: int, seller_id: str, fee_bps: int) -> tuple[Entry, ...]:
    """A sale undone for goods not delivered: the seller's share and the fee on it become owed back."""
    share, fee = split(amount_cents, fee_bps)
    return (Entry(payable_account(seller_id), DEBIT, share), Entry(BUYIT_REVENUE, DEBIT, fee),
            Entry(REFUNDS_PAYABLE, CREDIT, amount_cents))


def refund_entries(amount_cents: int) -> tuple[Entry, ...]:
    """What was owed goes back to the buyer."""
    return (Entry(REFUNDS_PAYABLE, DEBIT, amount_cents), Entry(BUYER_EXTERNAL, CREDIT, amount_cents))


def balanced(entries) -> bool:
    debits = sum(e.amount_cents for e in entries if e.direction == DEBIT)
    credits = sum(e.amount_cents for e in entries if e.direction == CREDIT)
    return debits == credits


def decide(state: Ledger, command: Command) -> list[Event] | Rejection:
    match command:
        case PostSale() if state.posted(SALE) or state.posted(REFUND_OWED):
            return []  # one sale per payment, however often the capture is reported
        case PostSale() if command.total_cents < 0 or any(s < 0 for _, s in command.seller_subtotals):
            return invalid("amounts must not be negative")
        case PostSale() if sum(s for _, s in command.seller_subtotals) != command.total_cents:
            return invalid("seller subtotals must add up to the total")
        case PostSale() if not 0 <= command.fee_bps <= 10_000:
            return invalid("fee must be between 0 and 10000 basis points")
        case PostSale():
            entries = sale_entries(command.total_cents, command.seller_subtotals, command.fee_bps)
            return [_posted(command, SALE, entries)]
        case PostRefundOwed() | PostRefund() if command.amount_cents < 0:
            return invalid("amounts must not be negative")
        case PostRefundOwed() if state.posted(per_claim(REFUND_OWED, command.refund_key)):
            return []  # owed once per claim
        case PostRefundOwed() if command.seller_id and not state.posted(SALE):
            return invalid("there is no sale to take the undelivered part back from")
        case PostRefundOwed() if command.seller_id:
            return [_posted(command, per_claim(REFUND_OWED, command.refund_key),
                            shortfall_entries(command.amount_cents, command.seller_id, command.fee_bps))]
        case PostRefundOwed() if state.posted(SALE):
            return []  # a sold order's money is owed back only for what was not delivered (above)
        case PostRefundOwed():
            return [_posted(command, per_claim(REFUND_OWED, command.refund_key),
                            refund_owed_entries(command.amount_cents))]
        case PostRefund() if state.posted(per_claim(REFUND, command.refund_key)):
            return []
        case PostRefund() if not state.posted(per_claim(REFUND_OWED, command.refund_key)):
            return invalid("nothing is owed to the buyer of this payment")
        case PostRefund():
            return [_posted(command, per_claim(REFUND, command.refund_key), refund_entries(command.amount_cents))]
    return invalid(f"the ledger does not handle {type(command).__name__}")


def _posted(command, kind: str, entries: tuple[Entry, ...]) -> LedgerTransactionPosted:
    return LedgerTransactionPosted(transaction_id=derived_id(command.payment_id, kind), payment_id=command.payment_id,
                                   order_id=command.order_id, currency=command.currency, entries=entries,
                                   posted_at=command.now)


def evolve(state: Ledger, event: Event) -> Ledger:
    match event:
        case LedgerTransactionPosted():
            check(balanced(event.entries), "a ledger transaction's debits equal its credits")
            check(all(e.amount_cents >= 0 for e in event.entries), "entry amounts are never negative")
            return replace(state, payment_id=event.payment_id, order_id=event.order_id, currency=event.currency,
                           transactions=state.transactions + (event,), version=state.version + 1)
    return replace(state, version=state.version + 1)


def transaction_view(posted: LedgerTransactionPosted) -> dict:
    return {"transactionId": posted.transaction_id, "paymentId": posted.payment_id, "orderId": posted.order_id,
            "currency": posted.currency, "postedAt": posted.posted_at.isoformat() if posted.posted_at else None,
            "entries": [{"accountId": e.account_id, "direction": e.direction, "amountCents": e.amount_cents}
                        for e in posted.entries]}


def view(state: Ledger) -> dict | None:
    if not state.transactions:
        return None
    return {"paymentId": state.payment_id, "orderId": state.order_id, "currency": state.currency,
            "transactions": [transaction_view(t) for t in state.transactions]}


# A ledger is retired by its payment once that is settled: every posting it was owed has been made.
AGGREGATE = Aggregate("ledger", initial_state, decide, evolve, view, settled=lambda state: state.payment_id is not None)
