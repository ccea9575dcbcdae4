"""Orders: placing, allocating, paying, cancelling, and the shipments whose moves the order's status rolls up."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from state import cart, inventory, ledger, order, payment, sagas
from state.common import BUYER, Actor, Expire, Rejection, Stamp, derived_id
from state.order import CANCELLED, CONFIRMED, DELIVERED, PENDING, PROCESSING, SHIPPED
from tests.state.given import (ALLOCATION_TTL_S, AN_ADMIN, A_BUYER, A_CARRIER, BUYER_ID, FORBIDDEN, INVALID, LATER, NOT_FOUND, NOW,
                               intent_unused,
                               ORDER_CART_ID, ORDER_ID, OTHER_SELLER, OTHER_SELLER_ID, PAYMENT_ID,
                               SELLER_ID, SHIPMENTS, THE_SELLER, TRACKING, Rejected, assert_outcome, attach_payment,
                               cancel_order, confirm_allocation, confirm_order, decide, deliver_shipment,
                               fail_allocation, fold, from_before, item_allocated, order_allocated, order_cancelled,
                               order_confirmed, order_item, order_placed, payment_after_cancellation,
                               payment_attached, place_order, process_shipment, ship_shipment, shipment,
                               shipment_id, shipment_updated)

PLACED = [order_placed()]                                                   # PENDING, nothing held yet
ALLOCATED = [*PLACED, item_allocated("reservation-1"), item_allocated("reservation-2"), order_allocated()]
ATTACHED = [*ALLOCATED, payment_attached()]                                 # the buyer may pay now
PAID = [*ATTACHED, order_confirmed()]                                       # CONFIRMED, both shipments PENDING
REFUSED = [*PLACED, item_allocated("reservation-1"),
           order_cancelled("allocation_failed", product_id="product-2", available=0)]
CANCELLED_UNPAID = [*ATTACHED, order_cancelled("payment_failed")]           # every shipment CANCELLED

# Seller 1's shipment moved along its path while seller 2's stays PENDING (the order stays PROCESSING).
S1_PROCESSING = [*PAID, shipment_updated(PROCESSING, PROCESSING)]
S1_SHIPPED = [*S1_PROCESSING, shipment_updated(SHIPPED, PROCESSING, **TRACKING, at=LATER + timedelta(hours=1))]
S1_DELIVERED = [*S1_SHIPPED, shipment_updated(DELIVERED, PROCESSING, **TRACKING, at=LATER + timedelta(days=2))]

ANOTHER_BUYER = Actor("buyer-2", "BUYER")
STAMP = Stamp(now=LATER, cause_id="event-1")


def conflict(status):
    """A refused shipment move: 409 invalid_transition with the shipment's current status."""
    return Rejected("invalid_transition", 409, {"status": status})


def moved(status, order_status, *, seller_id=SELLER_ID, tracking=False):
    """The event a successful move of `seller_id`'s shipment decides (at the commands' default time)."""
    return shipment_updated(status, order_status, seller_id=seller_id, **(TRACKING if tracking else {}))


