"""Inventory: one product's units on hand and who holds them.

Units are always in exactly one bucket: available, reserved (soft, a cart's),
or allocated (hard, an order's); `available + reserved + allocated = total`.
A confirmed sale takes its units out of `allocated` and out of `total` and
counts them in `sold`.

Every saga command is idempotent by state, however late a redelivery comes
(the operator's window of recent command ids is short on a hot product): a
reservation that ended leaves a tombstone (`Ended`), cart requests carry a
per-reservation `seq` and only a newer one applies, and a seller's absolute
`SetStock` is ordered by its time.

A tombstone is not kept for good: an order's go when the order retires
(`ForgetReservation`), and a cart's (released, lapsed or refused while no order
held it) go `FORGET_ENDED_AFTER` it ended, at an `Expire`. Otherwise every buyer
who ever let a hot product go would stay in its state, and in every snapshot.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from immutables import Map

from state.common import (Aggregate, Command, Event, Expire, Rejection, check, forbidden, invalid,
                          may_manage, message, not_found, replace)
from state.filed import EMPTY, Filed

DEFAULT_LOW_STOCK_THRESHOLD = 5
# How long a cart's tombstone outlives the reservation: as long as a finished order stays live before it
# retires (`BUYIT_RETAIN_FINISHED_S`' default), the grace the order's own tombstones get. Only a copy of a
# cart request more than that late could be decided afresh.
FORGET_ENDED_AFTER = timedelta(hours=1)


# --- commands ---------------------------------------------------------------------------------

@message
class CreateStock(Command):
    product_id: str
    seller_id: str
    sku: str


@message
class SetStock(Command):
    product_id: str
    total_quantity: int
    expected_version: int | None = None
    low_stock_threshold: int | None = None


@message
class ReserveStock(Command):
    """Hold units for a cart (soft). `mode="add"` adds to what the reservation holds, "set" replaces it.

    `seq` numbers the cart's requests for this reservation: one not newer than the last applied
    is a redelivery and changes nothing. 0 is unsequenced (applied whenever it comes).
    """

    product_id: str
    reservation_id: str
    cart_id: str
    buyer_id: str
    quantity: int
    mode: str = "add"
    expires_at: datetime
    seq: int = 0


@message
class ReleaseReservation(Command):
    """Give a reservation's units back: from its cart (sequenced like `ReserveStock`) or its order."""

    product_id: str
    reservation_id: str
    reason: str = "released"
    seq: int = 0
    order_id: str = ""  # the order releasing it, so a late AllocateStock of that order is known for one


@message
class AllocateStock(Command):
    """Turn a cart's soft reservation into an order's hard allocation (or take fresh units if it lapsed)."""

    product_id: str
    reservation_id: str
    order_id: str
    quantity: int
    expires_at: datetime


@message
class ConfirmSale(Command):
    product_id: str
    reservation_id: str
    order_id: str
    quantity: int


@message
class ForgetReservation(Command):
    """From an order that retired (see `state.common.Retire`): the story of this reservation is over, so its
    `Ended` tombstone goes. A saga step copied from before would be decided afresh, which is why the order
    waits out the retention grace first."""

    product_id: str
    reservation_id: str


# --- events -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Levels:
    """The quantities after an event, for dashboards and views."""

    total: int
    available: int
    reserved: int
    allocated: int
    sold: int


@message
class StockCreated(Event):
    product_id: str
    seller_id: str
    sku: str
    low_stock_threshold: int


@message
class StockUpdated(Event):
    product_id: str
    total_quantity: int
    low_stock_threshold: int
    levels: Levels
    request_id: str = ""  # the SetStock's id and `now`, so a redelivery of it is known by state
    requested_at: datetime | None = None


@message
class LowStockAlert(Event):
    settles = False  # rides along with the change that caused it
    product_id: str
    seller_id: str
    available: int
    threshold: int


@message
class StockReserved(Event):
    settles = False  # the cart that asked finishes the request
    product_id: str
    reservation_id: str
    cart_id: str
    buyer_id: str
    quantity: int
    expires_at: datetime
    available: int
    seq: int = 0


