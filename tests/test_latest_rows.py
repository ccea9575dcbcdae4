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
