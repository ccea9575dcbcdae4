"""Sales and cart figures per minute: which events count for what, and how the counts add up.

Pure, like the deciders: no I/O, no clock. The projection folds each event into its aggregate's
state (`dataflows/project.py`) and hands `facts_of` the state before and after, so a fact can name
what the event alone does not carry (an `OrderConfirmed` names only the order; its items, sellers and
prices are in the order's state). Windows of those facts are built in `dataflows/windows.py`.

What counts, per seller and product (and per seller in all, `product_id == ""`):
- a sale: `OrderConfirmed` counts each item's units and `units × price` cents, and one order per
  product (and per seller); a paid item whose units were gone (`OrderShortfall`) takes its units
  and cents back, in the minute the shortfall was found;
- reservations: made (`StockReserved` for an id not held before; raising a held one is not a new
  reservation), expired (`ReservationExpired`, soft or hard), converted (`ReservationFulfilled`).
The cart funnel, platform-wide: carts started (`CartCreated`), items added (`CartItemConfirmed`),
checkouts (`CartCheckedOut`), paid (`CartCompleted`), abandoned (`CartAbandoned`, expired or
failed). Gross cents add the items' own currency; a seller's products share one in practice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Iterable

MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # windows start on whole minutes
SALES, FUNNEL = "sales", "funnel"
SALES_COUNTS = ("units_sold", "gross_cents", "orders", "reservations_made", "reservations_expired",
                "reservations_converted")
FUNNEL_COUNTS = ("carts_started", "items_added", "checkouts", "paid", "abandoned")
ON_TIME, LATE = "on_time", "late"


@dataclass(frozen=True)
class Fact:
    """Something to count, at the event's own time, for one window key."""

    at: datetime
    scope: str  # SALES or FUNNEL
    counts: tuple[tuple[str, int], ...]
    seller_id: str = ""
    product_id: str = ""  # "" for the seller's totals

    @property
    def key(self) -> str:
        """The window key: one series of minutes per scope, seller and product."""
        return f"{self.scope}/{self.seller_id}/{self.product_id}"


@dataclass(frozen=True)
class WindowFigures:
    """A window's counts so far (`closed` once its minute is settled); `facts` orders versions of it."""

    scope: str
    seller_id: str
    product_id: str
    window_start: datetime
    part: str  # ON_TIME: folded while its window was open; LATE: arrived after it closed
    counts: dict[str, int]
    facts: int
    closed: bool = False


def event_time(occurred_at: str) -> datetime:
    """An envelope's `occurredAt` as an aware UTC datetime (a naive one is taken as UTC)."""
    at = datetime.fromisoformat(occurred_at)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def window_start(window_id: int) -> datetime:
    """The start of a one-minute window by its id (minutes since the epoch)."""
    return EPOCH + MINUTE * window_id


def window_id_of(at: datetime) -> int:
    """The id of the one-minute window `at` falls in."""
    return (at - EPOCH) // MINUTE


def split_key(key: str) -> tuple[str, str, str]:
    scope, seller_id, product_id = key.split("/", 2)
    return scope, seller_id, product_id


def empty_counts(scope: str) -> dict[str, int]:
    return dict.fromkeys(SALES_COUNTS if scope == SALES else FUNNEL_COUNTS, 0)


def add(counts: dict[str, int] | None, fact: Fact) -> dict[str, int]:
    """Counts with the fact added (a new dict: window state is snapshotted, never shared)."""
    out = dict(counts) if counts is not None else empty_counts(fact.scope)
    for name, n in fact.counts:
        out[name] = out.get(name, 0) + n
    return out


def merged(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two windows' counts in one."""
    return {name: a.get(name, 0) + b.get(name, 0) for name in {**a, **b}}


def facts_of(aggregate: str, before: Any, after: Any, event: Any, at: datetime) -> list[Fact]:
    """The facts one event adds to the windows, given its aggregate's state before and after it."""
    kind = type(event).__name__
    if aggregate == "order":
        return _order_facts(kind, after, event, at)
    if aggregate == "inventory":
        return _inventory_facts(kind, before, after, event, at)
    if aggregate == "cart":
        name = _FUNNEL_STEPS.get(kind)
        return [Fact(at, FUNNEL, ((name, 1),))] if name else []
    return []


_FUNNEL_STEPS = {"CartCreated": "carts_started", "CartItemConfirmed": "items_added", "CartCheckedOut": "checkouts",
                 "CartCompleted": "paid", "CartAbandoned": "abandoned"}
_RESERVATION_STEPS = {"ReservationExpired": "reservations_expired", "ReservationFulfilled": "reservations_converted"}


def _sales(at: datetime, seller_id: str, product_id: str, **counts: int) -> list[Fact]:
    """The same counts for the product and for its seller's totals."""
    pairs = tuple(counts.items())
    return [Fact(at, SALES, pairs, seller_id, product_id), Fact(at, SALES, pairs, seller_id, "")]


def _order_facts(kind: str, after, event, at: datetime) -> list[Fact]:
    if kind == "OrderConfirmed":
        out: list[Fact] = []
        by_product: dict[tuple[str, str], tuple[int, int]] = {}
        for item in after.items:
            units, cents = by_product.get((item.seller_id, item.product_id), (0, 0))
            by_product[(item.seller_id, item.product_id)] = (units + item.quantity,
                                                             cents + item.quantity * item.price_cents)
        sellers: dict[str, tuple[int, int]] = {}
        for (seller_id, product_id), (units, cents) in by_product.items():
            out.append(Fact(at, SALES, (("units_sold", units), ("gross_cents", cents), ("orders", 1)),
                            seller_id, product_id))
            held = sellers.get(seller_id, (0, 0))
            sellers[seller_id] = (held[0] + units, held[1] + cents)
        # an order counts once for its seller, however many of the seller's products it holds
        out += [Fact(at, SALES, (("units_sold", u), ("gross_cents", c), ("orders", 1)), seller_id, "")
                for seller_id, (u, c) in sellers.items()]
        return out
    if kind == "OrderShortfall":
        return _sales(at, event.seller_id, event.product_id, units_sold=-event.quantity,
                      gross_cents=-event.amount_cents)
    return []


def _inventory_facts(kind: str, before, after, event, at: datetime) -> list[Fact]:
    seller_id, product_id = after.seller_id, after.product_id
    if not product_id:
        return []
    if kind == "StockReserved":
        if event.reservation_id in before.reservations:  # a held reservation raised or lowered
            return []
        return _sales(at, seller_id, product_id, reservations_made=1)
    name = _RESERVATION_STEPS.get(kind)
    return _sales(at, seller_id, product_id, **{name: 1}) if name else []


# --- read side: velocity and stock-out, from per-minute units -------------------------------------

def velocity(minutes: Iterable[tuple[datetime, int]], now: datetime, span: int = 15) -> float:
    """Units sold per minute over the `span` whole minutes before `now`'s minute and the minute so far.

    The minute in progress counts as a full minute only once it is over: `span` finished minutes plus
    the fraction of the current one, so a sale a second ago does not read as a whole minute's pace."""
    current = window_id_of(now)
    elapsed = (now - window_start(current)) / MINUTE
    units = sum(u for start, u in minutes if current - span <= window_id_of(start) <= current)
    return units / (span + elapsed) if units > 0 else 0.0


def stock_out_at(available: int, per_minute: float, now: datetime) -> datetime | None:
    """When `available` units run out at `per_minute`: `now` if none are left, None if nothing sells."""
    if available <= 0:
        return now
    if per_minute <= 0:
        return None
    return now + timedelta(seconds=math.ceil(available / per_minute * 60))