@message
class ReservationRefused(Event):
    """A business failure is data: the reservation asked for more than there is."""

    product_id: str
    reservation_id: str
    cart_id: str
    buyer_id: str
    requested: int
    available: int
    seq: int = 0
    ended_at: datetime | None = None  # the refusal's time (None from older builds: its tombstone is kept)

    def rejection(self) -> Rejection:
        return Rejection("insufficient_stock", f"only {self.available} available", 409,
                         {"available": self.available})


@message
class ReservationReleased(Event):
    settles = False
    product_id: str
    reservation_id: str
    quantity: int
    kind: str
    reason: str
    available: int
    seq: int = 0
    order_id: str = ""
    ended_at: datetime | None = None  # the release's time (None from older builds: its tombstone is kept)


@message
class ReservationForgotten(Event):
    settles = False
    product_id: str
    reservation_id: str


@message
class ReservationExpired(Event):
    settles = False
    product_id: str
    reservation_id: str
    holder_id: str
    buyer_id: str
    quantity: int
    kind: str
    available: int
    seq: int = 0  # the newest cart request the hold answered
    ended_at: datetime | None = None  # the `Expire`'s time (None from older builds: its tombstone is kept)


@message
class StockAllocated(Event):
    settles = False
    product_id: str
    reservation_id: str
    order_id: str
    quantity: int
    expires_at: datetime
    available: int


@message
class AllocationRefused(Event):
    settles = False  # the order decides what the buyer is told
    product_id: str
    reservation_id: str
    order_id: str
    requested: int
    available: int


@message
class ReservationFulfilled(Event):
    settles = False
    product_id: str
    reservation_id: str
    order_id: str
    quantity: int


@message
class SaleShortfall(Event):
    """A paid order whose hold had lapsed and whose units are gone: never hidden, for a human to resolve."""

    settles = False
    product_id: str
    seller_id: str
    order_id: str
    quantity: int
    available: int
    reservation_id: str = ""


# --- state ----------------------------------------------------------------------------------------

SOFT, HARD = "SOFT", "HARD"
SOLD, SHORT, RELEASED, EXPIRED, REFUSED = "SOLD", "SHORT", "RELEASED", "EXPIRED", "REFUSED"


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    holder_id: str  # the cart (soft) or the order (hard)
    quantity: int
    kind: str
    expires_at: datetime
    buyer_id: str = ""
    seq: int = 0  # the newest cart request applied to it

    # A tuple, not a dict of field names: a flash sale's snapshot holds thousands. Fields go by position, and an
    # unchanged drawer keeps its old pickle for good: a new field goes last, with a default.
    def __reduce__(self):
        return (Reservation, (self.reservation_id, self.holder_id, self.quantity, self.kind, self.expires_at,
                              self.buyer_id, self.seq))


@dataclass(frozen=True)
class Ended:
    """A tombstone: what is left of a reservation id once nothing is held under it.

    Enough to know a late command about it for a redelivery: the newest cart request
    applied, and who held it last (the order, once an order claimed it).
    """

    outcome: str  # SOLD, SHORT (paid, no units left), RELEASED, EXPIRED, or REFUSED (never held)
    holder_id: str
    seq: int = 0
    forget_at: int | None = None  # a cart's: the whole minute (epoch seconds) from which it may go; an order's: None

    def __reduce__(self):  # a tuple, as for a Reservation (a new field goes last, with a default)
        return (Ended, (self.outcome, self.holder_id, self.seq, self.forget_at))


