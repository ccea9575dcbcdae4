"""Users: registration of the caller, once, with the role from its token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from state.common import ROLES, SELLER, Aggregate, Command, Event, Rejection, invalid, message, replace


@message
class RegisterUser(Command):
    user_id: str
    account_type: str
    email: str | None = None


@message
class UserCreated(Event):
    user_id: str
    account_type: str
    email: str | None
    created_at: datetime


@dataclass(frozen=True)
class User:
    user_id: str | None = None
    account_type: str | None = None
    email: str | None = None
    created_at: datetime | None = None
    version: int = 0


def initial_state() -> User:
    return User()


def decide(state: User, command: Command) -> list[Event] | Rejection:
    match command:
        case RegisterUser() if command.account_type not in ROLES:
            return invalid(f"account_type must be one of {', '.join(ROLES)}")
        case RegisterUser() if state.user_id is not None:
            return []  # registering again is a no-op: the first registration stands
        case RegisterUser():
            return [UserCreated(user_id=command.user_id, account_type=command.account_type,
                                email=command.email, created_at=command.now)]
    return invalid(f"users do not handle {type(command).__name__}")


def evolve(state: User, event: Event) -> User:
    match event:
        case UserCreated():
            return replace(state, user_id=event.user_id, account_type=event.account_type,
                           email=event.email, created_at=event.created_at, version=state.version + 1)
    return state


def view(state: User) -> dict | None:
    if state.user_id is None:
        return None
    return {"userId": state.user_id, "accountType": state.account_type, "email": state.email,
            "createdAt": state.created_at.isoformat() if state.created_at else None,
            "payableAccountId": payable_account(state.user_id) if state.account_type == SELLER else None}


PAYABLE_PREFIX = "SELLER_PAYABLE_"


def payable_account(seller_id: str) -> str:
    """The ledger account a seller's share of each sale is credited to."""
    return f"{PAYABLE_PREFIX}{seller_id}"


def payable_owner(account_id: str) -> str | None:
    """The seller whose payable account this is, or None for any other account."""
    return account_id.removeprefix(PAYABLE_PREFIX) if account_id.startswith(PAYABLE_PREFIX) else None


AGGREGATE = Aggregate("user", initial_state, decide, evolve, view)
