"""An in-memory run of the real decision operator: the same deciders, sagas and idempotency, no Kafka.

Records go through a queue standing in for the topics; per key they stay in
order (as in a Kafka partition) while different keys interleave, commands can
be delivered twice (at-least-once), and a fake clock drives the timers.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta

from buyit.envelope import command_envelope, commands_topic, decode
from dataflows.decider import DeciderLogic
from state.registry import AGGREGATES


class World:
    def __init__(self, seed: int, duplicate_rate: float = 0.05, late_rate: float = 0.0, late_after: int = 600,
                 retain: timedelta = timedelta(days=365), forget: timedelta = timedelta(days=365)):
        """`duplicate_rate`: a record delivered again a few records later; `late_rate`: again after at least
        `late_after` other deliveries, far outside any window of remembered ids; `retain`: how long a finished
        aggregate stays live (a year by default: most runs look at the live states at their end)."""
        self.retain, self.forget = retain, forget
        self.rng = random.Random(seed)
        self.late_rate, self.late_after = late_rate, late_after
        self.late: deque = deque()  # (due step, record)
        self.steps = 0
        self.late_delivered = 0
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.duplicate_rate = duplicate_rate
        self.logic: dict[str, DeciderLogic] = {}
        self.queues: dict[str, deque] = defaultdict(deque)  # per aggregate key, like a partition
        self.events: list[dict] = []
        self.event_topics: dict[str, str] = {}  # event id -> the topic it went to
        self.answers: dict[str, list[dict]] = defaultdict(list)  # command id -> every answer to it, first first
        self.sent: list[str] = []  # the ids of the commands sent from outside (as the API would)
        self.dead: list[dict] = []

    # --- input ---

    def send(self, aggregate: str, key: str, command) -> str:
        self._enqueue(commands_topic(aggregate), key, command_envelope(command, key).encode())
        self.sent.append(command.command_id)
        return command.command_id

    def _enqueue(self, topic: str, key: str, value: bytes) -> None:
        self.queues[f"{topic}:{key}"].append((topic, key, value))

    # --- running ---

    def step(self) -> bool:
        """Deliver one record from a random key's queue; False when nothing is queued."""
        live = [k for k, q in self.queues.items() if q]
        if not live:
            return False
        topic, key, value = self.queues[self.rng.choice(live)].popleft()
        self._decide(topic, key, value)
        self.steps += 1
        if self.rng.random() < self.duplicate_rate:  # at-least-once: the same record again, later
            self._enqueue(topic, key, value)
        if self.rng.random() < self.late_rate:  # ... or much later: a replay after a long outage
            self.late.append((self.steps + self.late_after + self.rng.randrange(self.late_after), (topic, key, value)))
        while self.late and self.late[0][0] <= self.steps:
            self._enqueue(*self.late.popleft()[1])
            self.late_delivered += 1
        return True

    def run(self, steps: int) -> None:
        for _ in range(steps):
            if not self.step():
                return

    def drain(self) -> None:
        while self.step():
            pass

    def tick(self, seconds: float) -> None:
        """Advance the clock and fire every timer that came due, as Bytewax would.

        A timer asks for its `Expire` through the aggregate's command topic; the World delivers that
        record at once. Its queues stand for records stamped before the clock jumped, which a real
        partition would have long consumed: putting the expiry behind them would expire holds their
        own commands made minutes "ago"."""
        self.now += timedelta(seconds=seconds)
        for logic in list(self.logic.values()):
            due = logic.notify_at()
            if due is not None and due <= self.now:
                for topic, key, value in logic.on_notify()[0]:
                    self._decide(topic, key, value)

    def _decide(self, topic: str, key: str, value: bytes) -> None:
        aggregate = topic.removesuffix(".commands")
        envelope = decode(value)
        logic = self.logic.get(f"{aggregate}:{key}")
        if logic is None:
            logic = self.logic[f"{aggregate}:{key}"] = DeciderLogic(None, clock=lambda: self.now)
            logic.retain, logic.forget = self.retain, self.forget
        outputs, keep = logic.on_item((aggregate, envelope))
        if keep == DeciderLogic.DISCARD:  # as Bytewax does: the next record of this key starts afresh
            del self.logic[f"{aggregate}:{key}"]
        self._route(outputs)

    def _route(self, outputs) -> None:
        for topic, key, value in outputs:
            if topic.endswith(".commands"):
                self._enqueue(topic, key, value)
            elif topic.endswith(".events"):
                self.events.append(json.loads(value))
                self.event_topics[self.events[-1]["eventId"]] = topic
            elif topic == "command.results":
                record = json.loads(value)
                if record["type"] != "CommandRepeated":  # a retry's "taken already" is no answer
                    self.answers[record["correlationId"]].append(record)
            else:
                self.dead.append(json.loads(value))

    # --- reading ---

    def state(self, aggregate: str, key: str):
        logic = self.logic.get(f"{aggregate}:{key}")
        return logic.slot.state if logic else AGGREGATES[aggregate].initial_state()

    def states(self, aggregate: str) -> dict:
        """Every aggregate of a kind that has had an event (keys that only saw rejections are left out)."""
        return {k.split(":", 1)[1]: l.slot.state for k, l in self.logic.items()
                if k.startswith(aggregate + ":") and l.slot.state.version > 0}

    def replayed(self, aggregate: str) -> dict:
        """Every aggregate rebuilt from its events alone (what the projection does), deduplicated by version."""
        agg, out = AGGREGATES[aggregate], {}
        topic_events = [e for e in self.events if e["type"] and _aggregate_of(e) == aggregate]
        seen: set = set()
        for e in topic_events:
            if e["eventId"] in seen:
                continue
            seen.add(e["eventId"])
            state = out.get(e["key"], agg.initial_state())
            if e["version"] > state.version:
                out[e["key"]] = agg.evolve(state, decode(json.dumps(e).encode()).message())
        return out


_TYPES: dict[str, str] = {}


def _aggregate_of(event: dict) -> str:
    """Which aggregate emitted an event (by its registered class's module)."""
    if event["type"] not in _TYPES:
        from state.common import REGISTRY
        _TYPES[event["type"]] = REGISTRY[event["type"]].__module__.rsplit(".", 1)[-1]
    return _TYPES[event["type"]]
