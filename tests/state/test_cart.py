"""Carts: items held by soft reservations, checkout, closing by the order, and expiry of an idle cart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from state import cart, inventory, order, sagas
from state.cart import ABANDONED, ACTIVE, CHECKOUT, COMPLETED, EXPIRED
from state.common import Expire, Stamp, derived_id
from tests.state.given import (BUYER_ID, CART_ID, PRODUCT_ID, listing, CART_TTL_S, INVALID, LATER, NOT_FOUND, NOW, OTHER_SELLER_ID,
                               RESERVATION_TTL_S, SELLER_ID, Rejected, add_item, assert_outcome, cart_abandoned,
                               cart_completed, cart_created, cart_item, change_item, checked_out, checkout,
                               close_cart, confirm_reservation, decide, fold, from_before, item_confirmed,
                               item_refused, item_removed, item_requested, lapse_reservation, refuse_reservation,
                               remove_item)

MUG = cart_item(2)                                                  # product-1 as held: 2 × 12.99
REQUESTED = [cart_created(), item_requested(2)]                     # asked inventory, nothing held yet
HOLDING = [*REQUESTED, item_confirmed(2)]                           # 2 mugs held
CHECKED_OUT = [*HOLDING, checked_out()]                             # CHECKOUT for order-1
COMPLETED_CART = [*CHECKED_OUT, cart_completed()]
ABANDONED_CART = [*CHECKED_OUT, cart_abandoned(ABANDONED)]
EXPIRED_CART = [*HOLDING, cart_abandoned(EXPIRED)]

EXPIRES_AT = NOW + timedelta(seconds=CART_TTL_S)                    # of HOLDING
GIVES_UP_AT = LATER + timedelta(seconds=1800) + cart.CHECKOUT_GRACE        # of CHECKED_OUT
STAMP = Stamp(now=LATER, cause_id="event-1")

TEA = dict(product_id="product-2", sku="SKU-2", seller_id=OTHER_SELLER_ID, price_cents=450)
TEA_ITEM = cart_item(product_id="product-2", sku="SKU-2", seller_id=OTHER_SELLER_ID, price_cents=450)


def not_active(status, **details):
    return Rejected("invalid_transition", 409, {"status": status, **details})


def a_new_cart(command_id, quantity=2):
    """The events an add decides when it starts a cart: the cart, then the request for the item."""
    cart_id = derived_id(command_id, "cart")
    return [cart_created(cart_id=cart_id, created_at=LATER),
            item_requested(quantity, item=cart_item(cart_id=cart_id), at=LATER, cart_id=cart_id, request_id=command_id)]


NEXT_CART_ID = derived_id("add-2", "cart")
NEXT_CART = [*a_new_cart("add-2"), item_confirmed(2)]               # the buyer's next cart, holding 2 mugs


class TestAddItem:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], add_item(2), [cart_created(), item_requested(2)],
                     id="the_first_add_starts_a_cart_and_requests_the_units"),
        pytest.param(COMPLETED_CART, add_item(1, command_id="add-2", now=LATER), a_new_cart("add-2", 1),
                     id="after_a_completed_cart_the_next_add_starts_a_new_one"),
        pytest.param(EXPIRED_CART, add_item(2, command_id="add-2", now=LATER), a_new_cart("add-2"),
                     id="after_an_expired_cart_the_next_add_starts_a_new_one"),
        pytest.param(ABANDONED_CART, add_item(2, command_id="add-2", now=LATER), a_new_cart("add-2"),
                     id="after_an_abandoned_cart_the_next_add_starts_a_new_one"),
        pytest.param(HOLDING, add_item(1, command_id="add-2", now=LATER),
                     [item_requested(3, item=MUG, at=LATER, seq=2, request_id="add-2")],
                     id="adding_a_held_product_asks_for_the_new_total_of_the_same_item"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1")],
                     add_item(1, command_id="add-2", now=LATER),
                     [item_requested(6, item=MUG, at=LATER, seq=3, request_id="add-2")],
                     id="adding_counts_on_a_request_not_yet_answered"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1"),
                      item_refused(seq=2)],
                     add_item(1, command_id="add-2", now=LATER),
                     [item_requested(3, item=MUG, at=LATER, seq=3, request_id="add-2")],
                     id="adding_after_a_refusal_counts_on_what_is_held"),
        pytest.param(HOLDING, add_item(1, command_id="add-2", now=LATER, **TEA),
                     [item_requested(1, item=TEA_ITEM, at=LATER, seq=2, request_id="add-2")],
                     id="adding_another_product_requests_a_new_item"),
        pytest.param(HOLDING, add_item(1, command_id="add-2", now=LATER, **TEA, currency="EUR"),
                     Rejected("currency_mismatch", 409, {"cartCurrency": "USD"}),
                     id="a_cart_holds_one_currency"),
        pytest.param(REQUESTED, add_item(1, command_id="add-2", now=LATER, **TEA, currency="EUR"),
                     Rejected("currency_mismatch", 409, {"cartCurrency": "USD"}),
                     id="a_requested_item_already_sets_the_currency"),
        pytest.param([*HOLDING, item_removed(2)], add_item(1, command_id="add-2", now=LATER, **TEA, currency="EUR"),
                     [item_requested(1, item=cart_item(**TEA, currency="EUR"), at=LATER, seq=3, request_id="add-2")],
                     id="an_emptied_cart_takes_any_currency"),
        pytest.param([*HOLDING, item_removed(2)], add_item(1, command_id="add-2", now=LATER),
                     [item_requested(1, item=cart_item(0), at=LATER, seq=3, request_id="add-2")],
                     id="a_re_added_product_asks_afresh_under_the_same_reservation_with_a_newer_seq"),
        pytest.param(CHECKED_OUT, add_item(1, command_id="add-2", now=LATER), not_active(CHECKOUT),
                     id="a_cart_being_checked_out_cannot_change"),
        pytest.param(CHECKED_OUT, add_item(1, command_id="add-2", now=LATER, currency="EUR"), not_active(CHECKOUT),
                     id="checkout_is_checked_before_the_currency"),
        pytest.param([], add_item(0), INVALID, id="quantity_zero_is_invalid"),
        pytest.param([], add_item(-1), INVALID, id="a_negative_quantity_is_invalid"),
        pytest.param(CHECKED_OUT, add_item(0, command_id="add-2"), INVALID, id="quantity_is_checked_first"),
        pytest.param(HOLDING, add_item(2), [], id="a_redelivered_add_adds_nothing"),
        pytest.param([*HOLDING, item_removed(2)], add_item(2), [], id="a_redelivered_add_does_not_bring_back_an_item"),
        pytest.param(COMPLETED_CART, add_item(2), [], id="a_redelivered_add_does_not_start_a_cart"),
        pytest.param([*COMPLETED_CART, *a_new_cart("add-2")], add_item(2), [],
                     id="a_redelivered_add_of_the_cart_before_stays_out_of_the_new_one"),
        pytest.param(HOLDING, add_item(0), [], id="a_redelivery_is_known_before_anything_else"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    def test_ttls_are_counted_from_the_command_s_now(self):
        [_, requested] = decide(cart, [], add_item(2, reservation_ttl_s=60, cart_ttl_s=120, now=LATER))
        assert (requested.reservation_expires_at, requested.expires_at) == (
            LATER + timedelta(seconds=60), LATER + timedelta(seconds=120))

    def test_a_retried_command_is_identical_and_decides_the_same(self):
        assert add_item(2) == add_item(2)
        assert decide(cart, [], add_item(2)) == decide(cart, [], add_item(2))
        assert decide(cart, COMPLETED_CART, add_item(1, command_id="add-2")) == decide(
            cart, COMPLETED_CART, add_item(1, command_id="add-2"))

    def test_a_new_cart_has_a_new_id(self):
        assert derived_id("add-2", "cart") != CART_ID
        state = fold(cart, [*COMPLETED_CART, *a_new_cart("add-2")])
        assert (state.cart_id, state.status, state.order_id, state.version) == (
            derived_id("add-2", "cart"), ACTIVE, None, len(COMPLETED_CART) + 2)
        assert list(state.items.values()) == [cart_item(cart_id=derived_id("add-2", "cart"))]

    def test_a_requested_item_does_not_show_until_confirmed(self):
        state = fold(cart, REQUESTED)
        assert state.items == {"product-1": cart_item(0)}
        assert cart.view(state)["items"] == [] and cart.view(state)["totalCents"] == 0
        assert state.expires_at == EXPIRES_AT


class TestChangeAndRemove:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(HOLDING, change_item(5),
                     [cart.CartItemRequested(cart_id=CART_ID, item=MUG, quantity=5, mode="set",
                                             reservation_expires_at=LATER + timedelta(seconds=RESERVATION_TTL_S),
                                             expires_at=LATER + timedelta(seconds=CART_TTL_S), seq=2,
                                             request_id="change-1")],
                     id="changing_sets_the_quantity_the_reservation_should_hold"),
        pytest.param(HOLDING, change_item(1), [item_requested(1, item=MUG, at=LATER, seq=2, request_id="change-1")],
                     id="changing_down_is_a_set_too"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1"),
                      item_confirmed(5, seq=2), item_requested(3, item=MUG, at=LATER, seq=3, request_id="change-2"),
                      item_confirmed(3, seq=3)],
                     change_item(5), [], id="a_redelivered_change_does_not_undo_a_later_one"),
        pytest.param(HOLDING, change_item(2, item_id="item-9"), NOT_FOUND, id="change_an_unknown_item_is_not_found"),
        pytest.param(REQUESTED, change_item(3), NOT_FOUND, id="change_an_item_not_yet_held_is_not_found"),
        pytest.param([], change_item(3), NOT_FOUND, id="change_without_a_cart_is_not_found"),
        pytest.param(HOLDING, change_item(0), INVALID, id="change_to_zero_is_invalid"),
        pytest.param(HOLDING, change_item(0, item_id="item-9"), NOT_FOUND, id="change_checks_the_item_first"),
        pytest.param(CHECKED_OUT, change_item(3), not_active(CHECKOUT), id="change_during_checkout_is_refused"),
        pytest.param(COMPLETED_CART, change_item(3), not_active(COMPLETED), id="change_an_ended_cart_is_refused"),
        pytest.param(HOLDING, remove_item(), [item_removed(2, reason="removed")],
                     id="removing_gives_back_what_the_item_holds"),
        pytest.param(HOLDING, remove_item(item_id="item-9"), NOT_FOUND, id="remove_an_unknown_item_is_not_found"),
        pytest.param(REQUESTED, remove_item(), NOT_FOUND, id="remove_an_item_not_yet_held_is_not_found"),
        pytest.param([*HOLDING, item_removed(2)], remove_item(command_id="remove-2"), NOT_FOUND,
                     id="remove_twice_is_not_found"),
        pytest.param([*HOLDING, item_removed(2), item_requested(1, item=cart_item(0), seq=3, request_id="add-2"),
                      item_confirmed(1, seq=3)],
                     remove_item(), [], id="a_redelivered_remove_leaves_the_re_added_item"),
        pytest.param(CHECKED_OUT, remove_item(), not_active(CHECKOUT), id="remove_during_checkout_is_refused"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    def test_a_removed_item_leaves_and_the_cart_lives_on(self):
        state = fold(cart, [*HOLDING, item_removed(2)])
        assert (state.items, state.expires_at) == ({}, LATER + timedelta(seconds=CART_TTL_S))


class TestReservationNews:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(REQUESTED, confirm_reservation(2), [item_confirmed(2)], id="a_reservation_confirms_the_item"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1")],
                     confirm_reservation(5, seq=2), [item_confirmed(5, seq=2)],
                     id="the_item_takes_what_the_reservation_now_holds"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1"),
                      item_confirmed(5, seq=2)],
                     confirm_reservation(2, seq=1), [], id="a_late_confirmation_of_an_older_request_is_ignored"),
        pytest.param(HOLDING, confirm_reservation(2, seq=1), [], id="a_redelivered_confirmation_is_ignored"),
        pytest.param([*HOLDING, item_removed(2), item_requested(1, item=cart_item(0), seq=3, request_id="add-2")],
                     confirm_reservation(2, seq=1), [], id="a_confirmation_from_before_a_removal_is_ignored"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1"),
                      item_requested(6, item=MUG, at=LATER, seq=3, request_id="add-2")],
                     confirm_reservation(5, seq=2), [item_confirmed(5, seq=2)],
                     id="a_confirmation_while_a_newer_request_waits_still_counts"),
        pytest.param(REQUESTED, confirm_reservation(2, seq=0), [item_confirmed(2, seq=0)],
                     id="an_unsequenced_confirmation_applies_as_before"),
        pytest.param(CHECKED_OUT, confirm_reservation(5), [], id="confirmation_after_checkout_is_ignored"),
        pytest.param(EXPIRED_CART, confirm_reservation(2), [], id="confirmation_for_an_ended_cart_is_ignored"),
        pytest.param([], confirm_reservation(2), Rejected("cart_changed", 409, {"status": ACTIVE}),
                     id="confirmation_without_a_cart_answers_that_the_cart_changed"),
        pytest.param(HOLDING, confirm_reservation(2, reservation_id="reservation-9"),
                     Rejected("cart_changed", 409, {"status": ACTIVE}),
                     id="confirmation_of_a_reservation_the_cart_no_longer_has_answers_that_the_cart_changed"),
        pytest.param(REQUESTED, refuse_reservation(), [item_refused()], id="a_refusal_is_recorded"),
        pytest.param([*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1")],
                     refuse_reservation(seq=2), [item_refused(seq=2)], id="a_refused_change_is_recorded"),
        pytest.param([*REQUESTED, item_refused()], refuse_reservation(), [], id="a_redelivered_refusal_is_ignored"),
        pytest.param(HOLDING, refuse_reservation(reservation_id="reservation-9"), [],
                     id="refusal_of_an_unknown_reservation_is_ignored"),
        pytest.param(HOLDING, lapse_reservation(),
                     [item_removed(2, reason="reservation_expired", expires_at=None)],
                     id="a_lapsed_reservation_removes_the_item"),
        pytest.param(CHECKED_OUT, lapse_reservation(), [], id="a_lapse_after_checkout_is_ignored"),
        pytest.param(HOLDING, lapse_reservation(reservation_id="reservation-9"), [],
                     id="a_lapse_of_an_unknown_reservation_is_ignored"),
        pytest.param([*HOLDING, item_requested(3, item=MUG, at=LATER, seq=2, request_id="add-2")],
                     lapse_reservation(seq=1), [],
                     id="a_lapse_while_a_newer_request_waits_keeps_the_item_inventory_will_hold_it_again"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    def test_a_confirmed_item_shows_with_its_quantity(self):
        state = fold(cart, HOLDING)
        assert state.items == {"product-1": MUG}
        assert [(i["productId"], i["quantity"]) for i in cart.view(state)["items"]] == [("product-1", 2)]

    def test_a_never_confirmed_item_disappears_when_refused(self):
        assert fold(cart, [*REQUESTED, item_refused()]).items == {}

    def test_a_confirmed_item_keeps_its_quantity_when_a_change_is_refused(self):
        state = fold(cart, [*HOLDING, item_requested(5, item=MUG, at=LATER, seq=2), item_refused(seq=2)])
        assert state.items == {"product-1": MUG}

    def test_a_new_item_refused_while_a_newer_request_waits_stays_for_its_answer(self):
        state = fold(cart, [*REQUESTED, item_requested(3, seq=2, request_id="add-2"), item_refused(seq=1)])
        assert state.items == {"product-1": cart_item(0)}
        assert cart.view(state)["items"] == []

    def test_a_lapsed_item_leaves_without_moving_the_cart_s_expiry(self):
        state = fold(cart, [*HOLDING, item_removed(2, reason="reservation_expired", expires_at=None)])
        assert (state.items, state.expires_at) == ({}, EXPIRES_AT)


class TestCheckout:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(HOLDING, checkout(), [checked_out((MUG,))], id="checkout_hands_the_held_items_to_an_order"),
        pytest.param(HOLDING, checkout(order_id="order-7", payment_id="payment-7", allocation_ttl_s=60, fee_bps=0),
                     [checked_out((MUG,), order_id="order-7", payment_id="payment-7", allocation_ttl_s=60,
                                  fee_bps=0)],
                     id="checkout_carries_the_order_payment_ttl_and_fee"),
        pytest.param([*HOLDING, item_requested(1, item=TEA_ITEM)], checkout(), [checked_out((MUG,))],
                     id="items_not_yet_held_stay_behind"),
        pytest.param([], checkout(), Rejected("empty_cart", 409), id="no_cart_is_empty"),
        pytest.param(REQUESTED, checkout(), Rejected("empty_cart", 409), id="a_cart_with_nothing_held_is_empty"),
        pytest.param([*HOLDING, item_removed(2)], checkout(), Rejected("empty_cart", 409),
                     id="an_emptied_cart_is_empty"),
        pytest.param(COMPLETED_CART, checkout(order_id="order-2", command_id="checkout-2"), Rejected("empty_cart", 409),
                     id="an_ended_cart_is_empty"),
        pytest.param(CHECKED_OUT, checkout(order_id="order-2"),
                     Rejected("invalid_transition", 409, {"orderId": "order-1"}),
                     id="a_cart_is_checked_out_once"),
        pytest.param(CHECKED_OUT, checkout(), [], id="a_redelivered_checkout_decides_nothing"),
        pytest.param([*COMPLETED_CART, *NEXT_CART], checkout(), [],
                     id="a_redelivered_checkout_does_not_put_the_next_cart_into_its_paid_order"),
        pytest.param([*ABANDONED_CART, *NEXT_CART], checkout(), [],
                     id="a_redelivered_checkout_does_not_put_the_next_cart_into_its_cancelled_order"),
        pytest.param([*COMPLETED_CART, *a_new_cart("add-2"), item_confirmed(2), cart_abandoned(EXPIRED),
                      *a_new_cart("add-3"), item_confirmed(2)], checkout(), [],
                     id="the_orders_of_checkouts_are_remembered_across_every_later_cart"),
        pytest.param([*COMPLETED_CART, *NEXT_CART], checkout(order_id="order-2", command_id="checkout-2"),
                     [checked_out((cart_item(2, cart_id=NEXT_CART_ID),), order_id="order-2", cart_id=NEXT_CART_ID)],
                     id="the_next_cart_is_checked_out_into_a_new_order"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    REPRICED = cart.CartItemsRepriced(cart_id=CART_ID, changes=(cart.Repriced(PRODUCT_ID, 1299, 1499, "USD"),))

    @pytest.mark.parametrize("given, when, then", [
        pytest.param(HOLDING, checkout(listings=(listing(1299),)), [checked_out((MUG,))],
                     id="a_price_unchanged_checks_out"),
        pytest.param(HOLDING, checkout(listings=(listing(1499),)), [REPRICED],
                     id="a_changed_price_is_taken_and_the_buyer_asked_again"),
        pytest.param([*HOLDING, REPRICED], checkout(command_id="checkout-2", listings=(listing(1499),)),
                     [checked_out((cart_item(2, price_cents=1499),))], id="at_the_new_price_it_checks_out"),
        pytest.param(HOLDING, checkout(listings=(listing(1299, active=False),)),
                     Rejected("product_unavailable", 409, {"productIds": [PRODUCT_ID]}),
                     id="a_product_no_longer_for_sale_refuses_the_checkout"),
        pytest.param(HOLDING, checkout(listings=(listing(1, product_id="product-9", active=False),)),
                     [checked_out((MUG,))], id="listings_of_products_not_held_do_not_matter"),
    ])
    def test_the_catalog_at_checkout(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    def test_a_repricing_answers_409_with_the_new_prices(self):
        assert self.REPRICED.rejection().code == "price_changed"
        assert self.REPRICED.rejection().details == {
            "items": [{"productId": PRODUCT_ID, "wasCents": 1299, "priceCents": 1499, "currency": "USD"}]}

    def test_a_snapshot_from_before_orders_were_remembered_still_checks_out(self):
        old = from_before(fold(cart, HOLDING), "orders")
        assert cart.decide(old, checkout()) == [checked_out((MUG,))]
        assert cart.evolve(old, checked_out((MUG,))).orders == {"order-1"}

    def test_a_checked_out_cart_waits_for_its_order(self):
        state = fold(cart, CHECKED_OUT)
        assert (state.status, state.order_id) == (CHECKOUT, "order-1")
        assert cart.view(state)["status"] == CHECKOUT


class TestClose:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(CHECKED_OUT, close_cart(COMPLETED), [cart_completed(order_id="order-1", at=LATER)],
                     id="a_paid_order_completes_the_cart"),
        pytest.param(CHECKED_OUT, close_cart(ABANDONED), [cart_abandoned(ABANDONED, (MUG,), at=LATER)],
                     id="a_cancelled_order_abandons_the_cart_with_its_items"),
        pytest.param(CHECKED_OUT, close_cart(COMPLETED, cart_id="cart-9"), [],
                     id="closing_another_cart_is_a_no_op"),
        pytest.param(HOLDING, close_cart(COMPLETED), [], id="closing_an_active_cart_is_a_no_op"),
        pytest.param(COMPLETED_CART, close_cart(COMPLETED), [], id="completing_again_is_a_no_op"),
        pytest.param(ABANDONED_CART, close_cart(COMPLETED), [], id="a_closed_cart_stays_closed"),
        pytest.param([], close_cart(ABANDONED), [], id="closing_no_cart_is_a_no_op"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    @pytest.mark.parametrize("given, status", [
        pytest.param(COMPLETED_CART, COMPLETED, id="completed"),
        pytest.param(ABANDONED_CART, ABANDONED, id="abandoned"),
    ])
    def test_a_closed_cart_ends_with_its_status(self, given, status):
        state = fold(cart, given)
        assert (state.status, cart.deadline(state)) == (status, None)


class TestExpire:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(HOLDING, Expire(command_id="tick-1", now=EXPIRES_AT - timedelta(seconds=1)), [],
                     id="before_its_expiry_the_cart_lives"),
        pytest.param(HOLDING, Expire(command_id="tick-1", now=EXPIRES_AT),
                     [cart_abandoned(EXPIRED, (MUG,), at=EXPIRES_AT)], id="at_its_expiry_the_cart_expires"),
        pytest.param(HOLDING, Expire(command_id="tick-1", now=EXPIRES_AT + timedelta(hours=1)),
                     [cart_abandoned(EXPIRED, (MUG,), at=EXPIRES_AT + timedelta(hours=1))],
                     id="after_its_expiry_the_cart_expires"),
        pytest.param(REQUESTED, Expire(command_id="tick-1", now=EXPIRES_AT),
                     [cart_abandoned(EXPIRED, (), at=EXPIRES_AT)],
                     id="an_expired_cart_gives_back_only_what_it_holds"),
        pytest.param([*HOLDING, item_requested(3, item=MUG, at=LATER, seq=2, request_id="add-2")],
                     Expire(command_id="tick-1", now=EXPIRES_AT),
                     [], id="each_change_pushes_the_expiry_back"),
        pytest.param(CHECKED_OUT, Expire(command_id="tick-1", now=EXPIRES_AT + timedelta(seconds=1)), [],
                     id="a_cart_being_checked_out_does_not_expire_when_idle"),
        pytest.param(CHECKED_OUT, Expire(command_id="tick-1", now=GIVES_UP_AT - timedelta(seconds=1)), [],
                     id="a_checkout_waits_for_its_order_until_its_deadline"),
        pytest.param(CHECKED_OUT, Expire(command_id="tick-1", now=GIVES_UP_AT),
                     [cart_abandoned(ABANDONED, (), at=GIVES_UP_AT, order_id="order-1")],
                     id="a_checkout_never_answered_gives_up_and_releases_nothing_itself"),
        pytest.param([*HOLDING, checked_out(at=None)], Expire(command_id="tick-1", now=GIVES_UP_AT), [],
                     id="a_checkout_recorded_before_deadlines_keeps_waiting"),
        pytest.param(EXPIRED_CART, Expire(command_id="tick-2", now=EXPIRES_AT + timedelta(hours=1)), [],
                     id="an_expired_cart_expires_once"),
        pytest.param([], Expire(command_id="tick-1", now=EXPIRES_AT), [], id="no_cart_never_expires"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(cart, given, when), then)

    @pytest.mark.parametrize("given, expected", [
        pytest.param([], None, id="no_cart_has_no_deadline"),
        pytest.param(REQUESTED, EXPIRES_AT, id="a_new_cart_expires_ttl_after_its_request"),
        pytest.param(HOLDING, EXPIRES_AT, id="a_confirmation_does_not_move_it"),
        pytest.param([*HOLDING, item_requested(3, item=MUG, at=LATER, seq=2, request_id="add-2")],
                     LATER + timedelta(seconds=CART_TTL_S),
                     id="a_later_request_moves_it"),
        pytest.param([*HOLDING, item_removed(2)], LATER + timedelta(seconds=CART_TTL_S), id="a_removal_moves_it"),
        pytest.param(CHECKED_OUT, GIVES_UP_AT, id="a_checkout_waits_for_its_order_until_a_deadline"),
        pytest.param(EXPIRED_CART, None, id="an_expired_cart_has_no_deadline"),
        pytest.param(COMPLETED_CART, None, id="a_completed_cart_has_no_deadline"),
    ])
    def test_deadline(self, given, expected):
        assert cart.deadline(fold(cart, given)) == expected

    def test_an_expired_cart_ends_expired(self):
        assert fold(cart, EXPIRED_CART).status == EXPIRED


class TestReact:
    def test_a_checkout_given_up_tells_its_order_to_cancel(self):
        gave_up = cart_abandoned(ABANDONED, (), at=GIVES_UP_AT, order_id="order-1")
        assert sagas.after_cart(gave_up, fold(cart, [*CHECKED_OUT, gave_up]), STAMP) == [
            ("order", "order-1", order.CancelOrder(command_id=STAMP.id("cancel-order"), now=STAMP.now,
                                                   order_id="order-1", reason="checkout_timed_out"))]

    def test_a_requested_item_asks_inventory_to_reserve(self):
        assert sagas.after_cart(item_requested(2), fold(cart, REQUESTED), STAMP) == [
            ("inventory", "product-1", inventory.ReserveStock(
                command_id=derived_id("event-1", "reserve"), now=LATER, product_id="product-1",
                reservation_id=MUG.reservation_id, cart_id=CART_ID, buyer_id=BUYER_ID, quantity=2, mode="set",
                expires_at=NOW + timedelta(seconds=RESERVATION_TTL_S), seq=1))]

    def test_a_changed_item_asks_inventory_to_set_the_reservation(self):
        event = item_requested(5, item=MUG, at=LATER, seq=2, request_id="change-1")
        assert sagas.after_cart(event, fold(cart, [*HOLDING, event]), STAMP) == [
            ("inventory", "product-1", inventory.ReserveStock(
                command_id=derived_id("event-1", "reserve"), now=LATER, product_id="product-1",
                reservation_id=MUG.reservation_id, cart_id=CART_ID, buyer_id=BUYER_ID, quantity=5, mode="set",
                expires_at=LATER + timedelta(seconds=RESERVATION_TTL_S), seq=2))]

    def test_a_removed_item_releases_its_reservation(self):
        event = item_removed(2)
        assert sagas.after_cart(event, fold(cart, [*HOLDING, event]), STAMP) == [
            ("inventory", "product-1", inventory.ReleaseReservation(
                command_id=derived_id("event-1", f"release/{MUG.reservation_id}"), now=LATER,
                product_id="product-1", reservation_id=MUG.reservation_id, reason="removed", seq=2))]

    def test_a_lapsed_item_releases_nothing_inventory_already_took_it_back(self):
        event = item_removed(2, reason="reservation_expired", expires_at=None)
        assert sagas.after_cart(event, fold(cart, [*HOLDING, event]), STAMP) == []

    @pytest.mark.parametrize("given, status, reason", [
        pytest.param(CHECKED_OUT, ABANDONED, "abandoned", id="abandoned"),
        pytest.param(HOLDING, EXPIRED, "expired", id="expired"),
    ])
    def test_an_ended_cart_releases_every_item(self, given, status, reason):
        items = (MUG, cart_item(1, **TEA))
        event = cart_abandoned(status, items)
        assert sagas.after_cart(event, fold(cart, [*given, event]), STAMP) == [
            ("inventory", "product-1", inventory.ReleaseReservation(
                command_id=derived_id("event-1", f"release/{MUG.reservation_id}"), now=LATER,
                product_id="product-1", reservation_id=MUG.reservation_id, reason=reason, seq=2)),
            ("inventory", "product-2", inventory.ReleaseReservation(
                command_id=derived_id("event-1", f"release/{TEA_ITEM.reservation_id}"), now=LATER,
                product_id="product-2", reservation_id=TEA_ITEM.reservation_id, reason=reason, seq=2))]

    def test_checkout_places_the_order(self):
        event = checked_out((MUG, cart_item(1, **TEA)))
        assert sagas.after_cart(event, fold(cart, [*HOLDING, event]), STAMP) == [
            ("order", "order-1", order.PlaceOrder(
                command_id=derived_id("event-1", "place-order"), now=LATER, order_id="order-1", buyer_id=BUYER_ID,
                cart_id=CART_ID, payment_id="payment-1", allocation_ttl_s=1800, fee_bps=1000, items=(
                    order.OrderItem(item_id=MUG.item_id, product_id="product-1", sku="SKU-1", seller_id=SELLER_ID,
                                    quantity=2, price_cents=1299, currency="USD",
                                    reservation_id=MUG.reservation_id),
                    order.OrderItem(item_id=TEA_ITEM.item_id, product_id="product-2", sku="SKU-2",
                                    seller_id=OTHER_SELLER_ID, quantity=1, price_cents=450, currency="USD",
                                    reservation_id=TEA_ITEM.reservation_id))))]

    def test_the_order_accepts_what_checkout_places(self):
        event = checked_out((MUG, cart_item(1, **TEA)))
        [(_, _, place)] = sagas.after_cart(event, fold(cart, [*HOLDING, event]), STAMP)
        [placed] = order.decide(order.initial_state(), place)
        assert (placed.total_cents, placed.currency, [s.seller_id for s in placed.shipments]) == (
            2 * 1299 + 450, "USD", [SELLER_ID, OTHER_SELLER_ID])

    @pytest.mark.parametrize("event, given", [
        pytest.param(cart_created(), [cart_created()], id="cart_created"),
        pytest.param(item_confirmed(2), HOLDING, id="item_confirmed"),
        pytest.param(item_refused(), [*REQUESTED, item_refused()], id="item_refused"),
        pytest.param(cart_completed(), COMPLETED_CART, id="cart_completed"),
    ])
    def test_other_events_ask_for_nothing(self, event, given):
        assert sagas.after_cart(event, fold(cart, given), STAMP) == []


class TestState:
    def test_initial_state_has_no_cart_and_no_view(self):
        state = cart.initial_state()
        assert (cart.view(state), cart.deadline(state)) == (None, None)

    def test_view(self):
        state = fold(cart, [*HOLDING, item_requested(1, item=TEA_ITEM, at=LATER),
                            item_confirmed(1, product_id="product-2")])
        assert cart.view(state) == {
            "cartId": CART_ID, "buyerId": BUYER_ID, "status": ACTIVE,
            "items": [{"itemId": MUG.item_id, "productId": "product-1", "sku": "SKU-1", "sellerId": SELLER_ID,
                       "quantity": 2, "priceCents": 1299, "currency": "USD", "reservationId": MUG.reservation_id},
                      {"itemId": TEA_ITEM.item_id, "productId": "product-2", "sku": "SKU-2",
                       "sellerId": OTHER_SELLER_ID, "quantity": 1, "priceCents": 450, "currency": "USD",
                       "reservationId": TEA_ITEM.reservation_id}],
            "totalCents": 3048, "currency": "USD", "expiresAt": "2025-03-01T12:20:00+00:00", "orderId": None,
            "version": 5}

    @pytest.mark.parametrize("given, when", [
        pytest.param([], add_item(2), id="first_add"),
        pytest.param(REQUESTED, confirm_reservation(2), id="confirm"),
        pytest.param(HOLDING, remove_item(), id="remove"),
        pytest.param(HOLDING, checkout(), id="checkout"),
        pytest.param(CHECKED_OUT, close_cart(ABANDONED), id="close"),
        pytest.param(HOLDING, Expire(command_id="tick-1", now=EXPIRES_AT), id="expire"),
    ])
    def test_each_decided_event_moves_the_version_by_one(self, given, when):
        before = fold(cart, given)
        events = cart.decide(before, when)
        assert events
        assert fold(cart, [*given, *events]).version == before.version + len(events)
