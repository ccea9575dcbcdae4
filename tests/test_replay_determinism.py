"""A recovery replays the decision flow from a snapshot: it must decide exactly what the live run decided.

The live run is the randomised marketplace of test_invariants. Every record delivered to a decider is
kept, in order: that is the log. Somewhere in the middle, every decider's state is pickled, as Bytewax
pickles its recovery snapshots. Then the run goes on to the end. The recovery restores the snapshot and
reads the log again from that point, an hour later by the clock, with its timers firing at other moments
than the live run's did. Every event it emits from the logged records must be byte for byte the event
the live run emitted there; what its own timers ask for goes to the end of the log, and may add new
events but never re-use an event id.
"""

from __future__ import annotations

import pickle
import random
from datetime import timedelta

import pytest

from buyit.envelope import decode
from dataflows.decider import DeciderLogic
from tests.sim.world import World
from tests.test_invariants import Market

ROUNDS = 1200


class RecordedWorld(World):
    """A World that keeps every delivered record (the log) and every event with the record that caused it."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.log: list[tuple[str, str, bytes]] = []
        self.emitted: list[tuple[int, str, bytes]] = []  # (log position, event id, event bytes)

    def _decide(self, topic: str, key: str, value: bytes) -> None:
        self.log.append((topic, key, value))
        super()._decide(topic, key, value)

    def _route(self, outputs) -> None:
        for topic, _key, value in outputs:
            if topic.endswith(".events"):
                self.emitted.append((len(self.log) - 1, decode(value).event_id, value))
        super()._route(outputs)

    def snapshot(self) -> bytes:
        return pickle.dumps({k: logic.snapshot() for k, logic in self.logic.items()})


def live_run(seed: int) -> tuple[RecordedWorld, int, bytes]:
    """The live run, with a snapshot taken halfway: (world, log position of the snapshot, snapshot)."""
    w = RecordedWorld(seed)
    market = Market(w)
    market.open_shop()
    snapshot = None
    for round_ in range(ROUNDS):
        market.act()
        w.run(w.rng.randint(0, 6))
        if round_ == ROUNDS // 2:
            at, snapshot = len(w.log), w.snapshot()
    w.drain()
    for _ in range(20):  # every timer ends what it holds
        w.tick(120)
        w.drain()
    return w, at, snapshot


def recover(w: RecordedWorld, at: int, snapshot: bytes, seed: int) -> tuple[list[tuple[str, bytes]], list]:
    """Replay `w.log[at:]` on the restored state, timers firing at random; then the records they asked for.

    Returns the events emitted from the logged records, and those emitted from the timers' own records."""
    rng = random.Random(seed)
    now = [w.now + timedelta(hours=1)]
    logic = {key: DeciderLogic(slot, clock=lambda: now[0]) for key, slot in pickle.loads(snapshot).items()}
    asked: list[tuple[str, str, bytes]] = []

    def deliver(topic: str, key: str, value: bytes) -> list[tuple[str, bytes]]:
        aggregate = topic.removesuffix(".commands")
        held = logic.setdefault(f"{aggregate}:{key}", DeciderLogic(None, clock=lambda: now[0]))
        outputs = held.on_item((aggregate, decode(value)))[0]
        return [(decode(v).event_id, v) for t, _, v in outputs if t.endswith(".events")]

    def fire_timers() -> None:
        for held in list(logic.values()):
            due = held.notify_at()
            if due is not None and due <= now[0]:
                asked.extend(held.on_notify()[0])

    replayed = []
    fire_timers()  # a restored operator is late for every deadline at once
    for topic, key, value in w.log[at:]:
        replayed.extend(deliver(topic, key, value))  # its saga commands are in the log already
        if rng.random() < 0.05:
            now[0] += timedelta(seconds=rng.uniform(0, 300))
            fire_timers()
    extra = [event for record in asked for event in deliver(*record)]
    return replayed, extra


@pytest.mark.parametrize("seed", [11, 12])
def test_a_replay_from_a_snapshot_emits_the_live_runs_events_byte_for_byte(seed):
    w, at, snapshot = live_run(seed)
    live = [(event_id, value) for position, event_id, value in w.emitted if position >= at]
    assert len(live) > 500 and any(w.log[p][2].find(b'"type":"Expire"') >= 0 for p, _, _ in w.emitted if p >= at)

    replayed, extra = recover(w, at, snapshot, seed)

    assert replayed == live
    live_ids = {event_id for _, event_id, _ in w.emitted}
    assert not live_ids & {event_id for event_id, _ in extra}
