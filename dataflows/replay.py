"""A replay: the projection's fold over the event topics, from their beginnings to the ends they had
when it started, into the read side; then it stops.

It folds with the live projection's `parse` and `fold` (dataflows/project.py) into the same sinks,
bounded: nothing is decided (no decider runs), nothing is produced to Kafka (no dead letters, no window
records: the live projection published those), and nothing external is called. `--since TIME` cannot
shorten the read: an aggregate's view is its whole history folded, so every event is read and folded;
`since` only limits what is *written* (see `plan`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.testing import TestingSink
from confluent_kafka import Consumer, TopicPartition

from buyit.clients import consumer_config
from buyit.envelope import RESULTS, events_topic
from dataflows.kafka_io import Bounds, Record, Shard, TopicsSource
from dataflows.project import fold, parse
from sinks.lake import keyed as lake_item
from sinks.views import rows as view_rows
from state.analytics import empty_counts, window_id_of
from state.cart import view as cart_view
from state.common import Tombstone
from state.registry import AGGREGATES

# A replay favours throughput: big fetches, and big batches into the fold (one Python call each).
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


def source(brokers: list[str], partitions: int, bounds: Bounds, shard: Shard | None = None) -> TopicsSource:
    """The replay's reader of `topics()` within `bounds`, keeping the records of `shard` (None: all)."""
    return TopicsSource(brokers, topics(), partitions, batch=REPLAY_BATCH, tail=False, fetch=REPLAY_FETCH,
                        bounds=bounds, shard=shard)


@dataclass
class Folded:
    """What a replay's fold keeps: each aggregate's state; the aggregates a fresh event changed since their
    rows were written (`unwritten`, key -> aggregate); every window minute's counts so far ((fact key,
    window id) -> [counts, facts]), summed over its facts."""

    states: dict = field(default_factory=dict)
    unwritten: dict = field(default_factory=dict)
    minutes: dict = field(default_factory=dict)

    def batch(self, records: list[Record], lake: bool) -> list[tuple[str, list]]:
        """Fold a batch of records with the live projection's `parse` and `fold`, in log order. Returns
        ("views", a row list per aggregate), ("carts", cart views), ("lake", lake items) and ("dead", letters),
        each once. An aggregate's rows are written once, at its final state (`rest`), unless it leaves that
        state behind first: a buyer's cart aggregate moving on to a new cart (the old one's row is final),
        or an aggregate retiring (its last rows stay as they are). Those are written with this batch."""
        at_once, dead, lake_items, left = [], [], [], []  # at_once: answers and stale marks, rows of their own
        states, unwritten, minutes = self.states, self.unwritten, self.minutes
        for record in records:
            kind, item = parse(record)
            if kind != "ok":
                if kind == "dead":
                    dead.append(item)
                elif item is not None:
                    at_once.append([item])
                continue
            aggregate, envelope, event, fresh = item
            key = f"{aggregate}:{envelope.key}"
            before = states.get(key)
            after, outputs = fold(before, item)
            states[key] = after
            if key in unwritten and _left(before, after):
                left.append((aggregate, before))
                del unwritten[key]
            if lake and fresh:  # every fresh event as read, duplicates included (the readers dedupe)
                lake_items.append(lake_item(record.topic, (envelope, event)))
            for tag, output in outputs:
                if tag == "fact":  # summed in place: the counts are this fold's own, never shared
                    minute = (output.key, window_id_of(output.at))
                    held = minutes.get(minute)
                    if held is None:
                        held = minutes[minute] = [empty_counts(output.scope), 0]
                    counts = held[0]
                    for name, n in output.counts:
                        counts[name] = counts.get(name, 0) + n
                    held[1] += 1
                elif tag == "view":
                    unwritten[key] = aggregate
                elif tag == "lake":
                    if lake:
                        lake_items.append(lake_item("order.events", output))
                elif tag == "stale":
                    at_once.append([output])
                else:
                    dead.append(output)
        return [("views", [*at_once, *_rows(left)]), ("carts", _carts(left)), ("lake", lake_items), ("dead", dead)]

    def rest(self) -> list[tuple[str, list]]:
        """At the end: the rows and cart views of every aggregate not yet written, at its final state."""
        final = [(aggregate, self.states[key]) for key, aggregate in self.unwritten.items()]
        self.unwritten = {}
        return [("views", _rows(final)), ("carts", _carts(final))]


def _left(before, after) -> bool:
    """Whether `after` leaves `before`'s rows behind for good: another cart, or retired."""
    if before is None or isinstance(before, Tombstone):
        return False
    return isinstance(after, Tombstone) or getattr(before, "cart_id", None) != getattr(after, "cart_id", None)


def _rows(states: list) -> list[list]:
    return [rows for rows in (view_rows(aggregate, state) for aggregate, state in states) if rows]


def _carts(states: list) -> list[dict]:
    return [v for v in (cart_view(state) for aggregate, state in states if aggregate == "cart") if v is not None]


class _Replaying(StatefulBatchLogic):
    """`Folded` as the logic of the one key a replay's records all go under, so its end is heard (`on_eof`)."""

    def __init__(self, folded: Folded, lake: bool, on_folded):
        self.folded, self.lake, self.on_folded = folded, lake, on_folded

    def on_batch(self, records: list[Record]) -> tuple[list, bool]:
        return self.folded.batch(records, self.lake), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list, bool]:
        if self.on_folded is not None:  # the window minutes are whole now, before the last rows are made
            self.on_folded(self.folded.minutes)
        return self.folded.rest(), StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        return None  # a replay has no recovery


def replay_flow(source, views, carts, lake=None, on_folded=None) -> tuple[Dataflow, Folded, list]:
    """The projection's fold over `source` into the `views`, `carts` and optional `lake` sinks, a batch of
    records at a time; returns the flow, what its fold keeps and the list its dead letters are collected
    in. `on_folded(minutes)` hears the window minutes (`Folded.minutes`, to be written once whole:
    sinks/window_rebuild.py) as soon as every record is folded, before the last rows are written.

    Not the live flow's keyed `stateful` step per aggregate: a replay is one worker per process (several
    processes split the aggregates between them, `Shard`) and has no recovery, so the states live in one
    dict, and Bytewax calls Python once per batch instead of a dozen times per event (a third of a replay's
    time). Rows are written once per aggregate, at its final state, not once per batch it changed in."""
    dead: list = []
    folded = Folded()
    flow = Dataflow("buyit_replay")
    records = op.key_on("all_in_one", op.input("read_events", flow, source), lambda record: "")
    outputs = op.map("unkeyed", op.stateful_batch("fold", records, lambda _: _Replaying(folded, lake is not None, on_folded)),
                     lambda kv: kv[1])
    kinds = {name: op.filter(f"{name}_only", outputs, lambda o, n=name: o[0] == n)
             for name in ("views", "carts", "lake", "dead")}
    # a row list per aggregate: the sink writes a batch at once, and each list alone if Postgres refuses it
    op.output("write_views", op.flat_map("view_rows", kinds["views"], lambda o: o[1]), views)
    op.output("write_cart_cache", op.flat_map("cart_views", kinds["carts"], lambda o: o[1]), carts)
    op.output("collect_dead_letters", op.flat_map("dead_letters", kinds["dead"], lambda o: o[1]), TestingSink(dead))
    if lake is not None:
        op.output("write_lake", op.flat_map("lake_items", kinds["lake"], lambda o: o[1]), lake)
    return flow, folded, dead


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
