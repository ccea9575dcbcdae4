"""Catalog: a seller's products; the SKU never changes, fields are validated, a new product gets stock,
and updates are ordered by their time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from buyit.envelope import from_wire, to_wire
from state import catalog, inventory, sagas
from state.common import SYSTEM, Expire, Stamp, derived_id
from tests.state.given import (AN_ADMIN, A_BUYER, FORBIDDEN, INVALID, LATER, NOT_FOUND, NOW, OTHER_SELLER,
                               PRODUCT, PRODUCT_ID, SELLER_ID, SKU, Rejected, assert_outcome, create_product,
                               decide, fold, from_before, product_created, product_updated, stock_created,
                               update_product)

CREATED = [product_created()]
RENAMED = [*CREATED, product_updated(name="Red mug")]                   # by `update_product()`, at LATER
LATER_STILL = LATER + timedelta(minutes=5)


class TestCreate:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], create_product(), [product_created(created_at=NOW)],
                     id="a_new_product_is_created_with_every_field"),
        pytest.param([], catalog.CreateProduct(command_id="c", now=NOW, product_id=PRODUCT_ID, seller_id=SELLER_ID,
                                               sku=SKU, name="Blue mug", price_cents=1299, currency="USD"),
                     [product_created(description="", category="", status="DRAFT", image_public_ids=())],
                     id="omitted_fields_default_to_an_empty_draft"),
        pytest.param([], create_product(status="ACTIVE"), [product_created(status="ACTIVE")],
                     id="status_active_is_accepted"),
        pytest.param([], create_product(status="INACTIVE"), [product_created(status="INACTIVE")],
                     id="status_inactive_is_accepted"),
        pytest.param([], create_product(price_cents=0), [product_created(price_cents=0)],
                     id="a_free_product_is_allowed"),
        pytest.param([], create_product(image_public_ids=["a", "b"]), [product_created(image_public_ids=("a", "b"))],
                     id="image_ids_are_stored_as_a_tuple"),
        pytest.param(CREATED, create_product(command_id="create-product-2"),
                     Rejected("sku_taken", 409, {"productId": PRODUCT_ID}), id="a_sku_is_unique_per_seller"),
        pytest.param(CREATED, create_product(name=""), Rejected("sku_taken", 409, {"productId": PRODUCT_ID}),
                     id="sku_taken_is_checked_before_the_fields"),
        pytest.param([], create_product(sku=""), INVALID, id="sku_must_not_be_empty"),
        pytest.param([], create_product(sku="   "), INVALID, id="sku_must_not_be_blank"),
        pytest.param([], create_product(name=" \t"), INVALID, id="name_must_not_be_blank"),
        pytest.param([], create_product(price_cents=-1), INVALID, id="price_must_not_be_negative"),
        pytest.param([], create_product(currency="usd"), INVALID, id="currency_must_be_upper_case"),
        pytest.param([], create_product(currency="US"), INVALID, id="currency_must_have_three_letters"),
        pytest.param([], create_product(currency="USDX"), INVALID, id="currency_must_not_have_four_letters"),
        pytest.param([], create_product(currency="USD\n"), INVALID, id="currency_must_not_end_in_a_newline"),
        pytest.param([], create_product(status="active"), INVALID, id="status_is_case_sensitive"),
        pytest.param([], create_product(status="DELETED"), INVALID, id="status_must_be_a_known_status"),
        pytest.param([], Expire(command_id="tick-1", now=NOW), INVALID, id="other_commands_are_invalid"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(catalog, given, when), then)


class TestUpdate:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(CREATED, update_product(name="Red mug"), [product_updated(name="Red mug", updated_at=LATER)],
                     id="a_partial_update_keeps_every_other_field"),
        pytest.param(CREATED, update_product(name="Cup", description="", category="cups", price_cents=500,
                                             currency="EUR", status="ACTIVE", image_public_ids=["x"]),
                     [product_updated(name="Cup", description="", category="cups", price_cents=500, currency="EUR",
                                      status="ACTIVE", image_public_ids=("x",))],
                     id="every_changeable_field_can_change"),
        pytest.param(CREATED, update_product(), [product_updated()], id="an_empty_update_still_records_a_change"),
        pytest.param(CREATED, update_product(sku=SKU, price_cents=1), [product_updated(price_cents=1)],
                     id="sending_the_same_sku_is_allowed"),
        pytest.param(CREATED, update_product(actor=AN_ADMIN, status="INACTIVE"), [product_updated(status="INACTIVE")],
                     id="an_admin_may_change_any_product"),
        pytest.param([], update_product(name="Red mug"), NOT_FOUND, id="an_unknown_product_is_not_found"),
        pytest.param([], update_product(actor=OTHER_SELLER, sku="SKU-2"), NOT_FOUND,
                     id="not_found_is_checked_first"),
        pytest.param(CREATED, update_product(actor=OTHER_SELLER, name="Mine"), FORBIDDEN,
                     id="another_seller_may_not_change_it"),
        pytest.param(CREATED, update_product(actor=A_BUYER, name="Mine"), FORBIDDEN,
                     id="a_buyer_may_not_change_it"),
        pytest.param(CREATED, update_product(actor=OTHER_SELLER, sku="SKU-2"), FORBIDDEN,
                     id="forbidden_is_checked_before_the_sku"),
        pytest.param(CREATED, update_product(sku="SKU-2"), INVALID, id="the_sku_is_immutable"),
        pytest.param(CREATED, update_product(sku=""), INVALID, id="the_sku_cannot_be_cleared"),
        pytest.param(CREATED, update_product(status="ARCHIVED"), INVALID, id="status_must_be_a_known_status"),
        pytest.param(CREATED, update_product(status="draft"), INVALID, id="status_is_case_sensitive"),
        pytest.param(CREATED, update_product(name="  "), INVALID, id="name_must_not_be_blank"),
        pytest.param(CREATED, update_product(price_cents=-5), INVALID, id="price_must_not_be_negative"),
        pytest.param(CREATED, update_product(currency="EURO"), INVALID, id="currency_must_be_an_iso_code"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(catalog, given, when), then)


class TestLateUpdate:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param(RENAMED, update_product(name="Red mug"), [], id="a_redelivered_update_changes_nothing"),
        pytest.param(RENAMED, update_product(name="Red mug", now=LATER_STILL), [],
                     id="an_api_retry_of_the_change_in_force_with_a_fresh_now_changes_nothing"),
        pytest.param([*RENAMED, product_updated(name="Red mug", price_cents=1, request_id="update-product-2")],
                     update_product(name="Red mug"), [], id="an_older_change_at_the_same_instant_is_known_too"),
        pytest.param([*RENAMED, product_updated(name="Cup", request_id="update-product-2", updated_at=LATER_STILL)],
                     update_product(name="Red mug"), Rejected("superseded", 409, {"currentVersion": 3}),
                     id="an_update_older_than_the_change_in_force_is_superseded"),
        pytest.param([*RENAMED, product_updated(name="Cup", request_id="update-product-2", updated_at=LATER_STILL)],
                     update_product(command_id="update-product-3", price_cents=1),
                     Rejected("superseded", 409, {"currentVersion": 3}),
                     id="a_fresh_update_stamped_before_the_change_in_force_is_superseded_too"),
        pytest.param(RENAMED, update_product(command_id="update-product-2", price_cents=1),
                     [product_updated(name="Red mug", price_cents=1, request_id="update-product-2")],
                     id="another_update_at_the_same_instant_applies"),
        pytest.param(RENAMED, update_product(name="Red mug", actor=OTHER_SELLER), FORBIDDEN,
                     id="a_redelivery_is_recognised_only_for_who_may_change_the_product"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(catalog, given, when), then)


class TestState:
    def test_initial_state_has_no_product_and_no_view(self):
        assert catalog.view(catalog.initial_state()) is None

    def test_a_created_product_is_held_at_version_one(self):
        assert fold(catalog, CREATED) == catalog.Product(**PRODUCT, created_at=NOW, updated_at=NOW, version=1)

    def test_an_update_keeps_seller_sku_and_creation_time(self):
        state = fold(catalog, [*CREATED, product_updated(name="Red mug", status="ACTIVE", price_cents=999)])
        assert state == catalog.Product(**{**PRODUCT, "name": "Red mug", "status": "ACTIVE", "price_cents": 999},
                                        created_at=NOW, updated_at=LATER, version=2, update_ids=("update-product-1",))

    def test_the_change_in_force_is_remembered_by_its_time_and_ids(self):
        state = fold(catalog, [*RENAMED, product_updated(price_cents=1, request_id="update-product-2")])
        assert (state.updated_at, state.update_ids) == (LATER, ("update-product-1", "update-product-2"))
        state = catalog.evolve(state, product_updated(request_id="update-product-3", updated_at=LATER_STILL))
        assert (state.updated_at, state.update_ids) == (LATER_STILL, ("update-product-3",))

    def test_an_update_recorded_before_updates_carried_their_id_still_decodes_and_applies(self):
        wire = {k: v for k, v in to_wire(product_updated(name="Red mug")).items() if k != "requestId"}
        old = from_wire("PRODUCT_UPDATED", wire)
        assert old == product_updated(name="Red mug", request_id="")
        state = fold(catalog, [*CREATED, old])
        assert (state.name, state.updated_at, state.update_ids) == ("Red mug", LATER, ())

    def test_a_snapshot_from_before_update_ids_were_remembered_still_loads(self):
        old = from_before(fold(catalog, CREATED), "update_ids")
        assert catalog.decide(old, update_product(name="Red mug")) == [product_updated(name="Red mug")]
        assert catalog.evolve(old, product_updated()).update_ids == ("update-product-1",)

    def test_view(self):
        state = fold(catalog, [*CREATED, product_updated(status="ACTIVE")])
        assert catalog.view(state) == {
            "productId": PRODUCT_ID, "sellerId": SELLER_ID, "sku": SKU, "name": "Blue mug",
            "description": "Holds tea", "category": "kitchen", "priceCents": 1299, "currency": "USD",
            "status": "ACTIVE", "imagePublicIds": ["img-1"], "createdAt": "2025-03-01T12:00:00+00:00",
            "updatedAt": "2025-03-01T12:05:00+00:00", "version": 2}

    @pytest.mark.parametrize("given, when", [
        pytest.param([], create_product(), id="create"),
        pytest.param(CREATED, update_product(name="Red mug"), id="update"),
    ])
    def test_each_decided_event_moves_the_version_by_one(self, given, when):
        before = fold(catalog, given)
        events = catalog.decide(before, when)
        assert fold(catalog, [*given, *events]).version == before.version + len(events) == len(given) + 1


class TestReact:
    STAMP = Stamp(now=LATER, cause_id="event-1")

    def test_a_new_product_asks_inventory_for_its_stock_record(self):
        assert sagas.after_catalog(product_created(), fold(catalog, CREATED), self.STAMP) == [
            ("inventory", PRODUCT_ID, inventory.CreateStock(
                command_id=derived_id("event-1", "create-stock"), now=LATER, actor=SYSTEM,
                product_id=PRODUCT_ID, seller_id=SELLER_ID, sku=SKU))]

    def test_the_follow_up_id_is_derived_from_its_cause(self):
        again = sagas.after_catalog(product_created(), fold(catalog, CREATED), self.STAMP)
        other = sagas.after_catalog(product_created(), fold(catalog, CREATED), Stamp(now=LATER, cause_id="event-2"))
        assert again == sagas.after_catalog(product_created(), fold(catalog, CREATED), self.STAMP)
        assert again[0][2].command_id != other[0][2].command_id

    def test_an_update_asks_for_nothing(self):
        state = fold(catalog, [*CREATED, product_updated()])
        assert sagas.after_catalog(product_updated(), state, self.STAMP) == []

    def test_inventory_creates_the_stock_the_catalog_asks_for(self):
        [(_, _, command)] = sagas.after_catalog(product_created(), fold(catalog, CREATED), self.STAMP)
        assert inventory.decide(inventory.initial_state(), command) == [stock_created(low_stock_threshold=5)]