@dataclass(frozen=True)
class Stock:
    product_id: str | None = None
    seller_id: str = ""
    sku: str = ""
    total: int = 0
    reserved: int = 0
    allocated: int = 0
    sold: int = 0
    low_stock_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD
    version: int = 0
    # Persistent maps: a change copies O(log n), not the whole map, so a SKU held by many carts stays fast.
    # The two `Filed` maps pickle only what changed since the last snapshot; the two indexes are not pickled
    # at all but rebuilt on load (`__reduce__`). Plain (immutable) defaults, not factories: a recovery
    # snapshot taken before a field existed unpickles without it and falls back on the class attribute.
    reservations: Filed = EMPTY  # reservation id -> Reservation
    expiring: Map = Map()  # whole second -> ids of the reservations expiring in it (a Map of id -> None: a set)
    ended: Filed = EMPTY  # reservation id -> Ended, for every id that is not (or no longer) held
    forgetting: Map = Map()  # whole minute (epoch seconds) -> ids of the cart tombstones that may go from then
    set_at: datetime | None = None  # the `now` of the newest SetStock applied
    set_ids: tuple[str, ...] = ()  # the ids of the SetStocks applied at `set_at` (the one in force among them)

    @property
    def available(self) -> int:
        return self.total - self.reserved - self.allocated

    def levels(self) -> Levels:
        return Levels(self.total, self.available, self.reserved, self.allocated, self.sold)

    def __reduce__(self):
        """Pickled without its indexes: a recovery snapshot holds the entries once (see `_restored`). The names
        `_restored` and `state.filed._unfiled` are part of the snapshot format: a build without them (one from
        before 2026-12-03) cannot load it."""
        kept = {name: value for name, value in vars(self).items() if name not in _INDEXES}
        return (_restored, (kept,))

    def __setstate__(self, state: dict) -> None:
        """A snapshot of a build from before `Filed` (a dict of fields): its maps filed as it loads, and its
        indexes (pyrsistent's then) built again."""
        self.__dict__.update(vars(_restored(state)))


_INDEXES = ("expiring", "forgetting")


def _restored(kept: dict) -> Stock:
    """A pickled `Stock` back, its indexes rebuilt from the entries they index (O(n), on recovery only)."""
    # a field since removed is dropped, and so are indexes an older build pickled: they are built here
    kept = {name: value for name, value in kept.items() if name in _FIELDS and name not in _INDEXES}
    reservations, ended = Filed.of(kept.pop("reservations", EMPTY)), Filed.of(kept.pop("ended", EMPTY))
    return Stock(**kept, reservations=reservations, ended=ended,
                 expiring=_index_of((_second(r.expires_at), r.reservation_id) for r in reservations.values()),
                 forgetting=_index_of((t.forget_at, reservation_id) for reservation_id, t in ended.items()
                                      if getattr(t, "forget_at", None) is not None))


def _index_of(pairs) -> Map:
    """An index (whole second or minute -> ids) built at once from (time, id) pairs: what `_indexed` makes one
    pair at a time."""
    grouped: dict[int, dict[str, None]] = {}
    for at, reservation_id in pairs:
        grouped.setdefault(at, {})[reservation_id] = None
    return Map({at: Map(ids) for at, ids in grouped.items()})


_FIELDS = frozenset(f.name for f in fields(Stock))


def initial_state() -> Stock:
    return Stock()


def _levels_after(state: Stock, **changes) -> Levels:
    return replace(state, **changes).levels()


def _low_stock(state: Stock, after: Levels, threshold: int) -> list[Event]:
    """An alert when availability falls to or below the seller's threshold (crossing only)."""
    if after.available <= threshold < state.available:
        return [LowStockAlert(product_id=state.product_id, seller_id=state.seller_id,
                              available=after.available, threshold=threshold)]
    return []


