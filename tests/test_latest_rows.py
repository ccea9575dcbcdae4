"""Which row of a batch is written: the same one a row-by-row write would leave standing."""

from __future__ import annotations

from sinks.postgres import latest_rows
from sinks.views import Row


def test_an_insert_once_row_keeps_the_first_of_a_batch_as_it_does_across_batches():
    """Found by tests/faults: a seller's payable account (opened once, in the currency of its first
    posting) said EUR in the live views and USD in a rebuild, which reads the same events in bigger batches."""
    first = Row("ledger_accounts", ("account_id",), {"account_id": "SELLER_PAYABLE_s", "currency": "EUR",
                                                      "version": 0}, guarded=False)
    later = Row("ledger_accounts", ("account_id",), {"account_id": "SELLER_PAYABLE_s", "currency": "USD",
                                                      "version": 0}, guarded=False)
    assert latest_rows([first, later]) == [first]


def test_a_versioned_row_keeps_the_newest_version():
    v1, v2 = (Row("stock", ("product_id",), {"product_id": "p", "version": v}) for v in (1, 2))
    assert latest_rows([v2, v1]) == [v2] and latest_rows([v1, v2]) == [v2]


def test_a_seller_paid_in_two_currencies_in_the_same_instant_gets_one_account_currency_whatever_the_order():
    """Found by tests/faults: two postings in the same second, one USD and one EUR, tied on the version, so the
    payable account's currency was whichever the projection read last (USD live, EUR in the rebuild)."""
    from datetime import UTC, datetime, timedelta

    from sinks.views import _payable_account_row
    at = datetime(2026, 12, 2, 17, 0, 0, 123_000, tzinfo=UTC)
    usd, eur = _payable_account_row("s", "USD", at), _payable_account_row("s", "EUR", at + timedelta(microseconds=400))
    assert latest_rows([usd, eur]) == latest_rows([eur, usd]) == [eur]
    earlier_usd = _payable_account_row("s", "USD", at - timedelta(milliseconds=1))
    assert latest_rows([eur, earlier_usd]) == latest_rows([earlier_usd, eur]) == [earlier_usd]  # the earliest wins
    registered = _payable_account_row("s", "GBP")
    assert latest_rows([earlier_usd, registered]) == latest_rows([registered, earlier_usd]) == [registered]
