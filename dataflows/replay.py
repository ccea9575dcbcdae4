"""A replay: the projection's fold over the event topics, from their beginnings to the ends they had
when it started, into the read side; then it stops.

It is `build_flow` with bounded sinks: nothing is decided (no decider runs), nothing is produced to
Kafka (no dead letters, no window records: the live projection published those), and nothing
external is called. `--since TIME` cannot shorten the read: an aggregate's view is its whole history
folded, so every event is read and folded; `since` only limits what is *written* (see `plan`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink
from confluent_kafka import Consumer, TopicPartition

from buyit.clients import consumer_config
from buyit.envelope import RESULTS, events_topic
from dataflows.kafka_io import Bounds, TopicsSource
from dataflows.project import build_flow
from state.registry import AGGREGATES

# A replay favours throughput: big fetches, and big batches into the flow (each batch is one Postgres
# transaction per table group, and one coalescing of rows per key).
REPLAY_BATCH = 5000
REPLAY_FETCH = {"fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20,
                "queued.max.messages.kbytes": 256 << 10, "fetch.wait.max.ms": 10}


def topics() -> list[str]:
    """What the live projection reads: every aggregate's events, and the commands' answers."""
    return [events_topic(name) for name in AGGREGATES] + [RESULTS]


@dataclass(frozen=True)
class Plan:
    """Offsets per (topic, partition): where each log begins, where `since` falls, where it ended at the start."""

    starts: dict[tuple[str, int], int]
    since: dict[tuple[str, int], int]
    ends: dict[tuple[str, int], int]

    @property
    def total(self) -> int:
        """Offsets to read (records, bar transaction markers and compacted gaps)."""
        return sum(self.ends[tp] - self.starts[tp] for tp in self.ends)

    @property
    def fresh(self) -> int:
        """Offsets at or after `since`: the part whose outputs are written."""
        return sum(self.ends[tp] - max(self.since[tp], self.starts[tp]) for tp in self.ends)

    def bounds(self, on_read=None) -> Bounds:
        return Bounds(self.starts, self.ends, self.since, on_read)


def plan(brokers: list[str], partitions: int, since: datetime | None) -> Plan:
    """Capture the ends of every topic now, and where `since` falls in each (Kafka's `offsets_for_times`
    on record timestamps, which the producers set when they wrote the event: the first record at or
    after `since`, or the end if there is none)."""
    consumer = Consumer(consumer_config(brokers, "buyit-replay-plan"))
    try:
        parts = [(t, p) for t in topics() for p in range(partitions)]
        marks = {tp: consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10) for tp in parts}
        starts = {tp: low for tp, (low, _) in marks.items()}
        ends = {tp: high for tp, (_, high) in marks.items()}
        if since is None:
            at = dict(starts)
        else:
            ms = int(since.timestamp() * 1000)
            found = consumer.offsets_for_times([TopicPartition(t, p, ms) for t, p in parts], timeout=10)
            at = {(f.topic, f.partition): (f.offset if f.offset >= 0 else ends[(f.topic, f.partition)]) for f in found}
        return Plan(starts, at, ends)
    finally:
        consumer.close()


def source(brokers: list[str], partitions: int, bounds: Bounds) -> TopicsSource:
    return TopicsSource(brokers, topics(), partitions, batch=REPLAY_BATCH, tail=False, fetch=REPLAY_FETCH,
                        bounds=bounds)


def replay_flow(source, views, carts, windows, lake=None) -> tuple[Dataflow, list]:
    """The projection over `source` into the `views`, `carts`, `windows` (a `WindowRebuildSink`) and
    optional `lake` sinks; returns the flow and the list its dead letters are collected in."""
    dead: list = []
    flow = build_flow(source, views, TestingSink(dead), carts, lake_sink=lake, window_rows_sink=windows)
    return flow, dead


def dead_reasons(dead: list) -> Counter:
    """The collected dead letters by reason."""
    import json
    reasons: Counter = Counter()
    for letter in dead:
        try:
            reasons[json.loads(letter[2])["reason"]] += 1
        except (ValueError, KeyError, TypeError, IndexError):
            reasons["unreadable"] += 1
    return reasons
