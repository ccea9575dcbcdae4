"""Inventory: stock records, setting stock, low-stock alerts, the bucket invariant, and saga
commands redelivered however late (idempotent by state, not by the operator's window of ids).

Reservations and allocations appear as given events, to put units in the reserved
and allocated buckets for the stock rules.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from state import inventory
from state.common import Expire, InvariantBroken
from tests.state.given import (AN_ADMIN, A_BUYER, FORBIDDEN, INVALID, LATER, NOT_FOUND, OTHER_SELLER, PRODUCT_ID,
                               SELLER_ID, SKU, Rejected, allocate, allocated, allocation_refused, assert_outcome,
                               confirm_sale, create_stock, decide, expired, fold, fulfilled, low_stock_alert, refused,
                               release, released, reserve, reserved, set_stock, shortfall, stock_created,
                               stock_updated, stock_was_set)

CREATED = [stock_created()]                                       # version 1, nothing on hand
STOCKED = [*CREATED, stock_was_set(10)]                           # version 2, 10 available
HELD = [*STOCKED, reserved(3), allocated(4)]                      # version 4, 3 available, 3 reserved, 4 allocated

# The saga of one order's reservation ("reservation-2" of "order-1"): a cart's request 1 held 3, the
# order allocated them, and they were sold. Then a cart's reservation ("reservation-1") for contrast.
ORDERED = [*STOCKED, reserved(3, reservation_id="reservation-2", seq=1, available=7), allocated(3, available=7)]
SOLD = [*ORDERED, fulfilled(3)]                                   # total 7, sold 3, nothing held
RESERVED = [*STOCKED, reserved(3, seq=1, available=7)]            # request 1 holds 3, 7 available
LATER_STILL = LATER + timedelta(minutes=5)
# A cart's tombstone made at LATER (12:05:00) may go from 13:05:00, a whole minute.
GOES = int((LATER + inventory.FORGET_ENDED_AFTER).timestamp())


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
        pytest.param([*CREATED, stock_was_set(10, threshold=3)], set_stock(20), [stock_updated(20, threshold=3)],
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


class TestLateRedelivery:
    """A saga command delivered again, however late, has no second effect: the state knows it."""

    @pytest.mark.parametrize("given, when, then", [
        pytest.param(ORDERED, confirm_sale(3), [fulfilled(3)], id="a_sale_takes_the_order_s_allocation"),
        pytest.param(SOLD, confirm_sale(3), [], id="a_sale_already_made_sells_nothing_more"),
        pytest.param([*STOCKED, fulfilled(3)], confirm_sale(3), [],
                     id="a_sale_made_from_stock_after_the_hold_lapsed_is_made_once"),
        pytest.param([*CREATED, shortfall(3, available=0), stock_was_set(10)], confirm_sale(3), [],
                     id="a_sale_found_short_is_not_made_by_its_redelivery_once_units_are_back"),
        pytest.param([*ORDERED, expired(3, available=10, kind=inventory.HARD, holder_id="order-1", seq=1,
                                        reservation_id="reservation-2")],
                     confirm_sale(3), [fulfilled(3)], id="a_sale_after_the_order_s_hold_lapsed_still_sells_from_stock"),
        pytest.param(SOLD, allocate(3), [], id="an_allocation_of_a_sold_reservation_takes_nothing"),
        pytest.param([*ORDERED, released(3, available=10, kind=inventory.HARD, order_id="order-1",
                                         reason="payment_failed", reservation_id="reservation-2")],
                     allocate(3), [], id="an_allocation_the_order_released_takes_nothing"),
        pytest.param([*ORDERED, expired(3, available=10, kind=inventory.HARD, holder_id="order-1", seq=1,
                                        reservation_id="reservation-2")],
                     allocate(3), [], id="an_allocation_that_lapsed_takes_nothing"),
        pytest.param([*CREATED, allocation_refused(3, available=0), stock_was_set(10)], allocate(3), [],
                     id="a_refused_allocation_takes_nothing_once_units_are_back"),
        pytest.param([*STOCKED, reserved(3, reservation_id="reservation-2", seq=1, available=7),
                      allocation_refused(5, available=10),
                      released(3, available=10, order_id="order-1", reason="allocation_failed",
                               reservation_id="reservation-2")],
                     allocate(3), [], id="an_allocation_refused_while_the_cart_held_takes_nothing_after_release"),
        pytest.param([*STOCKED, reserved(3, reservation_id="reservation-2", seq=1, available=7),
                      expired(3, available=10, seq=1, reservation_id="reservation-2")],
                     allocate(3), [allocated(3, available=7)],
                     id="an_allocation_after_the_cart_s_hold_lapsed_takes_fresh_units"),
        pytest.param(RESERVED, reserve(3, seq=1), [], id="a_redelivered_set_holds_nothing_new"),
        pytest.param(RESERVED, reserve(3, seq=1, mode="add"), [], id="a_redelivered_add_does_not_double_the_hold"),
        pytest.param([*RESERVED, reserved(5, seq=2, available=5)], reserve(3, seq=1), [],
                     id="an_overtaken_request_does_not_undo_a_newer_one"),
        pytest.param([*RESERVED, released(3, available=10, seq=2)], reserve(3, seq=1), [],
                     id="a_request_from_before_a_release_holds_nothing"),
        pytest.param([*RESERVED, expired(3, available=10, seq=1)], reserve(3, seq=1), [],
                     id="a_request_whose_hold_lapsed_holds_nothing"),
        pytest.param([*CREATED, stock_was_set(2), refused(3, available=2, seq=1), stock_was_set(10)],
                     reserve(3, seq=1), [], id="a_refused_request_holds_nothing_once_units_are_back"),
        pytest.param([*RESERVED, reserved(3, seq=2, available=7), refused(9, available=10, seq=3)],
                     reserve(9, seq=3), [], id="a_refused_request_of_a_held_reservation_stays_refused"),
        pytest.param([*RESERVED, released(3, available=10, seq=2)], reserve(1, seq=3),
                     [reserved(1, seq=3, available=9)], id="a_newer_request_after_a_release_holds_again"),
        pytest.param(RESERVED, reserve(1, seq=0, mode="add"), [reserved(4, available=6)],
                     id="an_unsequenced_request_applies_as_before"),
        pytest.param([*RESERVED, released(3, available=10, seq=2), reserved(1, seq=3, available=9)], release(seq=2),
                     [], id="a_late_release_leaves_the_newer_hold_of_the_same_id"),
        pytest.param([*RESERVED, released(3, available=10, seq=2)], release(seq=2), [],
                     id="a_redelivered_release_gives_back_nothing"),
        pytest.param(RESERVED, release(seq=2), [released(3, available=10, seq=2)],
                     id="a_newer_release_gives_the_hold_back"),
        pytest.param(ORDERED, release(order_id="order-1", reservation_id="reservation-2", reason="payment_failed"),
                     [released(3, available=10, kind=inventory.HARD, order_id="order-1", reason="payment_failed",
                               reservation_id="reservation-2")],
                     id="an_order_s_release_names_the_order"),
        pytest.param([*STOCKED, stock_updated(10), *SOLD[2:]], set_stock(10), [],
                     id="a_redelivered_set_stock_does_not_bring_back_sold_units"),
        pytest.param([*STOCKED, stock_updated(10), *SOLD[2:]], set_stock(10, expected_version=2), [],
                     id="a_redelivered_versioned_set_stock_changes_nothing"),
        pytest.param([*STOCKED, stock_updated(10), *SOLD[2:]], set_stock(10, now=LATER_STILL), [],
                     id="an_api_retry_of_the_setting_in_force_with_a_fresh_now_changes_nothing"),
        pytest.param([*STOCKED, stock_updated(10), *SOLD[2:], stock_updated(7, request_id="set-stock-2")],
                     set_stock(10), [], id="an_older_setting_at_the_same_instant_is_known_too"),
        pytest.param([*STOCKED, stock_updated(4, request_id="set-stock-2", requested_at=LATER_STILL)], set_stock(10),
                     Rejected("superseded", 409, {"currentVersion": 3}),
                     id="a_setting_older_than_the_one_in_force_is_superseded"),
        pytest.param([*STOCKED, stock_updated(4, request_id="set-stock-2", requested_at=LATER_STILL)],
                     set_stock(12, expected_version=3), [stock_updated(12)],
                     id="a_versioned_setting_is_ordered_by_its_version_not_its_time"),
        pytest.param([*STOCKED, stock_updated(10)], set_stock(8, command_id="set-stock-2"),
                     [stock_updated(8, request_id="set-stock-2")], id="another_setting_at_the_same_instant_applies"),
        pytest.param([*STOCKED, stock_updated(10)], set_stock(10, actor=OTHER_SELLER), FORBIDDEN,
                     id="a_redelivery_is_recognised_only_for_who_may_set_stock"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(inventory, given, when), then)

    @pytest.mark.parametrize("history, tombstone", [
        pytest.param(SOLD, inventory.Ended(inventory.SOLD, "order-1", 1), id="sold"),
        pytest.param([*ORDERED, released(3, available=10, kind=inventory.HARD, order_id="order-1",
                                         reservation_id="reservation-2")],
                     inventory.Ended(inventory.RELEASED, "order-1", 1), id="released_by_the_order"),
        pytest.param([*STOCKED, reserved(3, reservation_id="reservation-2", seq=1, available=7),
                      released(3, available=10, seq=2, reservation_id="reservation-2")],
                     inventory.Ended(inventory.RELEASED, "cart-1", 2, GOES), id="released_by_the_cart"),
        pytest.param([*STOCKED, reserved(3, reservation_id="reservation-2", seq=4, available=7),
                      expired(3, available=10, seq=4, reservation_id="reservation-2")],
                     inventory.Ended(inventory.EXPIRED, "cart-1", 4, GOES), id="lapsed"),
        pytest.param([*CREATED, refused(3, available=0, seq=2, reservation_id="reservation-2")],
                     inventory.Ended(inventory.REFUSED, "cart-1", 2, GOES), id="refused_to_the_cart"),
        pytest.param([*CREATED, allocation_refused(3, available=0)], inventory.Ended(inventory.REFUSED, "order-1", 0),
                     id="refused_to_the_order"),
        pytest.param([*CREATED, shortfall(3, available=0)], inventory.Ended(inventory.SHORT, "order-1", 0),
                     id="found_short"),
    ])
    def test_a_reservation_that_ended_leaves_a_tombstone(self, history, tombstone):
        state = fold(inventory, history)
        assert (dict(state.reservations), dict(state.ended)) == ({}, {"reservation-2": tombstone})
        inventory.audit(state)

    def test_a_retired_order_s_reservations_are_forgotten_and_only_they(self):
        forget = inventory.ForgetReservation(command_id="forget-1", now=LATER, product_id=PRODUCT_ID,
                                             reservation_id="reservation-2")
        assert decide(inventory, SOLD, forget) == [inventory.ReservationForgotten(
            product_id=PRODUCT_ID, reservation_id="reservation-2")]
        state = fold(inventory, [*SOLD, *decide(inventory, SOLD, forget)])
        assert (dict(state.ended), state.sold, state.total) == ({}, 3, 7)
        assert decide(inventory, [*SOLD, *decide(inventory, SOLD, forget)], forget) == []  # forgotten once
        assert decide(inventory, ORDERED, forget) == []  # still held: a reservation under way is never forgotten

    def test_a_cart_s_tombstone_goes_at_the_first_expire_an_hour_after_it_ended(self):
        history = [*RESERVED, released(3, available=10, seq=2)]
        state = fold(inventory, history)
        assert inventory.deadline(state) == datetime.fromtimestamp(GOES, tz=UTC)
        just_before = Expire(command_id="tick-1", now=datetime.fromtimestamp(GOES - 1, tz=UTC))
        assert inventory.decide(state, just_before) == []
        gone = inventory.decide(state, Expire(command_id="tick-2", now=inventory.deadline(state)))
        assert gone == [inventory.ReservationForgotten(product_id=PRODUCT_ID, reservation_id="reservation-1")]
        after = fold(inventory, [*history, *gone])
        assert (dict(after.ended), dict(after.forgetting), inventory.deadline(after)) == ({}, {}, None)
        inventory.audit(after)
        # The cart's next request for the product holds again (its seq goes on from the cart's count).
        assert decide(inventory, [*history, *gone], reserve(2, seq=3)) == [reserved(2, seq=3, available=8)]

    @pytest.mark.parametrize("history", [
        pytest.param(SOLD, id="sold"),
        pytest.param([*ORDERED, released(3, available=10, kind=inventory.HARD, order_id="order-1",
                                         reservation_id="reservation-2")], id="released_by_the_order"),
        pytest.param([*ORDERED, released(3, available=10, kind=inventory.HARD, reservation_id="reservation-2",
                                         reason="abandoned")], id="released_by_a_cart_that_gave_up_on_its_order"),
        pytest.param([*ORDERED, expired(3, available=10, kind=inventory.HARD, holder_id="order-1",
                                        reservation_id="reservation-2")], id="lapsed_unpaid"),
        pytest.param([*CREATED, allocation_refused(3, available=0)], id="refused_to_the_order"),
        pytest.param([*CREATED, shortfall(3, available=0)], id="found_short"),
        pytest.param([*STOCKED, reserved(3, reservation_id="reservation-2", seq=1, available=7),
                      expired(3, available=10, seq=1, reservation_id="reservation-2"),
                      allocation_refused(3, available=0)], id="a_cart_s_lapsed_hold_the_order_then_claimed"),
    ])
    def test_an_order_s_tombstone_waits_for_the_order_to_retire(self, history):
        state = fold(inventory, history)
        assert state.ended["reservation-2"].forget_at is None
        assert (dict(state.forgetting), inventory.deadline(state)) == ({}, None)
        inventory.audit(state)

    def test_a_cart_s_lapsed_hold_that_an_order_takes_up_is_no_longer_the_cart_s_to_forget(self):
        state = fold(inventory, [*STOCKED, reserved(3, reservation_id="reservation-2", seq=1, available=7),
                                 expired(3, available=10, seq=1, reservation_id="reservation-2"),
                                 allocated(3, available=7)])
        assert (dict(state.ended), dict(state.forgetting)) == ({}, {})
        assert inventory.deadline(state) == LATER + timedelta(seconds=1)  # the allocation's own expiry
        inventory.audit(state)

    def test_a_newer_refusal_keeps_the_tombstone_from_then(self):
        an_hour_on = LATER + timedelta(minutes=30)
        state = fold(inventory, [*CREATED, refused(3, available=0, seq=1),
                                 refused(3, available=0, seq=2, ended_at=an_hour_on)])
        later = int((an_hour_on + inventory.FORGET_ENDED_AFTER).timestamp())
        assert state.ended["reservation-1"] == inventory.Ended(inventory.REFUSED, "cart-1", 2, later)
        assert {minute: set(ids) for minute, ids in state.forgetting.items()} == {later: {"reservation-1"}}
        inventory.audit(state)

    def test_one_expire_lapses_holds_and_forgets_tombstones(self):
        history = [*STOCKED, refused(20, available=10, seq=1, reservation_id="old"),
                   reserved(2, reservation_id="held", expires_at=LATER + timedelta(hours=2), available=8)]
        now = LATER + timedelta(hours=3)
        events = inventory.decide(fold(inventory, history), Expire(command_id="tick", now=now))
        assert [(type(e).__name__, e.reservation_id) for e in events] == [
            ("ReservationExpired", "held"), ("ReservationForgotten", "old")]
        after = fold(inventory, [*history, *events])
        assert (list(after.ended), after.available) == (["held"], 10)
        inventory.audit(after)

    def test_a_tombstone_of_an_older_build_without_a_time_is_kept(self):
        state = fold(inventory, [*RESERVED, released(3, available=10, seq=2, ended_at=None)])
        assert (state.ended["reservation-1"].forget_at, inventory.deadline(state)) == (None, None)
        inventory.audit(state)

    def test_holding_again_lifts_the_tombstone_and_the_seq_goes_on(self):
        state = fold(inventory, [*RESERVED, released(3, available=10, seq=2), reserved(1, seq=3, available=9)])
        assert (state.reservations["reservation-1"].seq, dict(state.ended)) == (3, {})
        assert inventory.last_seq(state, "reservation-1") == 3
        inventory.audit(state)

    def test_an_allocation_keeps_the_cart_s_last_seq(self):
        state = fold(inventory, ORDERED)
        assert (state.reservations["reservation-2"].kind, inventory.last_seq(state, "reservation-2")) == (
            inventory.HARD, 1)

    def test_the_setting_in_force_is_remembered_by_its_time_and_ids(self):
        state = fold(inventory, [*CREATED, stock_updated(10), stock_updated(8, request_id="set-stock-2")])
        assert (state.set_at, state.set_ids) == (LATER, ("set-stock-1", "set-stock-2"))
        state = inventory.evolve(state, stock_updated(6, request_id="set-stock-3", requested_at=LATER_STILL))
        assert (state.set_at, state.set_ids) == (LATER_STILL, ("set-stock-3",))

    def test_a_late_versioned_setting_does_not_move_the_time_back(self):
        state = fold(inventory, [*CREATED, stock_updated(10, requested_at=LATER_STILL),
                                 stock_updated(8, request_id="set-stock-2")])
        assert (state.set_at, state.set_ids) == (LATER_STILL, ("set-stock-1",))

    def test_an_event_from_before_settings_were_remembered_leaves_them(self):
        state = fold(inventory, [*CREATED, stock_updated(10, request_id="", requested_at=None)])
        assert (state.total, state.set_at, state.set_ids) == (10, None, ())


class TestLowStockAlert:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(STOCKED, set_stock(5), [stock_updated(5), low_stock_alert(5)],
                     id="falling_to_the_threshold_alerts"),
        pytest.param(STOCKED, set_stock(2), [stock_updated(2), low_stock_alert(2)],
                     id="falling_below_the_threshold_alerts"),
        pytest.param(STOCKED, set_stock(0), [stock_updated(0), low_stock_alert(0)],
                     id="selling_out_alerts"),
        pytest.param(STOCKED, set_stock(6), [stock_updated(6)], id="staying_above_the_threshold_is_quiet"),
        pytest.param([*CREATED, stock_was_set(5)], set_stock(3), [stock_updated(3)],
                     id="already_at_the_threshold_is_quiet"),
        pytest.param(CREATED, set_stock(3), [stock_updated(3)], id="rising_from_zero_is_quiet"),
        pytest.param([*CREATED, stock_was_set(2)], set_stock(10), [stock_updated(10)], id="rising_is_quiet"),
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
                    given = [*CREATED, stock_was_set(before, threshold=threshold)]
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
        state = fold(inventory, [*CREATED, stock_was_set(10, threshold=3)])
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
        # each states what is available after it (found by tests/faults: r-2 said 6, only its own units back)
        assert [e.available for e in events] == [5, 7]
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
