"""Aggregates' deadlines kept by a timer step, in buckets of a few minutes, not one Bytewax timer per aggregate.

Bytewax's stateful step looks at the timer of every key it holds each time it runs: with a timer on
each live aggregate (a cart's expiry, an order's retirement, a tombstone's week), that cost grows with
the live state, not with the traffic. Measured with Bytewax 0.21 (`python -m bench.timers`): an item
costs 7 µs with no other keys, 141 µs with 10,000 idle keys holding timers and 1.3 ms with 50,000, while
keys without a timer cost nothing. A marketplace holds every aggregate of the last week (tombstones),
so the decision dataflow slowed down as it ran (`bench.soak`: its CPU per request rose by a third in 30
minutes).

So the decision step (`Scheduled`) holds no Bytewax timer. It tells a `TimerBucket` keyed by
(aggregate, the 5-minute span its deadline falls in) when its deadline comes, and the bucket, whose own
timer is its earliest entry, asks for the `Expire` (or `Retire`) through the aggregate's command topic,
exactly as the decider's own timer did (same command ids; asked again after `ASK_AGAIN_S` if it is not
decided by then). There are as many bucket keys as 5-minute spans with a deadline in them (a week:
about 2,000), however many aggregates there are.

A deadline that moves later is not told (a cart's expiry moves with every add): the bucket asks at the
earlier time, the aggregate decides that nothing is due (every `Expire` and `Retire` checks its own
time) and, having been asked, tells its deadline again. A deadline that moves earlier, or any decided
`Expire` or `Retire`, is told at once; a deadline that is gone is dropped from its bucket then.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulLogic

from buyit.envelope import command_envelope, commands_topic
from dataflows.decider import ASK_AGAIN_S, DeciderLogic, Output, Slot
from state.common import Expire, Retire, derived_id, type_name

BUCKET_S = 300  # a bucket's span: a week of deadlines is about 2,000 keys; the busiest holds 5 minutes' worth
TIMERS = "@timers"  # not a topic: the decision dataflow routes these outputs to the timer step
_KINDS = {"expire": Expire, "retire": Retire}
_LABELS = {Expire: "expire", Retire: "retire"}
_TIMER_COMMANDS = frozenset({type_name(Expire), type_name(Retire)})


def bucket_of(aggregate: str, due: datetime) -> str:
    """The timer step's key for a deadline of `aggregate` at `due`."""
    return f"{aggregate}@{int(due.timestamp()) // BUCKET_S}"


def told(slot: Slot, timer: tuple[datetime, type] | None, asked: bool) -> list[Output]:
    """What the timer step must hear of `slot`'s deadline `timer` ((due, Expire or Retire), or None); `asked`:
    the item just decided was an `Expire` or `Retire`, so its bucket must hear either way. Updates
    `slot.told`."""
    before, aggregate, key = slot.told, slot.aggregate, slot.key
    if not asked and (timer is None or (before is not None and timer[0] >= before[0])):
        return []  # nothing new, or a later deadline: the bucket asks early and hears it then
    out = []
    held = bucket_of(aggregate, before[0]) if before is not None else None
    if held is not None and (timer is None or held != bucket_of(aggregate, timer[0])):
        out.append((TIMERS, held, ("drop", aggregate, key)))
    if timer is not None:
        due, kind = timer
        out.append((TIMERS, bucket_of(aggregate, due), ("set", aggregate, key, due, _LABELS[kind],
                                                         slot.state.version)))
    slot.told = (timer[0], _LABELS[timer[1]]) if timer is not None else None
    return out


class Scheduled(DeciderLogic):
    """`DeciderLogic` whose deadlines the timer step keeps (see the module docstring).

    A slot restored from a build before this one still has its Bytewax timer: it keeps it until its next
    item, and tells the timer step from then on."""

    def on_item(self, value) -> tuple[list[Output], bool]:
        outputs, discard = super().on_item(value)
        slot = self.slot
        slot.by_timer_step = True  # a slot of an older build was never told, so its deadline is told now
        timer = None if discard else self._timer()
        return outputs + told(slot, timer, value[1].type in _TIMER_COMMANDS), discard

    def notify_at(self) -> datetime | None:
        if self.slot is not None and not self.slot.by_timer_step:
            return super().notify_at()
        return None


class TimerBucket(StatefulLogic):
    """The deadlines of one aggregate type that fall in one `BUCKET_S` span: key -> (aggregate, due, kind label,
    version, asked at or None); its own Bytewax timer is the earliest of them."""

    def __init__(self, resume: dict | None, clock=lambda: datetime.now(UTC)):
        self.entries: dict[str, tuple] = resume or {}
        self.clock = clock
        self._queue = [(_when(entry), key) for key, entry in self.entries.items()]  # with stale items: skipped
        heapq.heapify(self._queue)

    def on_item(self, value: tuple) -> tuple[list, bool]:
        if value[0] == "set":
            _, aggregate, key, due, label, version = value
            self.entries[key] = (aggregate, due, label, version, None)
            heapq.heappush(self._queue, (due, key))
        else:
            self.entries.pop(value[2], None)
        return [], not self.entries

    def notify_at(self) -> datetime | None:
        queue = self._queue
        while queue:
            when, key = queue[0]
            entry = self.entries.get(key)
            if entry is not None and _when(entry) == when:
                return when
            heapq.heappop(queue)
        return None

    def on_notify(self) -> tuple[list[Output], bool]:
        """Ask for every `Expire` or `Retire` due, as the decider's own timer did (the same command ids)."""
        now, out = self.clock(), []
        while (when := self.notify_at()) is not None and when <= now:
            _, key = heapq.heappop(self._queue)
            aggregate, due, label, version, _ = self.entries[key]
            command = _KINDS[label](command_id=derived_id(key, f"{label}/{now.isoformat()}/{version}"), now=now)
            out.append((commands_topic(aggregate), key, command_envelope(command, key).encode()))
            self.entries[key] = (aggregate, due, label, version, now)
            heapq.heappush(self._queue, (now + timedelta(seconds=ASK_AGAIN_S), key))
        return out, not self.entries

    def snapshot(self) -> dict:
        return dict(self.entries)


def _when(entry: tuple) -> datetime:
    """When an entry is next asked for: at its deadline, or if asked already, once that ask may be lost."""
    _, due, _, _, asked = entry
    return due if asked is None else asked + timedelta(seconds=ASK_AGAIN_S)