def decide(state: Stock, command: Command) -> list[Event] | Rejection:
    match command:
        case CreateStock() if state.product_id is not None:
            return []
        case CreateStock():
            return [StockCreated(product_id=command.product_id, seller_id=command.seller_id, sku=command.sku,
                                 low_stock_threshold=DEFAULT_LOW_STOCK_THRESHOLD)]
        case _ if state.product_id is None:
            return not_found("stock")
        case SetStock() if not may_manage(command.actor, state.seller_id):
            return forbidden("only the product's seller or an admin may set its stock")
        case SetStock() if command.command_id in state.set_ids:
            return []  # the setting in force, again (redelivered, or retried by the API with a fresh `now`)
        case SetStock() if command.expected_version is not None and command.expected_version != state.version:
            return Rejection("version_conflict", "stock changed since you read it", 409,
                             {"currentVersion": state.version})
        case SetStock() if command.expected_version is None and _superseded(state, command.now):
            # An absolute total without a version read is ordered by its time: re-applying an older one
            # (a late redelivery) would bring back units sold since.
            return Rejection("superseded", "a newer stock setting was already applied", 409,
                             {"currentVersion": state.version})
        case SetStock() if command.total_quantity < 0:
            return invalid("totalQuantity must not be negative")
        case SetStock() if command.low_stock_threshold is not None and command.low_stock_threshold < 0:
            return invalid("lowStockThreshold must not be negative")
        case SetStock() if command.total_quantity < state.reserved + state.allocated:
            return Rejection("below_committed",
                             "totalQuantity cannot fall below the units reserved and allocated", 409,
                             {"reservedQuantity": state.reserved, "allocatedQuantity": state.allocated})
        case SetStock():
            threshold = (command.low_stock_threshold if command.low_stock_threshold is not None
                         else state.low_stock_threshold)
            after = _levels_after(state, total=command.total_quantity)
            return [StockUpdated(product_id=state.product_id, total_quantity=command.total_quantity,
                                 low_stock_threshold=threshold, levels=after, request_id=command.command_id,
                                 requested_at=command.now),
                    *_low_stock(state, after, threshold)]
        case ReserveStock() | ReleaseReservation() if 0 < command.seq <= last_seq(state, command.reservation_id):
            return []  # the cart already asked for something newer: a redelivered or overtaken request
        case ReserveStock():
            return _reserve(state, command)
        case ReleaseReservation():
            held = state.reservations.get(command.reservation_id)
            if held is None:
                return []  # already released, expired or sold: nothing to give back
            return [ReservationReleased(product_id=state.product_id, reservation_id=held.reservation_id,
                                        quantity=held.quantity, kind=held.kind, reason=command.reason,
                                        available=state.available + held.quantity, seq=command.seq,
                                        order_id=command.order_id, ended_at=command.now)]
        case ForgetReservation() if command.reservation_id in state.ended:
            return [ReservationForgotten(product_id=state.product_id, reservation_id=command.reservation_id)]
        case ForgetReservation():
            return []  # still held (nothing retires while it holds units), or forgotten already
        case AllocateStock() if _claimed_by(state, command.reservation_id, command.order_id, ENDINGS):
            return []  # this order's allocation already came (or was refused) and ended
        case AllocateStock():
            return _allocate(state, command)
        case ConfirmSale() if _claimed_by(state, command.reservation_id, command.order_id, (SOLD, SHORT)):
            return []  # sold already (or found short): selling again would take the units twice
        case ConfirmSale():
            held = state.reservations.get(command.reservation_id)
            if held is not None and held.kind == HARD and held.holder_id == command.order_id:
                return [ReservationFulfilled(product_id=state.product_id, reservation_id=held.reservation_id,
                                             order_id=command.order_id, quantity=held.quantity)]
            if state.available >= command.quantity > 0:  # the hold lapsed just before payment: sell from stock
                return [ReservationFulfilled(product_id=state.product_id, reservation_id=command.reservation_id,
                                             order_id=command.order_id, quantity=command.quantity)]
            return [SaleShortfall(product_id=state.product_id, seller_id=state.seller_id,
                                  order_id=command.order_id, quantity=command.quantity,
                                  available=state.available, reservation_id=command.reservation_id)]
        case Expire():
            due = [state.reservations[i] for second in state.expiring if second <= command.now.timestamp()
                   for i in state.expiring[second]]
            lapsed = [r for r in sorted(due, key=lambda r: (r.expires_at, r.reservation_id))
                      if r.expires_at <= command.now]
            # Each event states what is available after it: the units of the ones before it are back too.
            after = itertools.accumulate((r.quantity for r in lapsed), initial=state.available)
            expired = [ReservationExpired(product_id=state.product_id, reservation_id=r.reservation_id,
                                          holder_id=r.holder_id, buyer_id=r.buyer_id, quantity=r.quantity,
                                          kind=r.kind, available=available, seq=r.seq, ended_at=command.now)
                       for r, available in zip(lapsed, itertools.islice(after, 1, None))]
            gone = sorted(i for minute in state.forgetting if minute <= command.now.timestamp()
                          for i in state.forgetting[minute])
            return [*expired, *(ReservationForgotten(product_id=state.product_id, reservation_id=i) for i in gone)]
    return invalid(f"inventory does not handle {type(command).__name__}")


ENDINGS = (SOLD, SHORT, RELEASED, EXPIRED, REFUSED)


