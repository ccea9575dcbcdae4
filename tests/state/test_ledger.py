"""The ledger: one balanced sale per captured payment, fees per seller rounded half up to the cent."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest

from state import ledger, money
from state.common import Expire, InvariantBroken, derived_id
from state.ledger import BUYER_EXTERNAL, BUYIT_REVENUE, CREDIT, DEBIT, REFUNDS_PAYABLE, STRIPE_CLEARING, Entry
from tests.state.given import (INVALID, LATER, NOW, ORDER_ID, PAYMENT_ID, assert_outcome, decide, fold,
                               post_sale, sale_posted)


def payable(seller_id):
    return f"SELLER_PAYABLE_{seller_id}"


def sale(total, *sellers):
    """The expected entries: the total into clearing, then (seller, subtotal, share, fee) out of it."""
    entries = [Entry(BUYER_EXTERNAL, DEBIT, total), Entry(STRIPE_CLEARING, CREDIT, total)]
    for seller_id, subtotal, share, fee in sellers:
        entries += [Entry(STRIPE_CLEARING, DEBIT, subtotal), Entry(payable(seller_id), CREDIT, share),
                    Entry(BUYIT_REVENUE, CREDIT, fee)]
    return entries


# The spec's example (system-flow.md, "Payment Processing"): 100.00 split 80/20 at a 10% fee.
SPEC_SALE = post_sale(10000, [("123", 8000), ("456", 2000)])
SPEC_ENTRIES = sale(10000, ("123", 8000, 7200, 800), ("456", 2000, 1800, 200))
# The odd-cents order: seller 1 sells 2 × 33.33, seller 2 sells 1 × 10.01.
ODD_SALE = post_sale(7667, [("seller-1", 2 * 3333), ("seller-2", 1 * 1001)])
ODD_ENTRIES = sale(7667, ("seller-1", 6666, 5999, 667), ("seller-2", 1001, 901, 100))
POSTED = [sale_posted(ODD_ENTRIES)]


class TestPostSale:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], SPEC_SALE, [sale_posted(SPEC_ENTRIES)], id="the_spec_s_two_seller_example"),
        pytest.param([], ODD_SALE, [sale_posted(ODD_ENTRIES)], id="odd_cents_round_each_seller_s_fee_half_up"),
        pytest.param([], post_sale(1299, [("seller-1", 1299)]),
                     [sale_posted(sale(1299, ("seller-1", 1299, 1169, 130)))],
                     id="a_single_seller_sale"),
        pytest.param([], post_sale(10000, [("a", 5000), ("b", 3000), ("c", 2000)], fee_bps=250),
                     [sale_posted(sale(10000, ("a", 5000, 4875, 125), ("b", 3000, 2925, 75), ("c", 2000, 1950, 50)))],
                     id="three_sellers_in_the_order_given"),
        pytest.param([], post_sale(10000, [("a", 8000), ("b", 2000)], fee_bps=0),
                     [sale_posted(sale(10000, ("a", 8000, 8000, 0), ("b", 2000, 2000, 0)))],
                     id="no_fee_leaves_the_sellers_everything"),
        pytest.param([], post_sale(10000, [("a", 8000), ("b", 2000)], fee_bps=10_000),
                     [sale_posted(sale(10000, ("a", 8000, 0, 8000), ("b", 2000, 0, 2000)))],
                     id="a_full_fee_leaves_the_sellers_nothing"),
        pytest.param([], post_sale(10, [("a", 5), ("b", 5)]),
                     [sale_posted(sale(10, ("a", 5, 4, 1), ("b", 5, 4, 1)))],
                     id="half_a_cent_of_fee_rounds_up_for_each_seller"),
        pytest.param([], post_sale(0, [("a", 0)]), [sale_posted(sale(0, ("a", 0, 0, 0)))],
                     id="a_free_order_posts_zero_entries"),
        pytest.param([], post_sale(7667, [("seller-1", 6666), ("seller-2", 1001)], payment_id="payment-2"),
                     [sale_posted(ODD_ENTRIES, payment_id="payment-2")],
                     id="the_transaction_id_derives_from_the_payment"),
        pytest.param(POSTED, ODD_SALE, [], id="posting_the_same_payment_again_is_a_no_op"),
        pytest.param(POSTED, post_sale(100, [("x", 100)], command_id="post-sale-2"), [],
                     id="the_first_transaction_stands"),
        pytest.param(POSTED, post_sale(100, [("x", 1)], fee_bps=-1), [], id="a_repeat_is_checked_before_the_fields"),
        pytest.param([], post_sale(10000, [("a", 8000), ("b", 1999)]), INVALID,
                     id="subtotals_short_of_the_total_are_invalid"),
        pytest.param([], post_sale(10000, [("a", 8000), ("b", 2001)]), INVALID,
                     id="subtotals_over_the_total_are_invalid"),
        pytest.param([], post_sale(10000, []), INVALID, id="no_sellers_for_a_total_is_invalid"),
        pytest.param([], post_sale(10000, [("a", 10000)], fee_bps=-1), INVALID, id="a_negative_fee_is_invalid"),
        pytest.param([], post_sale(10000, [("a", 10000)], fee_bps=10_001), INVALID,
                     id="a_fee_over_100_percent_is_invalid"),
        pytest.param([], Expire(command_id="tick-1", now=NOW), INVALID, id="other_commands_are_invalid"),
        pytest.param([], post_sale(10000, [("a", 12000), ("b", -2000)]), INVALID,
                     id="a_negative_subtotal_is_invalid"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(ledger, given, when), then)

    def test_the_transaction_id(self):
        [posted] = decide(ledger, [], ODD_SALE)
        assert posted.transaction_id == derived_id(PAYMENT_ID, "sale")
        assert (posted.payment_id, posted.order_id, posted.currency, posted.posted_at) == (
            PAYMENT_ID, ORDER_ID, "USD", LATER)

    def test_the_odd_cents_fees_add_up_to_the_fee_on_the_total(self):
        [posted] = decide(ledger, [], ODD_SALE)
        assert sum(e.amount_cents for e in posted.entries if e.account_id == BUYIT_REVENUE) == 767


class TestBalance:
    SUBTOTALS = [0, 1, 4, 5, 6, 14, 15, 25, 45, 999, 1001, 3333, 6666, 99_995, 1_000_005]
    FEES = [0, 1, 250, 999, 1000, 1500, 3333, 5000, 9999, 10_000]

    def test_every_posted_transaction_balances_and_every_subtotal_is_split_exactly(self):
        for fee_bps in self.FEES:
            for first in self.SUBTOTALS:
                for second in self.SUBTOTALS:
                    [posted] = decide(ledger, [], post_sale(first + second, [("a", first), ("b", second)],
                                                            fee_bps=fee_bps))
                    entries = posted.entries
                    debits = sum(e.amount_cents for e in entries if e.direction == DEBIT)
                    credits = sum(e.amount_cents for e in entries if e.direction == CREDIT)
                    assert debits == credits == 2 * (first + second), (first, second, fee_bps)
                    assert ledger.balanced(entries) and all(e.amount_cents >= 0 for e in entries)
                    for (seller_id, subtotal), (out, share, fee) in zip([("a", first), ("b", second)],
                                                                        [entries[2:5], entries[5:8]]):
                        assert out == Entry(STRIPE_CLEARING, DEBIT, subtotal)
                        assert share.account_id == payable(seller_id) and fee.account_id == BUYIT_REVENUE
                        assert share.amount_cents + fee.amount_cents == subtotal
                        assert fee.amount_cents == money.fee_cents(subtotal, fee_bps)
                    assert fold(ledger, [posted]).entries == entries  # evolve accepts it

    def test_clearing_nets_to_zero(self):
        [posted] = decide(ledger, [], ODD_SALE)
        clearing = [e for e in posted.entries if e.account_id == STRIPE_CLEARING]
        assert (sum(e.amount_cents for e in clearing if e.direction == DEBIT)
                == sum(e.amount_cents for e in clearing if e.direction == CREDIT) == 7667)

    @pytest.mark.parametrize("entries", [
        pytest.param([Entry(BUYER_EXTERNAL, DEBIT, 100), Entry(STRIPE_CLEARING, CREDIT, 99)], id="credits_short"),
        pytest.param([Entry(BUYER_EXTERNAL, DEBIT, 100)], id="a_debit_alone"),
        pytest.param([*ODD_ENTRIES[:-1], Entry(BUYIT_REVENUE, CREDIT, 101)], id="one_cent_too_much_fee"),
        pytest.param([Entry(BUYER_EXTERNAL, DEBIT, -5), Entry(STRIPE_CLEARING, CREDIT, -5)],
                     id="balanced_but_negative"),
    ])
    def test_evolving_a_broken_transaction_stops_loudly(self, entries):
        with pytest.raises(InvariantBroken):
            ledger.evolve(ledger.initial_state(), sale_posted(entries))

    @pytest.mark.parametrize("entries, expected", [
        pytest.param(SPEC_ENTRIES, True, id="the_spec_sale"),
        pytest.param([], True, id="nothing"),
        pytest.param([Entry(BUYER_EXTERNAL, DEBIT, 1), Entry(STRIPE_CLEARING, DEBIT, 1)], False, id="two_debits"),
        pytest.param([Entry(BUYER_EXTERNAL, CREDIT, 1)], False, id="a_credit_alone"),
    ])
    def test_balanced(self, entries, expected):
        assert ledger.balanced(entries) is expected


class TestFee:
    @pytest.mark.parametrize("subtotal, fee_bps, fee", [
        pytest.param(5, 1000, 1, id="half_a_cent_rounds_up"),
        pytest.param(4, 1000, 0, id="under_half_a_cent_rounds_down"),
        pytest.param(6, 1000, 1, id="over_half_a_cent_rounds_up"),
        pytest.param(14, 1000, 1, id="1_4_rounds_down"),
        pytest.param(15, 1000, 2, id="1_5_rounds_up"),
        pytest.param(25, 1000, 3, id="2_5_rounds_up_not_to_even"),
        pytest.param(45, 1000, 5, id="4_5_rounds_up_not_to_even"),
        pytest.param(6666, 1000, 667, id="666_6_rounds_up"),
        pytest.param(1001, 1000, 100, id="100_1_rounds_down"),
        pytest.param(8000, 1000, 800, id="an_exact_fee_is_exact"),
        pytest.param(0, 1000, 0, id="no_subtotal_no_fee"),
        pytest.param(12345, 0, 0, id="a_zero_fee_rate_takes_nothing"),
        pytest.param(12345, 10_000, 12345, id="a_full_fee_rate_takes_everything"),
        pytest.param(1, 5000, 1, id="half_of_one_cent_rounds_up"),
        pytest.param(1, 4999, 0, id="just_under_half_of_one_cent_rounds_down"),
        pytest.param(5000, 1, 1, id="half_a_cent_at_one_basis_point_rounds_up"),
        pytest.param(4999, 1, 0, id="under_half_a_cent_at_one_basis_point_rounds_down"),
        pytest.param(10_000_000_005, 1000, 1_000_000_001, id="large_amounts_stay_exact"),
    ])
    def test_fee_cents(self, subtotal, fee_bps, fee):
        assert money.fee_cents(subtotal, fee_bps) == fee
        assert money.split(subtotal, fee_bps) == (subtotal - fee, fee)

    def test_fee_cents_is_the_exact_fee_rounded_half_up(self):
        for fee_bps in (0, 1, 7, 250, 999, 1000, 1234, 5000, 9999, 10_000):
            for subtotal in range(0, 2001):
                exact = Fraction(subtotal * fee_bps, 10_000)
                assert money.fee_cents(subtotal, fee_bps) == int(exact + Fraction(1, 2)), (subtotal, fee_bps)


class TestState:
    def test_initial_state_has_no_transaction_and_no_view(self):
        assert ledger.view(ledger.initial_state()) is None

    def test_a_posted_transaction_is_held_at_version_one(self):
        state = fold(ledger, POSTED)
        assert (state.payment_id, state.order_id, state.currency, state.entries, state.version) == (
            PAYMENT_ID, ORDER_ID, "USD", tuple(ODD_ENTRIES), 1)
        assert [t.transaction_id for t in state.transactions] == [derived_id(PAYMENT_ID, "sale")]

    def test_view(self):
        assert ledger.view(fold(ledger, [sale_posted(SPEC_ENTRIES)]))["transactions"] == [{
            "transactionId": derived_id(PAYMENT_ID, "sale"), "paymentId": PAYMENT_ID, "orderId": ORDER_ID,
            "currency": "USD", "postedAt": "2025-03-01T12:05:00+00:00",
            "entries": [
                {"accountId": "BUYER_EXTERNAL", "direction": "DEBIT", "amountCents": 10000},
                {"accountId": "STRIPE_CLEARING", "direction": "CREDIT", "amountCents": 10000},
                {"accountId": "STRIPE_CLEARING", "direction": "DEBIT", "amountCents": 8000},
                {"accountId": "SELLER_PAYABLE_123", "direction": "CREDIT", "amountCents": 7200},
                {"accountId": "BUYIT_REVENUE", "direction": "CREDIT", "amountCents": 800},
                {"accountId": "STRIPE_CLEARING", "direction": "DEBIT", "amountCents": 2000},
                {"accountId": "SELLER_PAYABLE_456", "direction": "CREDIT", "amountCents": 1800},
                {"accountId": "BUYIT_REVENUE", "direction": "CREDIT", "amountCents": 200}]}]


def refund_owed(amount=7667, *, command_id="owed-1"):
    return ledger.PostRefundOwed(command_id=command_id, now=LATER, payment_id=PAYMENT_ID, order_id=ORDER_ID,
                                 currency="USD", amount_cents=amount)


def refund(amount=7667, *, command_id="refund-1"):
    return ledger.PostRefund(command_id=command_id, now=LATER, payment_id=PAYMENT_ID, order_id=ORDER_ID,
                             currency="USD", amount_cents=amount, refund_id="re_1")


def posted(kind, entries):
    return ledger.LedgerTransactionPosted(transaction_id=derived_id(PAYMENT_ID, kind), payment_id=PAYMENT_ID,
                                          order_id=ORDER_ID, currency="USD", entries=tuple(entries), posted_at=LATER)


OWED_ENTRIES = [Entry(BUYER_EXTERNAL, DEBIT, 7667), Entry(STRIPE_CLEARING, CREDIT, 7667),
                Entry(STRIPE_CLEARING, DEBIT, 7667), Entry(REFUNDS_PAYABLE, CREDIT, 7667)]
REFUND_ENTRIES = [Entry(REFUNDS_PAYABLE, DEBIT, 7667), Entry(BUYER_EXTERNAL, CREDIT, 7667)]
OWED = [posted("refund-owed", OWED_ENTRIES)]


class TestRefunds:
    """A capture that lands on a cancelled order: cash received and owed back, then paid back; no seller credited."""

    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], refund_owed(), OWED, id="the_cash_received_is_owed_back"),
        pytest.param(OWED, refund_owed(command_id="owed-2"), [], id="owed_once"),
        pytest.param(POSTED, refund_owed(), [], id="a_sold_order_owes_nothing_through_this_path"),
        pytest.param(OWED, ODD_SALE, [], id="money_owed_back_is_never_also_a_sale"),
        pytest.param(OWED, refund(), [posted("refund", REFUND_ENTRIES)], id="the_refund_pays_what_was_owed"),
        pytest.param([*OWED, posted("refund", REFUND_ENTRIES)], refund(command_id="refund-2"), [],
                     id="paid_once"),
        pytest.param([], refund(), INVALID, id="a_refund_of_nothing_owed_is_invalid"),
        pytest.param([], refund_owed(-1), INVALID, id="a_negative_amount_is_invalid"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(ledger, given, when), then)

    def test_after_the_refund_nothing_is_owed_and_no_seller_or_revenue_moved(self):
        state = fold(ledger, [*OWED, posted("refund", REFUND_ENTRIES)])
        net = {}
        for e in state.entries:
            net[e.account_id] = net.get(e.account_id, 0) + (e.amount_cents if e.direction == DEBIT else -e.amount_cents)
        assert net == {BUYER_EXTERNAL: 0, STRIPE_CLEARING: 0, REFUNDS_PAYABLE: 0}
        assert [t["transactionId"] for t in ledger.view(state)["transactions"]] == [
            derived_id(PAYMENT_ID, "refund-owed"), derived_id(PAYMENT_ID, "refund")]


class TestShortfall:
    """Units paid for but not delivered: their share is taken back from the seller and the fee, and owed back."""

    def shortfall(self, amount, *, seller_id="seller-1", key="shortfall/product-1"):
        return ledger.PostRefundOwed(command_id=f"short-{key}", now=LATER, payment_id=PAYMENT_ID, order_id=ORDER_ID,
                                     currency="USD", amount_cents=amount, refund_key=key, seller_id=seller_id,
                                     fee_bps=1000)

    def test_one_of_two_mugs_short_takes_back_its_share_and_fee(self):
        [posted] = decide(ledger, POSTED, self.shortfall(3333))
        assert posted.entries == (Entry(payable("seller-1"), DEBIT, 3000), Entry(BUYIT_REVENUE, DEBIT, 333),
                                  Entry(REFUNDS_PAYABLE, CREDIT, 3333))
        assert posted.transaction_id == derived_id(PAYMENT_ID, "refund-owed/shortfall/product-1")

    def test_the_whole_subtotal_short_leaves_the_seller_and_the_fee_at_zero(self):
        [posted] = decide(ledger, POSTED, self.shortfall(6666))
        net = Counter()
        for e in fold(ledger, [*POSTED, posted]).entries:
            net[e.account_id] += e.amount_cents if e.direction == CREDIT else -e.amount_cents
        assert net[payable("seller-1")] == 0 and net[BUYIT_REVENUE] == 100  # seller 2's fee stays

    @pytest.mark.parametrize("given, key, then", [
        pytest.param("posted", "shortfall/product-1", "one", id="a_claim_posts_once"),
        pytest.param("none", "shortfall/product-1", "invalid", id="no_sale_no_shortfall"),
    ])
    def test_guards(self, given, key, then):
        history = POSTED if given == "posted" else []
        first = decide(ledger, history, self.shortfall(100, key=key))
        if then == "invalid":
            assert first.code == "invalid"
            return
        assert decide(ledger, [*history, *first], self.shortfall(100, key=key)) == []
        assert len(decide(ledger, [*history, *first], self.shortfall(100, key="shortfall/product-2"))) == 1
