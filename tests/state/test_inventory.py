"""Inventory: stock records, setting stock, low-stock alerts and the bucket invariant.

Reservations and allocations appear only as given events, to put units in the
reserved and allocated buckets for the stock rules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from state import inventory
from state.common import Expire, InvariantBroken
from tests.state.given import (AN_ADMIN, A_BUYER, FORBIDDEN, INVALID, LATER, NOT_FOUND, OTHER_SELLER, PRODUCT_ID,
                               SELLER_ID, SKU, Rejected, allocated, assert_outcome, create_stock, decide, fold,
                               low_stock_alert, reserved, set_stock, stock_created, stock_updated)

CREATED = [stock_created()]                                       # version 1, nothing on hand
STOCKED = [*CREATED, stock_updated(10)]                           # version 2, 10 available
HELD = [*STOCKED, reserved(3), allocated(4)]                      # version 4, 3 available, 3 reserved, 4 allocated


def conflict(current_version):
    return Rejected("version_conflict", 409, {"currentVersion": current_version})


class TestCreateStock:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], create_stock(), [stock_created(low_stock_threshold=inventory.DEFAULT_LOW_STOCK_THRESHOLD)],
                     id="a_new_product_gets_an_empty_stock_record_with_the_default_threshold"),
        pytest.param(CREATED, create_stock(command_id="create-stock-2"), [], id="creating_again_is_a_no_op"),
        pytest.param(CREATED, create_stock(seller_id="seller-9", sku="SKU-9"), [],
                     id="the_first_record_stands"),
        pytest.param(STOCKED, create_stock(), [], id="creating_again_never_resets_the_stock"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(inventory, given, when), then)

    def test_the_default_threshold_is_five(self):
        assert inventory.DEFAULT_LOW_STOCK_THRESHOLD == 5


class TestSetStock:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(CREATED, set_stock(10), [stock_updated(10)], id="the_seller_sets_units_on_hand"),
        pytest.param(CREATED, set_stock(10, actor=AN_ADMIN), [stock_updated(10)], id="an_admin_may_set_any_stock"),
        pytest.param(CREATED, set_stock(10, low_stock_threshold=3), [stock_updated(10, threshold=3)],
                     id="the_threshold_can_be_set_with_the_stock"),
        pytest.param([*CREATED, stock_updated(10, threshold=3)], set_stock(20), [stock_updated(20, threshold=3)],
                     id="an_omitted_threshold_keeps_the_current_one"),
        pytest.param(STOCKED, set_stock(10, low_stock_threshold=0), [stock_updated(10, threshold=0)],
                     id="a_zero_threshold_is_allowed"),
        pytest.param(STOCKED, set_stock(12, expected_version=2), [stock_updated(12)],
                     id="the_expected_version_matches"),
        pytest.param(HELD, set_stock(7), [stock_updated(7, reserved=3, allocated=4)],
                     id="total_may_equal_the_committed_units"),
        pytest.param(HELD, set_stock(20), [stock_updated(20, reserved=3, allocated=4)],
                     id="levels_count_the_units_held"),
        pytest.param([], set_stock(10), NOT_FOUND, id="unknown_stock_is_not_found"),
        pytest.param([], set_stock(10, actor=OTHER_SELLER, expected_version=7), NOT_FOUND,
                     id="not_found_is_checked_first"),
        pytest.param(STOCKED, set_stock(10, actor=OTHER_SELLER), FORBIDDEN, id="another_seller_may_not_set_it"),
        pytest.param(STOCKED, set_stock(10, actor=A_BUYER), FORBIDDEN, id="a_buyer_may_not_set_it"),
        pytest.param(STOCKED, set_stock(10, actor=OTHER_SELLER, expected_version=0), FORBIDDEN,
                     id="forbidden_is_checked_before_the_version"),
        pytest.param(STOCKED, set_stock(12, expected_version=1), conflict(2), id="a_stale_version_conflicts"),
        pytest.param(STOCKED, set_stock(12, expected_version=3), conflict(2), id="a_future_version_conflicts"),
        pytest.param(CREATED, set_stock(12, expected_version=0), conflict(1),
                     id="the_conflict_reports_the_current_version"),
        pytest.param(STOCKED, set_stock(-1, expected_version=1), conflict(2),
                     id="the_version_is_checked_before_the_quantities"),
        pytest.param(STOCKED, set_stock(-1), INVALID, id="total_must_not_be_negative"),
        pytest.param(STOCKED, set_stock(10, low_stock_threshold=-1), INVALID, id="threshold_must_not_be_negative"),
        pytest.param(HELD, set_stock(-1), INVALID, id="negative_is_checked_before_committed"),
        pytest.param(HELD, set_stock(6),
                     Rejected("below_committed", 409, {"reservedQuantity": 3, "allocatedQuantity": 4}),
                     id="total_must_not_fall_below_the_committed_units"),
        pytest.param(HELD, set_stock(0, expected_version=4),
                     Rejected("below_committed", 409, {"reservedQuantity": 3, "allocatedQuantity": 4}),
                     id="below_committed_applies_with_a_matching_version"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(inventory, given, when), then)


class TestLowStockAlert:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(STOCKED, set_stock(5), [stock_updated(5), low_stock_alert(5)],
                     id="falling_to_the_threshold_alerts"),
        pytest.param(STOCKED, set_stock(2), [stock_updated(2), low_stock_alert(2)],
                     id="falling_below_the_threshold_alerts"),
        pytest.param(STOCKED, set_stock(0), [stock_updated(0), low_stock_alert(0)],
                     id="selling_out_alerts"),
        pytest.param(STOCKED, set_stock(6), [stock_updated(6)], id="staying_above_the_threshold_is_quiet"),
        pytest.param([*CREATED, stock_updated(5)], set_stock(3), [stock_updated(3)],
                     id="already_at_the_threshold_is_quiet"),
        pytest.param(CREATED, set_stock(3), [stock_updated(3)], id="rising_from_zero_is_quiet"),
        pytest.param([*CREATED, stock_updated(2)], set_stock(10), [stock_updated(10)], id="rising_is_quiet"),
        pytest.param(STOCKED, set_stock(8, low_stock_threshold=8), [stock_updated(8, threshold=8),
                                                                   low_stock_alert(8, threshold=8)],
                     id="the_new_threshold_decides_the_crossing"),
        pytest.param(STOCKED, set_stock(10, low_stock_threshold=12), [stock_updated(10, threshold=12)],
                     id="raising_the_threshold_alone_is_quiet"),
        pytest.param(STOCKED, set_stock(0, low_stock_threshold=0), [stock_updated(0, threshold=0),
                                                                   low_stock_alert(0, threshold=0)],
                     id="a_zero_threshold_alerts_when_sold_out"),
        pytest.param(STOCKED, set_stock(1, low_stock_threshold=0), [stock_updated(1, threshold=0)],
                     id="a_zero_threshold_is_quiet_while_units_remain"),
        pytest.param([*STOCKED, reserved(3)], set_stock(8), [stock_updated(8, reserved=3), low_stock_alert(5)],
                     id="availability_not_total_is_compared"),
        pytest.param(STOCKED, set_stock(1, actor=AN_ADMIN), [stock_updated(1), low_stock_alert(1)],
                     id="the_alert_goes_to_the_owning_seller_whoever_sets_it"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(inventory, given, when), then)

    def test_alerts_exactly_when_availability_crosses_down_to_the_threshold(self):
        for before in range(0, 9):
            for threshold in range(0, 9):
                for after in range(0, 9):
                    given = [*CREATED, stock_updated(before, threshold=threshold)]
                    events = decide(inventory, given, set_stock(after))
                    crosses = after <= threshold < before
                    alerts = [low_stock_alert(after, threshold=threshold)] if crosses else []
                    assert events == [stock_updated(after, threshold=threshold), *alerts], (before, threshold, after)


class TestState:
    def test_initial_state_has_no_stock_and_no_view(self):
        state = inventory.initial_state()
        assert inventory.view(state) is None
        assert inventory.deadline(state) is None

    def test_a_created_stock_is_empty_at_version_one(self):
        assert fold(inventory, CREATED) == inventory.Stock(product_id=PRODUCT_ID, seller_id=SELLER_ID, sku=SKU,
                                                           low_stock_threshold=5, version=1)

    def test_set_stock_changes_total_and_threshold(self):
        state = fold(inventory, [*CREATED, stock_updated(10, threshold=3)])
        assert (state.total, state.available, state.low_stock_threshold, state.version) == (10, 10, 3, 2)

    def test_an_alert_changes_nothing_but_the_version(self):
        before = fold(inventory, STOCKED)
        assert inventory.evolve(before, low_stock_alert(5)) == replace(before, version=3)

    def test_view(self):
        state = fold(inventory, HELD)
        assert inventory.view(state) == {
            "productId": PRODUCT_ID, "sellerId": SELLER_ID, "sku": SKU, "totalQuantity": 10,
            "availableQuantity": 3, "reservedQuantity": 3, "allocatedQuantity": 4, "soldQuantity": 0,
            "lowStockThreshold": 5, "version": 4}

    def test_deadline_is_the_end_of_the_second_holding_the_earliest_expiry(self):
        soon = LATER.replace(microsecond=250_000)
        state = fold(inventory, [*STOCKED, reserved(1, reservation_id="r-late", expires_at=LATER + timedelta(1)),
                                 reserved(2, reservation_id="r-soon", expires_at=soon)])
        assert inventory.deadline(state) == soon.replace(microsecond=0) + timedelta(seconds=1)

    def test_a_timer_at_the_deadline_expires_everything_due_in_that_second(self):
        first, second = LATER.replace(microsecond=100_000), LATER.replace(microsecond=900_000)
        state = fold(inventory, [*STOCKED, reserved(1, reservation_id="r-1", expires_at=first),
                                 reserved(2, reservation_id="r-2", expires_at=second),
                                 reserved(3, reservation_id="r-3", expires_at=LATER + timedelta(seconds=5))])
        events = inventory.decide(state, Expire(command_id="tick", now=inventory.deadline(state)))
        assert [(e.reservation_id, e.quantity) for e in events] == [("r-1", 1), ("r-2", 2)]
        after = fold(inventory, [*STOCKED, reserved(1, reservation_id="r-1", expires_at=first),
                                 reserved(2, reservation_id="r-2", expires_at=second),
                                 reserved(3, reservation_id="r-3", expires_at=LATER + timedelta(seconds=5)), *events])
        inventory.audit(after)
        assert inventory.deadline(after) == (LATER + timedelta(seconds=6)).replace(microsecond=0)

    def test_no_deadline_without_reservations(self):
        assert inventory.deadline(fold(inventory, STOCKED)) is None


class TestInvariants:
    @pytest.mark.parametrize("history", [
        pytest.param(CREATED, id="created"),
        pytest.param(STOCKED, id="stocked"),
        pytest.param([*STOCKED, stock_updated(10, threshold=3), stock_updated(0, threshold=3)], id="sold_out"),
        pytest.param([*STOCKED, reserved(3)], id="reserved"),
        pytest.param(HELD, id="reserved_and_allocated"),
        pytest.param([*HELD, stock_updated(7, reserved=3, allocated=4), low_stock_alert(0)], id="all_committed"),
    ])
    def test_every_unit_is_in_exactly_one_bucket(self, history):
        state = inventory.initial_state()
        for event in history:
            state = inventory.evolve(state, event)
            assert state.available + state.reserved + state.allocated == state.total
            assert min(state.available, state.reserved, state.allocated, state.sold) >= 0

    @pytest.mark.parametrize("given, when", [
        pytest.param(CREATED, create_stock(), id="create_on_existing"),
        pytest.param([], create_stock(), id="create"),
        pytest.param(CREATED, set_stock(10), id="first_set"),
        pytest.param(STOCKED, set_stock(4), id="set_with_alert"),
        pytest.param(HELD, set_stock(9, low_stock_threshold=2), id="set_with_units_held"),
    ])
    def test_decided_events_evolve_to_the_levels_they_report(self, given, when):
        before = fold(inventory, given)
        events = inventory.decide(before, when)
        after = fold(inventory, [*given, *events])
        assert after.version == before.version + len(events)
        for event in events:
            if isinstance(event, inventory.StockUpdated):
                assert event.levels == after.levels()
                assert (after.total, after.low_stock_threshold) == (event.total_quantity, event.low_stock_threshold)

    @pytest.mark.parametrize("given, event", [
        pytest.param(CREATED, stock_updated(-1), id="a_negative_total"),
        pytest.param(HELD, stock_updated(6, reserved=3, allocated=4), id="a_total_below_the_committed_units"),
    ])
    def test_evolving_into_a_broken_state_stops_loudly(self, given, event):
        with pytest.raises(InvariantBroken):
            inventory.evolve(fold(inventory, given), event)