def last_seq(state: Stock, reservation_id: str) -> int:
    """The newest cart request applied to a reservation, held or ended (0 if none was sequenced)."""
    held = state.reservations.get(reservation_id)
    if held is not None:
        return held.seq
    ended = state.ended.get(reservation_id)
    return ended.seq if ended is not None else 0


def _claimed_by(state: Stock, reservation_id: str, order_id: str, outcomes: tuple[str, ...]) -> bool:
    """Whether the reservation ended, in one of `outcomes`, after `order_id` had claimed it.

    One reservation id goes to at most one order (a cart checks out once), so this is exact.
    """
    ended = state.ended.get(reservation_id)
    return ended is not None and ended.holder_id == order_id and ended.outcome in outcomes


def _superseded(state: Stock, at: datetime) -> bool:
    """Whether a setting made at `at` is older than the one in force."""
    return state.set_at is not None and at < state.set_at


def _reserve(state: Stock, command: ReserveStock) -> list[Event] | Rejection:
    held = state.reservations.get(command.reservation_id)
    if held is not None and held.kind == HARD:
        return Rejection("invalid_transition", "these units are already allocated to an order", 409)
    if command.mode not in ("add", "set"):
        return invalid("mode must be add or set")
    held_quantity = held.quantity if held else 0
    wanted = held_quantity + command.quantity if command.mode == "add" else command.quantity
    if wanted <= 0 or command.quantity <= 0:
        return invalid("quantity must be at least 1")
    can_have = state.available + held_quantity
    if wanted > can_have:
        return [ReservationRefused(product_id=state.product_id, reservation_id=command.reservation_id,
                                   cart_id=command.cart_id, buyer_id=command.buyer_id, requested=wanted,
                                   available=can_have, seq=command.seq, ended_at=command.now)]
    after = _levels_after(state, reserved=state.reserved - held_quantity + wanted)
    return [StockReserved(product_id=state.product_id, reservation_id=command.reservation_id,
                          cart_id=command.cart_id, buyer_id=command.buyer_id, quantity=wanted,
                          expires_at=command.expires_at, available=after.available, seq=command.seq),
            *_low_stock(state, after, state.low_stock_threshold)]


def _allocate(state: Stock, command: AllocateStock) -> list[Event] | Rejection:
    held = state.reservations.get(command.reservation_id)
    if held is not None and held.kind == HARD:
        if held.holder_id == command.order_id:
            return []  # allocated already: a redelivered saga step
        return Rejection("invalid_transition", "these units are allocated to another order", 409)
    held_quantity = held.quantity if held else 0
    can_have = state.available + held_quantity
    if command.quantity <= 0 or command.quantity > can_have:
        return [AllocationRefused(product_id=state.product_id, reservation_id=command.reservation_id,
                                  order_id=command.order_id, requested=command.quantity, available=can_have)]
    after = _levels_after(state, reserved=state.reserved - held_quantity,
                          allocated=state.allocated + command.quantity)
    return [StockAllocated(product_id=state.product_id, reservation_id=command.reservation_id,
                           order_id=command.order_id, quantity=command.quantity, expires_at=command.expires_at,
                           available=after.available),
            *_low_stock(state, after, state.low_stock_threshold)]