class TestPlaceOrder:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], place_order(), [order_placed()],
                     id="checkout_places_a_pending_order_with_one_shipment_per_seller"),
        pytest.param([], place_order([order_item(1, quantity=3, price_cents=250)]),
                     [order_placed([order_item(1, quantity=3, price_cents=250)], [shipment(SELLER_ID, ("item-1",))],
                                   total_cents=750)],
                     id="the_total_is_price_times_quantity"),
        pytest.param([], place_order([order_item(1), order_item(2, seller_id=OTHER_SELLER_ID), order_item(3)]),
                     [order_placed([order_item(1), order_item(2, seller_id=OTHER_SELLER_ID), order_item(3)],
                                   [shipment(SELLER_ID, ("item-1", "item-3")),
                                    shipment(OTHER_SELLER_ID, ("item-2",))], total_cents=3000)],
                     id="a_seller_s_items_share_one_shipment"),
        pytest.param([], place_order([order_item(1, seller_id=OTHER_SELLER_ID), order_item(2)]),
                     [order_placed([order_item(1, seller_id=OTHER_SELLER_ID), order_item(2)],
                                   [shipment(OTHER_SELLER_ID, ("item-1",)), shipment(SELLER_ID, ("item-2",))],
                                   total_cents=2000)],
                     id="shipments_follow_the_sellers_first_appearance"),
        pytest.param([], place_order([order_item(1), order_item(2)]),
                     [order_placed([order_item(1), order_item(2)], [shipment(SELLER_ID, ("item-1", "item-2"))],
                                   total_cents=2000)],
                     id="one_seller_gets_one_shipment"),
        pytest.param([], place_order(allocation_ttl_s=60, fee_bps=250, now=LATER),
                     [order_placed(expires_at=LATER + timedelta(seconds=60), fee_bps=250, created_at=LATER)],
                     id="the_allocation_expires_ttl_seconds_after_placing_and_the_fee_is_kept"),
        pytest.param([], place_order([order_item(1, currency="EUR")]),
                     [order_placed([order_item(1, currency="EUR")], [shipment()], total_cents=1000, currency="EUR")],
                     id="the_order_takes_its_items_currency"),
        pytest.param([], place_order([]), Rejected("empty_cart", 409), id="an_empty_order_is_refused"),
        pytest.param([], place_order([order_item(1), order_item(2, currency="EUR")]),
                     Rejected("currency_mismatch", 409), id="mixed_currencies_are_refused"),
        pytest.param(PLACED, place_order(command_id="place-order-2"), [], id="placing_again_is_a_no_op"),
        pytest.param(PLACED, place_order([order_item(9)]), [], id="the_first_placement_stands"),
        pytest.param(PLACED, place_order([]), [], id="a_placed_order_is_checked_before_emptiness"),
        pytest.param(REFUSED, place_order(), [], id="placing_a_cancelled_order_again_is_a_no_op"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    def test_a_placed_order_is_pending_provisional_and_unallocated(self):
        state = fold(order, PLACED)
        assert (state.status, state.provisional, state.allocated, state.allocated_all, state.version) == (
            PENDING, True, frozenset(), False, 1)
        assert (state.total_cents, state.currency, state.shipments) == (7667, "USD", SHIPMENTS)
        assert order.view(state)["status"] == PENDING

    def test_shipment_ids_are_derived_from_order_and_seller(self):
        assert [s.shipment_id for s in fold(order, PLACED).shipments] == [
            derived_id(ORDER_ID, "shipment/seller-1"), derived_id(ORDER_ID, "shipment/seller-2")]
        assert shipment_id(SELLER_ID) != shipment_id(OTHER_SELLER_ID)


class TestAllocation:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(PLACED, confirm_allocation("reservation-1"), [item_allocated("reservation-1")],
                     id="an_allocated_item_is_recorded"),
        pytest.param([*PLACED, item_allocated("reservation-1")], confirm_allocation("reservation-2"),
                     [item_allocated("reservation-2"), order_allocated()],
                     id="the_last_allocation_also_allocates_the_order"),
        pytest.param([*PLACED, item_allocated("reservation-2")], confirm_allocation("reservation-1"),
                     [item_allocated("reservation-1"), order_allocated()],
                     id="allocations_may_arrive_in_any_order"),
        pytest.param([order_placed([order_item(1)], [shipment()], total_cents=1000)],
                     confirm_allocation("reservation-1"), [item_allocated("reservation-1"), order_allocated(1000)],
                     id="a_single_item_order_is_allocated_at_once"),
        pytest.param([*PLACED, item_allocated("reservation-1")], confirm_allocation("reservation-1"), [],
                     id="a_repeated_allocation_is_a_no_op"),
        pytest.param(ALLOCATED, confirm_allocation("reservation-2"), [],
                     id="a_repeated_last_allocation_does_not_allocate_again"),
        pytest.param(REFUSED, confirm_allocation("reservation-1"), [],
                     id="late_allocation_for_a_cancelled_order_is_ignored"),
        pytest.param(REFUSED, confirm_allocation("reservation-9"), [],
                     id="any_allocation_for_a_cancelled_order_is_ignored"),
        pytest.param(PAID, confirm_allocation("reservation-1"), [], id="allocation_after_payment_is_ignored"),
        pytest.param(PLACED, fail_allocation("reservation-2", product_id="product-2", available=1),
                     [order_cancelled("allocation_failed", product_id="product-2", available=1)],
                     id="a_refused_allocation_cancels_the_order"),
        pytest.param([*PLACED, item_allocated("reservation-1")], fail_allocation(),
                     [order_cancelled("allocation_failed", product_id="product-2", available=0)],
                     id="a_refusal_cancels_even_with_other_items_held"),
        pytest.param(REFUSED, fail_allocation(), [], id="a_repeated_refusal_is_a_no_op"),
        pytest.param(CANCELLED_UNPAID, fail_allocation(), [], id="a_refusal_for_a_cancelled_order_is_ignored"),
        pytest.param(PAID, fail_allocation(), [], id="a_refusal_after_payment_is_ignored"),
        pytest.param([], confirm_allocation(), NOT_FOUND, id="allocation_for_an_unknown_order_is_not_found"),
        pytest.param([], fail_allocation(), NOT_FOUND, id="refusal_for_an_unknown_order_is_not_found"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    def test_a_refused_allocation_answers_409_insufficient_stock_with_what_is_available(self):
        rejection = order_cancelled("allocation_failed", product_id="product-2", available=1).rejection()
        assert isinstance(rejection, Rejection) and rejection.message
        assert (rejection.code, rejection.status, rejection.details) == (
            "insufficient_stock", 409, {"productId": "product-2", "available": 1, "orderId": ORDER_ID})

    @pytest.mark.parametrize("reason", ["payment_failed", "payment_timeout", "payment_unavailable"])
    def test_other_cancellations_answer_no_rejection(self, reason):
        assert order_cancelled(reason).rejection() is None

    def test_the_order_is_allocated_once_every_item_is(self):
        state = fold(order, [*PLACED, item_allocated("reservation-1")])
        assert (state.allocated, state.allocated_all) == (frozenset({"reservation-1"}), False)
        state = fold(order, ALLOCATED)
        assert (state.allocated, state.allocated_all) == (frozenset({"reservation-1", "reservation-2"}), True)

    def test_a_refused_allocation_cancels_everything(self):
        state = fold(order, REFUSED)
        assert (state.status, state.cancel_reason, state.cancelled_at, state.expires_at) == (
            CANCELLED, "allocation_failed", LATER, None)
        assert [s.status for s in state.shipments] == [CANCELLED, CANCELLED]


class TestAttachPayment:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(ALLOCATED, attach_payment(), [payment_attached()], id="the_buyer_attaches_the_payment"),
        pytest.param(ALLOCATED, attach_payment(actor=AN_ADMIN), [payment_attached()], id="an_admin_may_attach_it"),
        pytest.param(ALLOCATED, attach_payment(actor=ANOTHER_BUYER), FORBIDDEN,
                     id="another_buyer_may_not_attach_it"),
        pytest.param(ALLOCATED, attach_payment(actor=THE_SELLER), FORBIDDEN, id="a_seller_may_not_attach_it"),
        pytest.param(REFUSED, attach_payment(actor=ANOTHER_BUYER), FORBIDDEN,
                     id="forbidden_is_checked_before_cancelled"),
        pytest.param(REFUSED, attach_payment(), [intent_unused("pi_1", "order_cancelled", "allocation_failed")],
                     id="a_cancelled_order_cannot_be_paid_and_the_intent_is_left_to_cancel"),
        pytest.param([*ATTACHED, order_cancelled("payment_timeout")], attach_payment(intent_id="pi_2"),
                     [intent_unused("pi_2", "order_cancelled", "payment_timeout")],
                     id="cancelled_is_checked_before_already_attached"),
        pytest.param([*ATTACHED, order_cancelled("payment_timeout")], attach_payment(), [],
                     id="the_attached_intent_again_is_a_no_op_after_cancellation"),
        pytest.param(ATTACHED, attach_payment(command_id="attach-2"), [], id="attaching_again_is_a_no_op"),
        pytest.param(ATTACHED, attach_payment(intent_id="pi_2"), [intent_unused("pi_2")],
                     id="the_first_payment_intent_stands_and_another_is_left_to_cancel"),
        pytest.param([*ATTACHED, intent_unused("pi_2")], attach_payment(intent_id="pi_2"), [],
                     id="another_intent_redelivered_is_left_to_cancel_once"),
        pytest.param([*REFUSED, intent_unused("pi_1", "order_cancelled", "allocation_failed")], attach_payment(),
                     Rejected("order_cancelled", 409, {"orderId": ORDER_ID, "reason": "allocation_failed"}),
                     id="an_intent_redelivered_to_a_cancelled_order_is_refused_again_and_left_to_cancel_once"),
        pytest.param(PAID, attach_payment(), [], id="attaching_after_payment_is_a_no_op"),
        pytest.param(PLACED, attach_payment(), Rejected("not_ready", 409), id="nothing_allocated_is_not_ready"),
        pytest.param([*PLACED, item_allocated("reservation-2")], attach_payment(), Rejected("not_ready", 409),
                     id="partly_allocated_is_not_ready"),
        pytest.param([], attach_payment(), NOT_FOUND, id="an_unknown_order_is_not_found"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    def test_the_intent_is_kept_and_its_client_secret_never_enters_the_log(self):
        state = fold(order, ATTACHED)
        assert (state.intent_id, state.status) == ("pi_1", PENDING)
        assert order.view(state)["paymentIntentId"] == "pi_1"
        assert "secret" not in repr(attach_payment()).lower() and "secret" not in repr(ATTACHED).lower()

    def test_a_snapshot_from_before_unused_intents_were_remembered_still_loads(self):
        old = from_before(fold(order, ATTACHED), "unused")
        assert order.decide(old, attach_payment(intent_id="pi_2")) == [intent_unused("pi_2")]
        assert order.evolve(old, intent_unused("pi_2")).unused == {"pi_2"}

    def test_an_intent_made_for_an_order_cancelled_meanwhile_is_refused_and_left_to_cancel(self):
        [unused] = decide(order, REFUSED, attach_payment())
        assert unused == intent_unused("pi_1", "order_cancelled", "allocation_failed")
        assert unused.rejection().code == "order_cancelled"


class TestConfirmOrder:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(ATTACHED, confirm_order(), [order_confirmed(confirmed_at=LATER)],
                     id="a_captured_payment_confirms_a_pending_order"),
        pytest.param(CANCELLED_UNPAID, confirm_order(), [payment_after_cancellation(at=LATER)],
                     id="a_payment_for_a_cancelled_order_is_flagged"),
        pytest.param(REFUSED, confirm_order(), [payment_after_cancellation(at=LATER)],
                     id="a_payment_for_an_order_cancelled_by_allocation_is_flagged"),
        pytest.param(PAID, confirm_order(command_id="confirm-order-2"), [], id="confirming_again_is_a_no_op"),
        pytest.param([*CANCELLED_UNPAID, payment_after_cancellation()], confirm_order(), [],
                     id="a_payment_after_cancellation_is_flagged_once"),
        pytest.param(S1_SHIPPED, confirm_order(), [], id="confirming_a_fulfilled_order_is_a_no_op"),
        pytest.param([], confirm_order(), NOT_FOUND, id="an_unknown_order_is_not_found"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    def test_a_snapshot_from_before_late_payments_were_remembered_still_loads(self):
        old = from_before(fold(order, CANCELLED_UNPAID), "paid_late")
        assert order.decide(old, confirm_order()) == [payment_after_cancellation(at=LATER)]
        assert order.evolve(old, payment_after_cancellation()).paid_late == {PAYMENT_ID}

    def test_a_confirmed_order_is_no_longer_provisional(self):
        state = fold(order, PAID)
        assert (state.status, state.provisional, state.confirmed_at, state.expires_at) == (
            CONFIRMED, False, LATER, None)
        assert [s.status for s in state.shipments] == [PENDING, PENDING]
        assert order.view(state)["provisional"] is False
        assert order.view(state)["status"] == CONFIRMED


class TestCancelOrder:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(PLACED, cancel_order("payment_unavailable"), [order_cancelled("payment_unavailable")],
                     id="a_pending_order_is_cancelled_with_its_reason"),
        pytest.param(ATTACHED, cancel_order("payment_failed"), [order_cancelled("payment_failed", intent_id="pi_1")],
                     id="a_failed_payment_cancels_naming_the_intent_to_cancel_at_stripe"),
        pytest.param(ALLOCATED, cancel_order("payment_timeout"), [order_cancelled("payment_timeout")],
                     id="an_expired_allocation_cancels"),
        pytest.param(CANCELLED_UNPAID, cancel_order("payment_timeout"), [], id="cancelling_again_is_a_no_op"),
        pytest.param(PAID, cancel_order("payment_timeout"), Rejected("invalid_transition", 409),
                     id="a_confirmed_order_cannot_be_cancelled"),
        pytest.param(S1_DELIVERED, cancel_order(), Rejected("invalid_transition", 409),
                     id="a_fulfilled_order_cannot_be_cancelled"),
        pytest.param([], cancel_order(), NOT_FOUND, id="an_unknown_order_is_not_found"),
        pytest.param(PLACED, cancel_order("cancelled_by_buyer", actor=A_BUYER),
                     [order_cancelled("cancelled_by_buyer")], id="its_buyer_cancels_a_pending_order"),
        pytest.param(PLACED, cancel_order("cancelled_by_buyer", actor=AN_ADMIN),
                     [order_cancelled("cancelled_by_buyer")], id="an_admin_cancels_a_pending_order"),
        pytest.param(PLACED, cancel_order("cancelled_by_buyer", actor=Actor("buyer-2", BUYER)), NOT_FOUND,
                     id="another_buyer_does_not_know_of_the_order"),
        pytest.param(PLACED, Expire(command_id="tick-1", now=LATER), [], id="a_tick_before_the_deadline_is_nothing"),
        pytest.param(PLACED, cart.Checkout(command_id="c-1", now=LATER, buyer_id=BUYER_ID, order_id=ORDER_ID,
                                           payment_id=PAYMENT_ID, allocation_ttl_s=60, fee_bps=0), INVALID,
                     id="other_commands_are_invalid"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)


class TestSagaDeadline:
    """An unpaid order nothing ended (a saga step lost) cancels itself, a grace after its holds lapse."""

    DUE = NOW + timedelta(seconds=ALLOCATION_TTL_S) + order.SAGA_GRACE

    @pytest.mark.parametrize("given, when, then", [
        pytest.param(PLACED, Expire(command_id="tick-1", now=DUE - timedelta(seconds=1)), [],
                     id="before_the_grace_ends_inventory_may_still_cancel_it"),
        pytest.param(PLACED, Expire(command_id="tick-1", now=DUE),
                     [order_cancelled("saga_timeout", cancelled_at=DUE)], id="an_order_never_allocated_cancels"),
        pytest.param(ATTACHED, Expire(command_id="tick-1", now=DUE),
                     [order_cancelled("saga_timeout", cancelled_at=DUE, intent_id="pi_1")],
                     id="an_order_never_paid_cancels_and_names_its_intent"),
        pytest.param(PAID, Expire(command_id="tick-1", now=DUE), [], id="a_paid_order_never_times_out"),
        pytest.param(CANCELLED_UNPAID, Expire(command_id="tick-1", now=DUE), [], id="a_cancelled_order_ends_once"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    @pytest.mark.parametrize("given, expected", [
        pytest.param(PLACED, DUE, id="pending"),
        pytest.param(PAID, None, id="paid"),
        pytest.param(CANCELLED_UNPAID, None, id="cancelled"),
    ])
    def test_deadline(self, given, expected):
        assert order.deadline(fold(order, given)) == expected

    def test_a_cancelled_order_and_its_shipments_are_cancelled(self):
        state = fold(order, CANCELLED_UNPAID)
        assert (state.status, state.cancel_reason, state.cancelled_at, state.expires_at, state.provisional) == (
            CANCELLED, "payment_failed", LATER, None, True)
        assert [s.status for s in state.shipments] == [CANCELLED, CANCELLED]
        assert order.view(state)["status"] == CANCELLED


class TestShipmentTransitions:
    """Every shipment status × every move, for seller 1's shipment of a paid two-seller order."""

    @pytest.mark.parametrize("given, when, then", [
        # PENDING
        pytest.param(PAID, process_shipment(), [moved(PROCESSING, PROCESSING)],
                     id="pending_process_starts_processing"),
        pytest.param(PAID, ship_shipment(), conflict(PENDING), id="pending_ship_must_process_first"),
        pytest.param(PAID, deliver_shipment(), conflict(PENDING), id="pending_deliver_must_ship_first"),
        # PROCESSING
        pytest.param(S1_PROCESSING, process_shipment(), [], id="processing_process_again_is_a_no_op"),
        pytest.param(S1_PROCESSING, ship_shipment(), [moved(SHIPPED, PROCESSING, tracking=True)],
                     id="processing_ship_ships_with_tracking"),
        pytest.param(S1_PROCESSING, deliver_shipment(), conflict(PROCESSING), id="processing_deliver_must_ship_first"),
        # SHIPPED
        pytest.param(S1_SHIPPED, process_shipment(), conflict(SHIPPED), id="shipped_process_cannot_go_back"),
        pytest.param(S1_SHIPPED, ship_shipment(), [], id="shipped_ship_again_with_the_same_tracking_is_a_no_op"),
        pytest.param(S1_SHIPPED, ship_shipment(tracking_number="OTHER-1"), conflict(SHIPPED),
                     id="shipped_ship_again_with_another_tracking_number_is_refused"),
        pytest.param(S1_SHIPPED, ship_shipment(carrier="DHL"), conflict(SHIPPED),
                     id="shipped_ship_again_with_another_carrier_is_refused"),
        pytest.param(S1_SHIPPED, deliver_shipment(), [moved(DELIVERED, PROCESSING, tracking=True)],
                     id="shipped_deliver_delivers_keeping_the_tracking"),
        # DELIVERED
        pytest.param(S1_DELIVERED, process_shipment(), conflict(DELIVERED), id="delivered_process_is_refused"),
        pytest.param(S1_DELIVERED, ship_shipment(), conflict(DELIVERED), id="delivered_ship_is_refused"),
        pytest.param(S1_DELIVERED, deliver_shipment(), [], id="delivered_deliver_again_is_a_no_op"),
        # CANCELLED
        pytest.param(CANCELLED_UNPAID, process_shipment(), conflict(CANCELLED), id="cancelled_process_is_refused"),
        pytest.param(CANCELLED_UNPAID, ship_shipment(), conflict(CANCELLED), id="cancelled_ship_is_refused"),
        pytest.param(CANCELLED_UNPAID, deliver_shipment(), conflict(CANCELLED), id="cancelled_deliver_is_refused"),
    ])
    def test_each_status_and_move(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    @pytest.mark.parametrize("given, when, then", [
        pytest.param(ATTACHED, process_shipment(), conflict(PENDING), id="an_unpaid_order_cannot_be_processed"),
        pytest.param(ATTACHED, ship_shipment(), conflict(PENDING), id="an_unpaid_order_cannot_be_shipped"),
        pytest.param(PLACED, deliver_shipment(), conflict(PENDING), id="an_unpaid_order_cannot_be_delivered"),
        pytest.param(ATTACHED, process_shipment(actor=AN_ADMIN), conflict(PENDING),
                     id="not_even_an_admin_moves_an_unpaid_shipment"),
        pytest.param(PAID, process_shipment(shipment_key="shipment-9"), NOT_FOUND,
                     id="an_unknown_shipment_is_not_found"),
        pytest.param(PAID, process_shipment(shipment_key="shipment-9", actor=OTHER_SELLER), NOT_FOUND,
                     id="not_found_is_checked_before_forbidden"),
        pytest.param([], process_shipment(), NOT_FOUND, id="an_unknown_order_is_not_found"),
        pytest.param(PAID, process_shipment(actor=OTHER_SELLER), FORBIDDEN,
                     id="another_seller_may_not_process_it"),
        pytest.param(S1_PROCESSING, ship_shipment(actor=OTHER_SELLER), FORBIDDEN,
                     id="another_seller_may_not_ship_it"),
        pytest.param(S1_SHIPPED, deliver_shipment(actor=OTHER_SELLER), FORBIDDEN,
                     id="another_seller_may_not_deliver_it"),
        pytest.param(PAID, process_shipment(actor=A_BUYER), FORBIDDEN, id="the_buyer_may_not_move_it"),
        pytest.param(ATTACHED, process_shipment(actor=OTHER_SELLER), FORBIDDEN,
                     id="forbidden_is_checked_before_unpaid"),
        pytest.param(S1_DELIVERED, process_shipment(actor=OTHER_SELLER), FORBIDDEN,
                     id="forbidden_is_checked_before_the_transition"),
        pytest.param(PAID, process_shipment(OTHER_SELLER_ID),
                     [moved(PROCESSING, PROCESSING, seller_id=OTHER_SELLER_ID)],
                     id="each_seller_moves_its_own_shipment"),
        pytest.param(PAID, process_shipment(actor=AN_ADMIN), [moved(PROCESSING, PROCESSING)],
                     id="an_admin_may_process_any_shipment"),
        pytest.param(S1_PROCESSING, ship_shipment(actor=AN_ADMIN), [moved(SHIPPED, PROCESSING, tracking=True)],
                     id="an_admin_may_ship_any_shipment"),
        pytest.param(S1_SHIPPED, deliver_shipment(actor=AN_ADMIN), [moved(DELIVERED, PROCESSING, tracking=True)],
                     id="an_admin_may_deliver_any_shipment"),
        pytest.param(S1_SHIPPED, deliver_shipment(actor=A_CARRIER), [moved(DELIVERED, PROCESSING, tracking=True)],
                     id="the_carrier_may_deliver"),
        pytest.param(PAID, process_shipment(actor=A_CARRIER), FORBIDDEN, id="the_carrier_may_not_process"),
        pytest.param(S1_PROCESSING, ship_shipment(actor=A_CARRIER), FORBIDDEN, id="the_carrier_may_not_ship"),
        pytest.param(S1_PROCESSING, deliver_shipment(actor=A_CARRIER), conflict(PROCESSING),
                     id="the_carrier_cannot_deliver_what_was_not_shipped"),
        pytest.param(ATTACHED, deliver_shipment(actor=A_CARRIER), conflict(PENDING),
                     id="the_carrier_cannot_deliver_an_unpaid_order"),
    ])
    def test_guards(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    @pytest.mark.parametrize("given, when, then", [
        pytest.param([*PAID, shipment_updated(PROCESSING, PROCESSING, seller_id=OTHER_SELLER_ID)],
                     process_shipment(), [moved(PROCESSING, PROCESSING)], id="both_processing_is_processing"),
        pytest.param([*S1_SHIPPED, shipment_updated(PROCESSING, PROCESSING, seller_id=OTHER_SELLER_ID)],
                     ship_shipment(OTHER_SELLER_ID, tracking_number="TRK-2", carrier="DHL"),
                     [shipment_updated(SHIPPED, SHIPPED, seller_id=OTHER_SELLER_ID, tracking_number="TRK-2",
                                       carrier="DHL")],
                     id="the_last_shipment_out_the_door_ships_the_order"),
        pytest.param([*S1_SHIPPED, shipment_updated(PROCESSING, PROCESSING, seller_id=OTHER_SELLER_ID),
                      shipment_updated(SHIPPED, SHIPPED, seller_id=OTHER_SELLER_ID, tracking_number="TRK-2",
                                       carrier="DHL")],
                     deliver_shipment(), [moved(DELIVERED, SHIPPED, tracking=True)],
                     id="one_delivered_of_two_shipped_is_shipped"),
        pytest.param([*S1_DELIVERED, shipment_updated(PROCESSING, PROCESSING, seller_id=OTHER_SELLER_ID),
                      shipment_updated(SHIPPED, SHIPPED, seller_id=OTHER_SELLER_ID, tracking_number="TRK-2",
                                       carrier="DHL")],
                     deliver_shipment(OTHER_SELLER_ID),
                     [shipment_updated(DELIVERED, DELIVERED, seller_id=OTHER_SELLER_ID, tracking_number="TRK-2",
                                       carrier="DHL")],
                     id="the_last_delivery_delivers_the_order"),
        pytest.param([order_placed([order_item(1)], [shipment()], total_cents=1000), item_allocated(),
                      order_allocated(), payment_attached(), order_confirmed(),
                      shipment_updated(PROCESSING, PROCESSING),
                      shipment_updated(SHIPPED, SHIPPED, **TRACKING)],
                     deliver_shipment(), [moved(DELIVERED, DELIVERED, tracking=True)],
                     id="a_one_shipment_order_follows_its_shipment"),
    ])
    def test_the_event_carries_the_order_status_after_the_move(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    def test_shipped_at_and_delivered_at_are_set_by_the_moves(self):
        shipments = fold(order, S1_PROCESSING).shipments
        assert (shipments[0].status, shipments[0].shipped_at, shipments[0].delivered_at) == (PROCESSING, None, None)
        shipped, other = fold(order, S1_SHIPPED).shipments
        assert (shipped.status, shipped.tracking_number, shipped.carrier, shipped.shipped_at,
                shipped.delivered_at) == (SHIPPED, "1Z999AA10123456784", "UPS", LATER + timedelta(hours=1), None)
        delivered, other = fold(order, S1_DELIVERED).shipments
        assert (delivered.status, delivered.tracking_number, delivered.carrier, delivered.shipped_at,
                delivered.delivered_at) == (DELIVERED, "1Z999AA10123456784", "UPS", LATER + timedelta(hours=1),
                                            LATER + timedelta(days=2))
        assert other == SHIPMENTS[1]

    def test_the_shipment_view(self):
        state = fold(order, S1_SHIPPED)
        assert order.shipment_view(state, state.shipments[0]) == {
            "shipmentId": shipment_id(SELLER_ID), "orderId": ORDER_ID, "sellerId": SELLER_ID, "status": SHIPPED,
            "provisional": False,
            "items": [{"itemId": "item-1", "productId": "product-1", "sku": "SKU-1", "sellerId": SELLER_ID,
                       "quantity": 2, "priceCents": 3333, "currency": "USD"}],
            "trackingNumber": "1Z999AA10123456784", "carrier": "UPS", "shippedAt": "2025-03-01T13:05:00+00:00",
            "deliveredAt": None}

    def test_a_whole_fulfilment_rolls_the_order_up_move_by_move(self):
        """Decide each move in turn: the event's order status is the roll-up of the state it leads to."""
        history = list(PAID)
        seen = []
        for command in [process_shipment(), ship_shipment(), process_shipment(OTHER_SELLER_ID),
                        ship_shipment(OTHER_SELLER_ID, tracking_number="TRK-2", carrier="DHL"),
                        deliver_shipment(actor=A_CARRIER), deliver_shipment(OTHER_SELLER_ID, actor=AN_ADMIN)]:
            [event] = decide(order, history, command)
            history.append(event)
            after = fold(order, history)
            assert event.order_status == order.rolled_up(after) == order.view(after)["status"]
            seen.append((event.seller_id, event.status, event.order_status))
        assert seen == [(SELLER_ID, PROCESSING, PROCESSING), (SELLER_ID, SHIPPED, PROCESSING),
                        (OTHER_SELLER_ID, PROCESSING, PROCESSING), (OTHER_SELLER_ID, SHIPPED, SHIPPED),
                        (SELLER_ID, DELIVERED, SHIPPED), (OTHER_SELLER_ID, DELIVERED, DELIVERED)]

    def test_every_decided_move_reports_the_roll_up_it_leads_to(self):
        paths = {PENDING: [], PROCESSING: [process_shipment], SHIPPED: [process_shipment, ship_shipment],
                 DELIVERED: [process_shipment, ship_shipment, deliver_shipment]}
        moves = [process_shipment, ship_shipment, deliver_shipment]
        checked = 0
        for first in paths:
            for second in paths:
                history = list(PAID)
                for seller_id, status in ((SELLER_ID, first), (OTHER_SELLER_ID, second)):
                    for move in paths[status]:
                        history += decide(order, history, move(seller_id))
                assert [s.status for s in fold(order, history).shipments] == [first, second]
                for seller_id in (SELLER_ID, OTHER_SELLER_ID):
                    for move in moves:
                        outcome = decide(order, history, move(seller_id))
                        if isinstance(outcome, list) and outcome:
                            [event] = outcome
                            assert event.order_status == order.rolled_up(fold(order, [*history, event]))
                            checked += 1
        assert checked == 24  # of the 4 × 4 states, one forward move per shipment not yet delivered

    def test_every_move_changes_one_shipment_and_the_version(self):
        before = fold(order, S1_PROCESSING)
        events = order.decide(before, ship_shipment())
        after = order.evolve(before, events[0])
        assert after.version == before.version + 1
        assert after.shipments[1] == before.shipments[1]
        assert (after.status, after.provisional) == (CONFIRMED, False)


def with_shipments(*statuses, given=PAID):
    """The order `given` leads to, its shipments (in order) set to `statuses`."""
    state = fold(order, given)
    return replace(state, shipments=tuple(replace(s, status=status) for s, status in zip(state.shipments, statuses)))


class TestRollUp:
    @pytest.mark.parametrize("state, expected", [
        pytest.param(with_shipments(PENDING, PENDING), CONFIRMED, id="all_pending_is_confirmed"),
        pytest.param(with_shipments(PROCESSING, PENDING), PROCESSING, id="one_processing_is_processing"),
        pytest.param(with_shipments(PENDING, PROCESSING), PROCESSING, id="either_shipment_processing_is_processing"),
        pytest.param(with_shipments(PROCESSING, PROCESSING), PROCESSING, id="all_processing_is_processing"),
        pytest.param(with_shipments(SHIPPED, PENDING), PROCESSING, id="one_shipped_one_pending_is_processing"),
        pytest.param(with_shipments(PENDING, SHIPPED), PROCESSING, id="one_pending_one_shipped_is_processing"),
        pytest.param(with_shipments(SHIPPED, PROCESSING), PROCESSING, id="one_shipped_one_processing_is_processing"),
        pytest.param(with_shipments(DELIVERED, PENDING), PROCESSING, id="one_delivered_one_pending_is_processing"),
        pytest.param(with_shipments(PROCESSING, DELIVERED), PROCESSING,
                     id="one_processing_one_delivered_is_processing"),
        pytest.param(with_shipments(SHIPPED, SHIPPED), SHIPPED, id="all_shipped_is_shipped"),
        pytest.param(with_shipments(SHIPPED, DELIVERED), SHIPPED, id="shipped_and_delivered_is_shipped"),
        pytest.param(with_shipments(DELIVERED, SHIPPED), SHIPPED, id="delivered_and_shipped_is_shipped"),
        pytest.param(with_shipments(DELIVERED, DELIVERED), DELIVERED, id="all_delivered_is_delivered"),
        pytest.param(fold(order, PLACED), PENDING, id="a_placed_order_is_pending"),
        pytest.param(fold(order, ATTACHED), PENDING, id="an_allocated_unpaid_order_is_pending"),
        pytest.param(with_shipments(PROCESSING, SHIPPED, given=ATTACHED), PENDING,
                     id="unpaid_is_pending_whatever_the_shipments_say"),
        pytest.param(fold(order, CANCELLED_UNPAID), CANCELLED, id="a_cancelled_order_is_cancelled"),
        pytest.param(fold(order, REFUSED), CANCELLED, id="an_order_cancelled_by_allocation_is_cancelled"),
        pytest.param(with_shipments(PENDING, given=[order_placed([order_item(1)], [shipment()], total_cents=1000),
                                                    order_confirmed()]), CONFIRMED,
                     id="a_one_shipment_order_pending_is_confirmed"),
        pytest.param(with_shipments(DELIVERED, given=[order_placed([order_item(1)], [shipment()], total_cents=1000),
                                                      order_confirmed()]), DELIVERED,
                     id="a_one_shipment_order_delivered_is_delivered"),
    ])
    def test_rolled_up(self, state, expected):
        assert order.rolled_up(state) == expected
        assert order.view(state)["status"] == expected

    @pytest.mark.parametrize("given, expected", [
        pytest.param(PAID, CONFIRMED, id="paid"),
        pytest.param(S1_PROCESSING, PROCESSING, id="one_processing"),
        pytest.param(S1_SHIPPED, PROCESSING, id="one_shipped_one_pending"),
        pytest.param(S1_DELIVERED, PROCESSING, id="one_delivered_one_pending"),
    ])
    def test_evolved_shipments_roll_up(self, given, expected):
        assert order.rolled_up(fold(order, given)) == expected


class TestReact:
    def test_a_placed_order_asks_inventory_to_allocate_each_item(self):
        event = order_placed()
        assert sagas.after_order(event, fold(order, PLACED), STAMP) == [
            ("inventory", "product-1", inventory.AllocateStock(
                command_id=derived_id("event-1", "allocate/reservation-1"), now=LATER, product_id="product-1",
                reservation_id="reservation-1", order_id=ORDER_ID, quantity=2,
                expires_at=NOW + timedelta(seconds=1800))),
            ("inventory", "product-2", inventory.AllocateStock(
                command_id=derived_id("event-1", "allocate/reservation-2"), now=LATER, product_id="product-2",
                reservation_id="reservation-2", order_id=ORDER_ID, quantity=1,
                expires_at=NOW + timedelta(seconds=1800)))]

    def test_an_attached_payment_opens_the_payment(self):
        assert sagas.after_order(payment_attached(), fold(order, ATTACHED), STAMP) == [
            ("payment", PAYMENT_ID, payment.OpenPayment(
                command_id=derived_id("event-1", "open-payment"), now=LATER, payment_id=PAYMENT_ID,
                order_id=ORDER_ID, buyer_id=BUYER_ID, amount_cents=7667, currency="USD", intent_id="pi_1"))]

    def test_a_confirmed_order_sells_each_item_posts_the_sale_and_completes_the_cart(self):
        assert sagas.after_order(order_confirmed(), fold(order, PAID), STAMP) == [
            ("inventory", "product-1", inventory.ConfirmSale(
                command_id=derived_id("event-1", "sell/reservation-1"), now=LATER, product_id="product-1",
                reservation_id="reservation-1", order_id=ORDER_ID, quantity=2)),
            ("inventory", "product-2", inventory.ConfirmSale(
                command_id=derived_id("event-1", "sell/reservation-2"), now=LATER, product_id="product-2",
                reservation_id="reservation-2", order_id=ORDER_ID, quantity=1)),
            ("ledger", PAYMENT_ID, ledger.PostSale(
                command_id=derived_id("event-1", "post-sale"), now=LATER, payment_id=PAYMENT_ID, order_id=ORDER_ID,
                currency="USD", total_cents=7667, seller_subtotals=((SELLER_ID, 6666), (OTHER_SELLER_ID, 1001)),
                fee_bps=1000)),
            ("cart", BUYER_ID, cart.CloseCart(
                command_id=derived_id("event-1", "close-cart"), now=LATER, buyer_id=BUYER_ID, cart_id=ORDER_CART_ID,
                order_id=ORDER_ID, status=cart.COMPLETED))]

    def test_seller_subtotals_sum_each_seller_s_items_in_order_of_first_appearance(self):
        items = [order_item(1, seller_id=OTHER_SELLER_ID, quantity=2, price_cents=3333), order_item(2),
                 order_item(3, seller_id=OTHER_SELLER_ID, price_cents=1)]
        state = fold(order, [order_placed(items, [shipment(OTHER_SELLER_ID, ("item-1", "item-3")),
                                                  shipment(SELLER_ID, ("item-2",))], total_cents=7667)])
        assert state.seller_subtotals() == ((OTHER_SELLER_ID, 6667), (SELLER_ID, 1000))

    def test_the_ledger_accepts_the_sale_the_order_posts(self):
        [*_, (_, _, post), _] = sagas.after_order(order_confirmed(), fold(order, PAID), STAMP)
        [posted] = ledger.decide(ledger.initial_state(), post)
        assert [(e.account_id, e.direction, e.amount_cents) for e in posted.entries][2:] == [
            ("STRIPE_CLEARING", "DEBIT", 6666), ("SELLER_PAYABLE_seller-1", "CREDIT", 5999),
            ("BUYIT_REVENUE", "CREDIT", 667),
            ("STRIPE_CLEARING", "DEBIT", 1001), ("SELLER_PAYABLE_seller-2", "CREDIT", 901),
            ("BUYIT_REVENUE", "CREDIT", 100)]

    @pytest.mark.parametrize("reason", ["allocation_failed", "payment_failed", "payment_timeout"])
    def test_a_cancelled_order_releases_each_item_and_abandons_the_cart(self, reason):
        # naming the order, so inventory knows a late AllocateStock of it for a redelivery
        given = [*ALLOCATED, order_cancelled(reason)]
        assert sagas.after_order(order_cancelled(reason), fold(order, given), STAMP) == [
            ("inventory", "product-1", inventory.ReleaseReservation(
                command_id=derived_id("event-1", "release/reservation-1"), now=LATER, product_id="product-1",
                reservation_id="reservation-1", reason=reason, order_id=ORDER_ID)),
            ("inventory", "product-2", inventory.ReleaseReservation(
                command_id=derived_id("event-1", "release/reservation-2"), now=LATER, product_id="product-2",
                reservation_id="reservation-2", reason=reason, order_id=ORDER_ID)),
            ("cart", BUYER_ID, cart.CloseCart(
                command_id=derived_id("event-1", "close-cart"), now=LATER, buyer_id=BUYER_ID, cart_id=ORDER_CART_ID,
                order_id=ORDER_ID, status=cart.ABANDONED))]

    def test_a_payment_after_cancellation_is_flagged_for_refund(self):
        given = [*CANCELLED_UNPAID, payment_after_cancellation()]
        assert sagas.after_order(payment_after_cancellation(), fold(order, given), STAMP) == [
            ("payment", PAYMENT_ID, payment.FlagForRefund(
                command_id=derived_id("event-1", "flag-refund"), now=LATER, payment_id=PAYMENT_ID,
                reason="order_cancelled"))]

    @pytest.mark.parametrize("event, given", [
        pytest.param(item_allocated(), [*PLACED, item_allocated()], id="item_allocated"),
        pytest.param(order_allocated(), ALLOCATED, id="order_allocated"),
        pytest.param(shipment_updated(PROCESSING, PROCESSING), S1_PROCESSING, id="shipment_status_updated"),
    ])
    def test_other_events_ask_for_nothing(self, event, given):
        assert sagas.after_order(event, fold(order, given), STAMP) == []

    def test_follow_up_ids_are_derived_from_their_cause(self):
        state = fold(order, PAID)
        once = sagas.after_order(order_confirmed(), state, STAMP)
        assert once == sagas.after_order(order_confirmed(), state, STAMP)
        other = sagas.after_order(order_confirmed(), state, Stamp(now=LATER, cause_id="event-2"))
        assert {c.command_id for _, _, c in once}.isdisjoint({c.command_id for _, _, c in other})


class TestState:
    def test_initial_state_has_no_order_and_no_view(self):
        assert order.view(order.initial_state()) is None

    @pytest.mark.parametrize("given, when", [
        pytest.param([], place_order(), id="place"),
        pytest.param([*PLACED, item_allocated()], confirm_allocation("reservation-2"), id="allocate_last"),
        pytest.param(ALLOCATED, attach_payment(), id="attach"),
        pytest.param(ATTACHED, confirm_order(), id="confirm"),
        pytest.param(CANCELLED_UNPAID, confirm_order(), id="pay_after_cancel"),
        pytest.param(PLACED, fail_allocation(), id="refuse"),
        pytest.param(PAID, process_shipment(), id="process"),
    ])
    def test_each_decided_event_moves_the_version_by_one(self, given, when):
        before = fold(order, given)
        events = order.decide(before, when)
        assert events
        assert fold(order, [*given, *events]).version == before.version + len(events)

    def test_view(self):
        state = fold(order, S1_SHIPPED)
        view = order.view(state)
        assert {k: view[k] for k in ("orderId", "buyerId", "status", "provisional", "totalCents", "currency",
                                     "paymentId", "paymentIntentId", "createdAt", "confirmedAt", "cancelledAt",
                                     "cancelReason", "version")} == {
            "orderId": ORDER_ID, "buyerId": BUYER_ID, "status": PROCESSING, "provisional": False,
            "totalCents": 7667, "currency": "USD", "paymentId": PAYMENT_ID, "paymentIntentId": "pi_1",
            "createdAt": "2025-03-01T12:00:00+00:00", "confirmedAt": "2025-03-01T12:05:00+00:00",
            "cancelledAt": None, "cancelReason": None, "version": 8}
        assert [(s["sellerId"], s["status"]) for s in view["shipments"]] == [(SELLER_ID, SHIPPED),
                                                                             (OTHER_SELLER_ID, PENDING)]
        assert [i["itemId"] for i in view["items"]] == ["item-1", "item-2"]


def short(product_id="product-1", quantity=1):
    return order.RecordShortfall(command_id=f"short-{product_id}", now=LATER, order_id=ORDER_ID,
                                 product_id=product_id, quantity=quantity)


def shortfall(product_id="product-1", seller_id=SELLER_ID, quantity=1, amount_cents=3333):
    return order.OrderShortfall(order_id=ORDER_ID, payment_id=PAYMENT_ID, product_id=product_id, seller_id=seller_id,
                                quantity=quantity, amount_cents=amount_cents, at=LATER)


class TestShortfall:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(PAID, short(), [shortfall()], id="one_unit_short_is_priced_from_the_order"),
        pytest.param(PAID, short(quantity=5), [shortfall(quantity=2, amount_cents=6666)],
                     id="never_more_than_the_order_holds"),
        pytest.param([*PAID, shortfall()], short(), [], id="recorded_once"),
        pytest.param(PLACED, short(), INVALID, id="an_unpaid_order_cannot_fall_short"),
        pytest.param(CANCELLED_UNPAID, short(), INVALID, id="a_cancelled_order_cannot_fall_short"),
        pytest.param(PAID, short("product-9"), INVALID, id="a_product_not_in_the_order_is_invalid"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(order, given, when), then)

    def test_the_missing_units_are_flagged_for_refund_naming_their_seller(self):
        [(target, key, flag)] = sagas.after_order(shortfall(), fold(order, [*PAID, shortfall()]), STAMP)
        assert (target, key, flag.amount_cents, flag.refund_key, flag.seller_id, flag.fee_bps) == (
            "payment", PAYMENT_ID, 3333, "shortfall/product-1", SELLER_ID, 1000)
        assert order.view(fold(order, [*PAID, shortfall()]))["shortfalls"] == [
            {"productId": "product-1", "quantity": 1, "amountCents": 3333}]
