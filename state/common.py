"""Building blocks every aggregate shares: commands, events, rejections, actors."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, ClassVar

ADMIN, SELLER, BUYER = "ADMIN", "SELLER", "BUYER"
ROLES = (ADMIN, SELLER, BUYER)

# Every message type by its wire name, so records decode back into the same class.
REGISTRY: dict[str, type] = {}


def message(cls):
    """Register a frozen dataclass as a command or event under its wire type name."""
    cls = dataclass(frozen=True, kw_only=True)(cls)
    REGISTRY[getattr(cls, "TYPE", None) or cls.__name__] = cls
    return cls


def replace(state, /, **changes):
    """`dataclasses.replace` for the frozen states and messages here, about 4× faster: it copies the
    instance's fields instead of calling `__init__`, which reads every field of the class one by one
    (two fifths of the projection's fold, measured). So a dataclass here has no `__post_init__`, no
    `InitVar` and no `init=False` field, and no `__slots__` (tests/state/test_replace.py holds them to it)."""
    known = type(state).__dataclass_fields__
    if not changes.keys() <= known.keys():
        raise TypeError(f"{type(state).__name__} has no field {sorted(changes.keys() - known.keys())}")
    new = object.__new__(type(state))
    fields = new.__dict__
    fields.update(state.__dict__)
    fields.update(changes)
    return new


def type_name(obj) -> str:
    """The wire type name of a command or event instance or class."""
    cls = obj if isinstance(obj, type) else type(obj)
    return getattr(cls, "TYPE", None) or cls.__name__


@dataclass(frozen=True)
class Actor:
    """Who asked: the caller's user id and role, from the verified token."""

    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


SYSTEM = Actor(user_id="system", role=ADMIN)


@dataclass(frozen=True, kw_only=True)
class Command:
    """A request to an aggregate. Carries its own id and `now` so deciding is deterministic."""

    command_id: str
    now: datetime
    actor: Actor = SYSTEM


@dataclass(frozen=True, kw_only=True)
class Event:
    """A fact. `settles` marks events that answer the request that started the chain."""

    settles: ClassVar[bool] = True


@message
class Expire(Command):
    """Sent by the timer when the earliest deadline held in an aggregate has passed."""


@message
class Retire(Command):
    """Take a finished aggregate out of the live state. Sent by its timer (`Aggregate.finished` plus the
    retention grace), or, `by_owner`, by the aggregate that owns it (an order retires its payment, a payment
    its ledger), which retires it if it is `settled`."""

    by_owner: bool = False


@message
class Retired(Event):
    """The aggregate left the live state: from here on only its version is held (a `Tombstone`)."""

    settles: ClassVar[bool] = False
    retired_at: datetime


@dataclass(frozen=True)
class Tombstone:
    """What is held of a retired aggregate: its version (so a replayed copy of one of its events is known for
    what it is) and when it retired. It takes no more commands."""

    version: int
    retired_at: datetime


@dataclass(frozen=True)
class Rejection:
    """A business refusal; `code` is a stable result code, `status` its HTTP status."""

    code: str
    message: str
    status: int = 409
    details: dict = field(default_factory=dict)


def not_found(what: str) -> Rejection:
    return Rejection("not_found", f"{what} not found", 404)


def forbidden(message: str = "not allowed for this caller") -> Rejection:
    return Rejection("forbidden", message, 403)


def invalid(message: str, **details) -> Rejection:
    return Rejection("invalid", message, 422, details)


def may_manage(actor: Actor, owner_id: str) -> bool:
    """Sellers manage what they own; admins manage everything."""
    return actor.is_admin or actor.user_id == owner_id


class InvariantBroken(AssertionError):
    """A rule that must always hold did not: a bug, never a client's fault."""


def check(condition: bool, what: str) -> None:
    """Assert an invariant where state changes; a failure stops that decision loudly."""
    if not condition:
        raise InvariantBroken(what)


@dataclass(frozen=True)
class Aggregate:
    """One aggregate's decider: what the generic dataflow operator needs to run it.

    `react` turns an event into commands for other aggregates (the saga steps),
    as (aggregate name, key, command); `deadline` is the earliest expiry the state
    holds; `view` is the representation a settled command answers with; `finished`
    and `settled` say when it may leave the live state (see `Retire`).
    """

    name: str
    initial_state: Callable[[], Any]
    decide: Callable[[Any, Command], "list[Event] | Rejection"]
    evolve: Callable[[Any, Event], Any]
    view: Callable[[Any], dict | None]
    react: Callable[[Event, Any, "Stamp"], list] = lambda event, state, stamp: []
    deadline: Callable[[Any], datetime | None] = lambda state: None
    # When nothing but duplicates can change it any more: it retires a grace period later. None: not yet,
    # or never on its own account.
    finished: Callable[[Any], datetime | None] = lambda state: None
    # Whether it may retire when the aggregate that owns it retires (nothing of its own still under way).
    settled: Callable[[Any], bool] = lambda state: False


def per_claim(label: str, refund_key: str) -> str:
    """The label of one refund claim of a payment: `label/key`, or `label` alone for the claim on all of it
    (what ids were derived from before claims had keys)."""
    return f"{label}/{refund_key}" if refund_key else label


def derived_id(parent: str, label: str) -> str:
    """A deterministic id derived from another id, so a replayed decision repeats its ids:
    `uuid5(UUID(parent) or NAMESPACE_URL, f"{parent}/{label}")`, computed without building UUID
    objects (a decision derives half a dozen ids, and that was a tenth of its time)."""
    digest = bytearray(hashlib.sha1(_namespace(parent) + f"{parent}/{label}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=65_536)
def _namespace(parent: str) -> bytes:
    if len(parent) == 36:  # the usual hyphenated form: read as uuid.UUID would, five times faster
        try:
            raw = bytes.fromhex(parent.replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == 16:
            return raw
    try:
        return uuid.UUID(parent).bytes
    except ValueError:
        return uuid.NAMESPACE_URL.bytes


@dataclass(frozen=True)
class Stamp:
    """What a saga step needs to issue a command: the clock and ids derived from its cause."""

    now: datetime
    cause_id: str

    def id(self, label: str) -> str:
        return derived_id(self.cause_id, label)