def evolve(state: Stock, event: Event) -> Stock:
    match event:
        case StockCreated():
            new = Stock(product_id=event.product_id, seller_id=event.seller_id, sku=event.sku,
                        low_stock_threshold=event.low_stock_threshold)
        case StockUpdated():
            new = _set_by(replace(state, total=event.total_quantity, low_stock_threshold=event.low_stock_threshold),
                          event)
        case StockReserved():
            held = state.reservations.get(event.reservation_id)
            seq = max(event.seq, last_seq(state, event.reservation_id))
            new = replace(_holding(state, Reservation(event.reservation_id, event.cart_id, event.quantity, SOFT,
                                                      event.expires_at, event.buyer_id, seq)),
                          reserved=state.reserved - (held.quantity if held else 0) + event.quantity)
        case ReservationRefused():
            new = _refused(state, event.reservation_id, event.cart_id, event.seq, _forget_at(event.ended_at))
        case ReservationReleased():
            held = state.reservations.get(event.reservation_id)
            holder = event.order_id or (held.holder_id if held else "")
            by_cart = event.kind == SOFT and not event.order_id
            new = _ended(state, event.reservation_id, RELEASED, holder, event.seq,
                         _forget_at(event.ended_at) if by_cart else None)
        case ReservationExpired():
            new = _ended(state, event.reservation_id, EXPIRED, event.holder_id,
                         forget_at=_forget_at(event.ended_at) if event.kind == SOFT else None)
        case StockAllocated():
            held = state.reservations.get(event.reservation_id)
            new = replace(_holding(state, Reservation(event.reservation_id, event.order_id, event.quantity, HARD,
                                                      event.expires_at, held.buyer_id if held else "",
                                                      last_seq(state, event.reservation_id))),
                          reserved=state.reserved - (held.quantity if held else 0),
                          allocated=state.allocated + event.quantity)
        case AllocationRefused() if event.reservation_id not in state.reservations:
            new = _ended(state, event.reservation_id, REFUSED, event.order_id)
        case ReservationFulfilled():
            new = replace(_ended(state, event.reservation_id, SOLD, event.order_id),
                          total=state.total - event.quantity, sold=state.sold + event.quantity)
        case SaleShortfall() if event.reservation_id and event.reservation_id not in state.reservations:
            new = _ended(state, event.reservation_id, SHORT, event.order_id)
        case ReservationForgotten():
            new = _tombstone(state, event.reservation_id, None)
        case _:
            new = state
    new = replace(new, version=state.version + 1)
    _check_levels(new)
    return new


def _set_by(state: Stock, event: StockUpdated) -> Stock:
    """Remember which SetStock set the total, so its redelivery is recognised (see `decide`)."""
    at = event.requested_at
    if at is None or (state.set_at is not None and at < state.set_at):
        return state  # an event from before SetStocks were remembered, or a versioned one that came late
    if at == state.set_at:
        return replace(state, set_ids=(*state.set_ids, event.request_id))
    return replace(state, set_at=at, set_ids=(event.request_id,))


def _refused(state: Stock, reservation_id: str, cart_id: str, seq: int, forget_at: int | None) -> Stock:
    """A refused cart request still counts as applied: redelivered once units are back, it must not hold."""
    if seq == 0:
        return state
    held = state.reservations.get(reservation_id)
    if held is not None:
        return replace(state, reservations=state.reservations.set(reservation_id,
                                                                   replace(held, seq=max(held.seq, seq))))
    ended = state.ended.get(reservation_id)
    if ended is None:
        return _tombstone(state, reservation_id, Ended(REFUSED, cart_id, seq, forget_at))
    # An order's tombstone stays until the order retires; a cart's lives on from its newest request.
    later = ended.forget_at if ended.forget_at is None or forget_at is None else max(ended.forget_at, forget_at)
    return _tombstone(state, reservation_id, replace(ended, seq=max(ended.seq, seq), forget_at=later))


def _ended(state: Stock, reservation_id: str, outcome: str, holder_id: str, seq: int = 0,
           forget_at: int | None = None) -> Stock:
    """Nothing is held under the id any more (see `_without` for the units); a tombstone remembers it,
    until `forget_at` (a cart's) or until its order retires (`forget_at` None)."""
    tombstone = Ended(outcome, holder_id, max(seq, last_seq(state, reservation_id)), forget_at)
    return _tombstone(_without(state, reservation_id), reservation_id, tombstone)


def _tombstone(state: Stock, reservation_id: str, tombstone: Ended | None) -> Stock:
    """The id's tombstone becomes `tombstone` (None: it has none), indexed by when it may go."""
    forgetting = state.forgetting
    old = state.ended.get(reservation_id)
    if old is not None and old.forget_at is not None:
        forgetting = _unindexed(forgetting, old.forget_at, reservation_id)
    if tombstone is None:
        return replace(state, ended=state.ended.discard(reservation_id), forgetting=forgetting)
    if tombstone.forget_at is not None:
        forgetting = _indexed(forgetting, tombstone.forget_at, reservation_id)
    return replace(state, ended=state.ended.set(reservation_id, tombstone), forgetting=forgetting)


def _forget_at(ended_at: datetime | None) -> int | None:
    """The whole minute from which a cart's tombstone made at `ended_at` may go (None: keep it). Whole
    minutes keep the index small: an hour of tombstones is at most 61 entries to look at for a deadline."""
    if ended_at is None:
        return None
    return math.ceil((ended_at + FORGET_ENDED_AFTER).timestamp() / 60) * 60


