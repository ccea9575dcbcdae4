"""One-minute tumbling windows of sales, reservations and the cart funnel, on event time.

Wiring only: what counts is `state/analytics.py`. Facts are keyed by scope, seller and product and
windowed with Bytewax's `EventClock` on the envelope's `occurredAt` (stamped by the API or the timer
that caused the event) and a one-minute `TumblingWindower` aligned to whole minutes.

Emission. A window emits its counts after every fact it folds (so a dashboard sees the minute in
progress) and once more when it closes. Facts are folded as they come (`ordered=False`): sums do not
care about order, and ordering would hold every fact back by the wait.

Late facts. A window closes `WAIT` after its end (the watermark is the newest event time seen for
the key minus `WAIT`, advancing with the system clock). A fact for a closed window is not lost: it
is counted in the same minute's *late* part, a running total per (key, minute) kept by a second
keyed step. Each part is a full value with a version (the number of facts in it), so Postgres
keeps it by an upsert that only moves forward: a duplicate or a recovery replay writes
the same rows (readers add the parts; which facts were late may differ between a live run and a
replay, the sum does not). One known gap: after a crash, facts processed after the last snapshot
(at most `BUYIT_SNAPSHOT_INTERVAL_S`) are folded again; if the downtime outlasted `WAIT` they come
back late and count twice in their minute. `buyit replay` recomputes exact figures, replacing whole
minutes (sinks/window_rebuild.py); it sums each minute's facts directly (dataflows/replay.py): it only
wants the totals, and a figure per fact through the window operator was a fifth of its time.
"""

from __future__ import annotations

from datetime import timedelta

from bytewax import operators as op
from bytewax.operators import windowing as win

from state.analytics import (EPOCH, LATE, MINUTE, ON_TIME, Fact, WindowFigures, add, merged, split_key,
                             window_start)

WAIT = timedelta(seconds=10)  # how far behind the newest event of a key another may come and still be on time


class RunningCounts(win.WindowLogic):
    """A window's counts, emitted after every fact (closed=False) and when it closes (closed=True)."""

    def __init__(self, resume: tuple[dict, int] | None):
        self.counts, self.facts = resume if resume is not None else (None, 0)

    def on_value(self, fact: Fact):
        self.counts, self.facts = add(self.counts, fact), self.facts + 1
        return [(self.counts, self.facts, False)]

    def on_merge(self, original: "RunningCounts"):  # tumbling windows never merge; kept correct anyway
        self.counts = merged(self.counts or {}, original.counts or {})
        self.facts += original.facts
        return [(self.counts, self.facts, False)]

    def on_close(self):
        return [(self.counts, self.facts, True)]

    def snapshot(self) -> tuple[dict, int]:
        return (dict(self.counts or {}), self.facts)  # counts are replaced, never mutated: a copy suffices


def figures_of(key: str, window_id: int, counts: dict, facts: int, part: str, closed: bool) -> WindowFigures:
    """A window key's minute (by window id) and its counts as `WindowFigures`."""
    scope, seller_id, product_id = split_key(key)
    return WindowFigures(scope, seller_id, product_id, window_start(window_id), part, counts, facts, closed)


def _late_total(held, fact: Fact):
    """The late part of one key's minute: every late fact for it so far."""
    counts, facts = held if held is not None else (None, 0)
    counts, facts = add(counts, fact), facts + 1
    return (counts, facts), (counts, facts)


def per_minute(facts):
    """Facts in, `WindowFigures` out: each on-time window as it fills and closes, each late part as it grows."""
    keyed = op.key_on("key_by_window", facts, lambda f: f.key)  # (scope/seller/product, Fact)
    clock = win.EventClock(lambda f: f.at, wait_for_system_duration=WAIT)
    out = win.window("per_minute", keyed, clock, win.TumblingWindower(length=MINUTE, align_to=EPOCH),
                     RunningCounts, ordered=False)  # (key, (window id, (counts, facts, closed)))
    on_time = op.map("on_time_figures", out.down,
                     lambda kv: figures_of(kv[0], kv[1][0], kv[1][1][0], kv[1][1][1], ON_TIME, kv[1][1][2]))
    late = op.key_on("key_late_by_minute", op.map("unkey_late", out.late, lambda kv: (kv[0], kv[1][0], kv[1][1])),
                     lambda late: f"{late[0]}@{late[1]}")  # (key@window id, (key, window id, Fact))
    totals = op.stateful_map("late_totals", op.map_value("late_fact", late, lambda x: x[2]), _late_total)
    late_figures = op.map("late_figures", totals, lambda kv: figures_of(
        kv[0].rsplit("@", 1)[0], int(kv[0].rsplit("@", 1)[1]), kv[1][0], kv[1][1], LATE, False))
    return op.merge("all_figures", on_time, late_figures)

