"""Users: a caller registers once, with the role from its token."""

from __future__ import annotations

import pytest

from state import user
from state.common import Expire
from tests.state.given import INVALID, LATER, NOW, assert_outcome, decide, fold, register_user, user_created


class TestRegister:
    @pytest.mark.parametrize("given, when, then", [
        pytest.param([], register_user("ann", "BUYER", "ann@example.com"),
                     [user_created("ann", "BUYER", "ann@example.com", created_at=NOW)],
                     id="a_new_user_is_created_with_the_time_of_the_command"),
        pytest.param([], register_user("sam", "SELLER", None), [user_created("sam", "SELLER", None)],
                     id="email_is_optional"),
        pytest.param([], register_user("root", "ADMIN"), [user_created("root", "ADMIN")],
                     id="admins_register_too"),
        pytest.param([user_created("ann")], register_user("ann", now=LATER, command_id="register-2"), [],
                     id="registering_again_is_a_no_op"),
        pytest.param([user_created("ann", "BUYER", "ann@example.com")],
                     register_user("ann", "SELLER", "other@example.com", command_id="register-2"), [],
                     id="the_first_registration_stands"),
        pytest.param([], register_user("ann", "SHOPPER"), INVALID, id="account_type_must_be_a_role"),
        pytest.param([], register_user("ann", "buyer"), INVALID, id="account_type_is_case_sensitive"),
        pytest.param([user_created("ann")], register_user("ann", "SHOPPER"), INVALID,
                     id="account_type_is_checked_before_idempotency"),
        pytest.param([], Expire(command_id="tick-1", now=NOW), INVALID, id="other_commands_are_invalid"),
    ])
    def test_decide(self, given, when, then):
        assert_outcome(decide(user, given, when), then)


class TestState:
    def test_initial_state_has_no_user_and_no_view(self):
        assert user.view(user.initial_state()) is None

    def test_created_user_is_held_at_version_one(self):
        state = fold(user, [user_created("ann", "BUYER", "ann@example.com")])
        assert state == user.User(user_id="ann", account_type="BUYER", email="ann@example.com", created_at=NOW,
                                  version=1)

    @pytest.mark.parametrize("account_type, payable", [
        pytest.param("SELLER", "SELLER_PAYABLE_ann", id="a_seller_view_names_its_payable_account"),
        pytest.param("BUYER", None, id="a_buyer_has_no_payable_account"),
        pytest.param("ADMIN", None, id="an_admin_has_no_payable_account"),
    ])
    def test_view(self, account_type, payable):
        state = fold(user, [user_created("ann", account_type, "ann@example.com")])
        assert user.view(state) == {"userId": "ann", "accountType": account_type, "email": "ann@example.com",
                                    "createdAt": "2025-03-01T12:00:00+00:00", "payableAccountId": payable}

    def test_each_decided_event_moves_the_version_by_one(self):
        events = user.decide(user.initial_state(), register_user("ann"))
        assert fold(user, events).version == len(events) == 1