def _second(at: datetime) -> int:
    return math.floor(at.timestamp())


def _indexed(index: Map, at: int, reservation_id: str) -> Map:
    """`index` (whole second -> ids) with `reservation_id` under `at`."""
    return index.set(at, index.get(at, _NO_IDS).set(reservation_id, None))


def _unindexed(index: Map, at: int, reservation_id: str) -> Map:
    """`index` without `reservation_id` under `at` (and without `at`, if nothing is left there)."""
    ids = index[at].delete(reservation_id)
    return index.set(at, ids) if ids else index.delete(at)


_NO_IDS = Map()


def _holding(state: Stock, reservation: Reservation) -> Stock:
    """`reservation` held (replacing any earlier one of its id), indexed by the second it expires in."""
    held = state.reservations.get(reservation.reservation_id)
    expiring = _unindexed(state.expiring, _second(held.expires_at), held.reservation_id) if held else state.expiring
    expiring = _indexed(expiring, _second(reservation.expires_at), reservation.reservation_id)
    return replace(_tombstone(state, reservation.reservation_id, None),
                   reservations=state.reservations.set(reservation.reservation_id, reservation), expiring=expiring)


def _without(state: Stock, reservation_id: str) -> Stock:
    """The reservation's units go back to available (or, for a sale, the caller moves them on)."""
    held = state.reservations.get(reservation_id)
    if held is None:
        return state
    rest = replace(state, reservations=state.reservations.discard(reservation_id),
                   expiring=_unindexed(state.expiring, _second(held.expires_at), reservation_id))
    if held.kind == SOFT:
        return replace(rest, reserved=state.reserved - held.quantity)
    return replace(rest, allocated=state.allocated - held.quantity)


def _check_levels(stock: Stock) -> None:
    """The invariants checked on every change, in constant time (`audit` adds the full recount)."""
    check(stock.reserved >= 0 and stock.allocated >= 0 and stock.sold >= 0, "quantities never negative")
    check(stock.available >= 0, "available never negative")
    check(stock.available + stock.reserved + stock.allocated == stock.total,
          "available + reserved + allocated = total")


def audit(stock: Stock) -> None:
    """Recount everything from the reservations held (O(n): for tests and audits, not every command)."""
    _check_levels(stock)
    check(stock.reserved == sum(r.quantity for r in stock.reservations.values() if r.kind == SOFT),
          "reserved = the soft reservations held")
    check(stock.allocated == sum(r.quantity for r in stock.reservations.values() if r.kind == HARD),
          "allocated = the hard allocations held")
    check(sorted(i for ids in stock.expiring.values() for i in ids) == sorted(stock.reservations),
          "every reservation indexed by its expiry, once")
    check(not any(i in stock.ended for i in stock.reservations), "a reservation id is held or ended, not both")
    check(sorted((m, i) for m, ids in stock.forgetting.items() for i in ids)
          == sorted((e.forget_at, i) for i, e in stock.ended.items() if getattr(e, "forget_at", None) is not None),
          "every cart tombstone indexed by when it may go, once")


def view(state: Stock) -> dict | None:
    if state.product_id is None:
        return None
    return {"productId": state.product_id, "sellerId": state.seller_id, "sku": state.sku,
            "totalQuantity": state.total, "availableQuantity": state.available,
            "reservedQuantity": state.reserved, "allocatedQuantity": state.allocated,
            "soldQuantity": state.sold, "lowStockThreshold": state.low_stock_threshold,
            "version": state.version}


def deadline(state: Stock) -> datetime | None:
    """When the next reservations lapse: the end of the second holding the earliest expiry.

    Whole seconds keep this cheap however many carts hold the product (a flash sale puts
    thousands of expiries in one second); a reservation lapses at most a second late. Or, if sooner,
    when the first cart tombstones may go.
    """
    due = [min(state.expiring) + 1] if state.expiring else []
    if state.forgetting:
        due.append(min(state.forgetting))
    return datetime.fromtimestamp(min(due), tz=UTC) if due else None


AGGREGATE = Aggregate("inventory", initial_state, decide, evolve, view, deadline=deadline)
