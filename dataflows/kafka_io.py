"""Kafka in and out for the dataflows.

The source reads many topics through one consumer per partition index (not one
consumer per topic-partition, as Bytewax's `KafkaSource` does): with a dozen
topics that keeps idle polling cheap and the request/reply latency low. It is
assign-based (no consumer group to rebalance) and its offsets live in the
dataflow's recovery snapshots.
"""

from __future__ import annotations

import heapq
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from buyit.clients import IDLE_POLL_S, consumer_config, producer_config
from buyit.envelope import RESULTS
from buyit.settings import get_settings

# How long one `next_batch` may block waiting for the first record. poll() returns on the first record,
# so this only bounds how late an idle worker runs its timers and exchanges. A worker of a cluster must take
# records other workers exchange to it promptly (a request may wait on them); a lone worker has no exchanges,
# and waking it twenty times a second only burns an idle stack's CPU (timers are whole seconds): it blocks for
# `IDLE_POLL_S`, a cluster's worker for this.
POLL_S = 0.05


@dataclass(frozen=True)
class Shard:
    """One of `of` processes that split a replay's aggregates between them: each reads every record and
    keeps those whose key falls to it. A record's key is its aggregate's id (a command's answer: the
    command's id), so an aggregate's events all fall to one process, in log order."""

    index: int
    of: int

    def holds(self, key: bytes | None) -> bool:
        return zlib.crc32(key or b"") % self.of == self.index


@dataclass(frozen=True)
class Record:
    """One record read from Kafka (or a read error, with `error` set)."""

    topic: str
    key: str | None
    value: bytes | None
    offset: int = -1
    error: str | None = None
    fresh: bool = True  # False: read by a replay before its `--since` point, folded but not written


class _TopicsPartition(StatefulSourcePartition):
    def __init__(self, brokers: list[str], topics: list[str], index: int, resume: dict | None, batch: int,
                 tail: bool, poll_s: float, fetch: dict, bounds: "Bounds | None" = None, shard: Shard | None = None):
        self._consumer = Consumer(consumer_config(brokers, "buyit-dataflow", **fetch))
        # A replay starts where each log begins (retention may have removed its head), so an emptied log ends it.
        self._next = {**({t: bounds.starts[(t, index)] for t in topics} if bounds else {}), **(resume or {})}
        self._consumer.assign([TopicPartition(t, index, self._next.get(t, OFFSET_BEGINNING)) for t in topics])
        self._batch = batch
        self._poll_s = poll_s
        self._index = index
        self._bounds = bounds
        # Not tailing (a replay): stop at the end each topic had when it started (the replay's plan, which
        # its progress bar counts against, or else the ends now).
        self._until = None if tail else {
            t: bounds.ends[(t, index)] if bounds else
            self._consumer.get_watermark_offsets(TopicPartition(t, index), timeout=10)[1] for t in topics}
        self._since = {t: bounds.since.get((t, index), 0) for t in topics} if bounds else None
        self._shard = shard

    def next_batch(self) -> list[Record]:
        if self._until is not None and all(self._next.get(t, 0) >= end for t, end in self._until.items()):
            raise StopIteration()
        out = []
        first = self._consumer.poll(self._poll_s)  # returns on the first record, unlike consume()'s timeout
        if first is None:
            return out
        since, until, shard = self._since, self._until, self._shard
        for msg in [first, *self._consumer.consume(self._batch - 1, 0)]:
            err = msg.error()
            if err is not None:
                if err.code() in (-191,):  # partition EOF, not an error
                    continue
                out.append(Record(msg.topic() or "?", None, None, -1, str(err)))
                continue
            topic, offset = msg.topic(), msg.offset()
            self._next[topic] = offset + 1
            if until is not None and offset >= until[topic]:  # produced after the replay began: not its business
                continue
            key = msg.key()
            if shard is not None and not shard.holds(key):
                continue
            out.append(Record(topic, key.decode("utf-8", "replace") if key else None, msg.value(), offset,
                              fresh=since is None or offset >= since[topic]))
        if self._bounds is not None and self._bounds.on_read is not None:
            self._bounds.on_read(self._index, self._next)
        return out

    def snapshot(self) -> dict:
        return dict(self._next)

    def close(self) -> None:
        self._consumer.close()


@dataclass(frozen=True)
class Bounds:
    """What a replay reads: from `starts` up to `ends` ((topic, partition) -> offset), marking records before
    `since` (same keys) as not fresh, and telling `on_read(partition, next offsets by topic)` after each batch."""

    starts: dict[tuple[str, int], int]
    ends: dict[tuple[str, int], int]
    since: dict[tuple[str, int], int]
    on_read: object = None


class TopicsSource(FixedPartitionedSource):
    """Reads `topics` from the beginning (or the snapshot's offsets) and keeps tailing them (or, with
    `tail=False`, stops at the ends they had when it started, or those `bounds` names); with `shard`, only
    the records whose key falls to it."""

    def __init__(self, brokers: list[str], topics: list[str], partitions: int, batch: int = 500, tail: bool = True,
                 fetch: dict | None = None, bounds: Bounds | None = None, poll_s: float = POLL_S,
                 shard: Shard | None = None):
        self._brokers, self._topics, self._partitions, self._batch = brokers, topics, partitions, batch
        self._tail, self._fetch, self._bounds, self._poll_s, self._shard = tail, fetch or {}, bounds, poll_s, shard

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: dict | None) -> _TopicsPartition:
        # A worker polls its partitions in turn: split the wait so one idle partition never holds up another.
        return _TopicsPartition(self._brokers, self._topics, int(for_part), resume_state, self._batch, self._tail,
                                self._poll_s / self._partitions, self._fetch, self._bounds, self._shard)


# A reader nobody waits on (the projection) lets the broker gather records: a fetch returns once 64 KiB
# are there or 250 ms have passed. Under load that is one fetch per 64 KiB instead of one per record
# or two, which is most of what the broker spends on that reader; the views trail by at most 250 ms
# (100 ms cost an idle stack 0.6 % of a core in fetches).
BATCHED_FETCH = {"fetch.min.bytes": 65536, "fetch.wait.max.ms": 250}


def kafka_source(topics: list[str], tail: bool = True, batched: bool = False, clustered: bool = False) -> TopicsSource:
    """A source over `topics`; `batched` for readers that favour fewer, larger fetches over latency,
    `clustered` for a dataflow run as a cluster of several workers."""
    settings = get_settings()
    return TopicsSource(settings.brokers, topics, settings.buyit_topic_partitions, tail=tail,
                        fetch=BATCHED_FETCH if batched else None, poll_s=POLL_S if clustered else IDLE_POLL_S)


class _FactsFirstPartition(StatefulSinkPartition):
    """Produces without waiting, so the producer batches records (linger.ms) and the worker keeps
    deciding. Records on different partitions have no order, so an answer goes out only once every
    fact (event, saga command) produced before it is acknowledged: a client acting on an answer
    (setting stock right after creating a product, paying right after checkout) never overtakes them.
    `snapshot` waits until everything is acknowledged, so a recovery snapshot never covers a record
    Kafka does not hold."""

    def __init__(self, producer):
        self._producer = producer
        self._lock = threading.Lock()
        self._produced = 0  # facts produced so far; each is numbered
        self._unacked: list[int] = []  # heap of fact numbers not yet acknowledged
        self._acked: set[int] = set()  # acknowledged, still in the heap
        self._held: deque = deque()  # (number of the last fact before it, answer)
        self._failure: str | None = None
        # Delivery reports arrive through poll(); this thread serves them while the worker is idle, so
        # a held answer goes out as soon as its facts are stored, not at the next batch.
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="facts-first-reports", daemon=True)
        self._poller.start()

    def write_batch(self, items: list[KafkaSinkMessage]) -> None:
        self._raise_if_failed()
        for msg in items:
            if msg.topic == RESULTS:
                with self._lock:
                    if self._unacked:
                        self._held.append((self._produced, msg))
                        continue
                self._produce(msg)
            else:
                with self._lock:
                    self._produced += 1
                    number = self._produced
                    heapq.heappush(self._unacked, number)
                self._produce(msg, lambda err, _msg, number=number: self._stored(number, err))
        self._producer.poll(0)

    def snapshot(self) -> None:
        """Called at the end of every epoch, before its recovery snapshot is written."""
        deadline = time.monotonic() + 60
        while self._unacked or self._held or len(self._producer) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("Kafka did not acknowledge the dataflow's output in 60 s")
            self._producer.flush(1)
            self._raise_if_failed()
        return None

    def close(self) -> None:
        self.snapshot()
        self._closing.set()

    def _serve_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(IDLE_POLL_S)

    def _produce(self, msg: KafkaSinkMessage, on_delivery=None) -> None:
        while True:
            try:
                if on_delivery is None:
                    self._producer.produce(msg.topic, msg.value, msg.key)
                else:
                    self._producer.produce(msg.topic, msg.value, msg.key, on_delivery=on_delivery)
                return
            except BufferError:  # the producer's queue is full: let it drain
                self._producer.poll(0.1)

    def _stored(self, number: int, err) -> None:
        """A fact's delivery report: release the answers every earlier fact now backs."""
        with self._lock:
            if err is not None:
                self._failure = str(err)
            self._acked.add(number)
            while self._unacked and self._unacked[0] in self._acked:
                self._acked.discard(heapq.heappop(self._unacked))
            lowest = self._unacked[0] if self._unacked else None
            ready = []
            while self._held and (lowest is None or self._held[0][0] < lowest):
                ready.append(self._held.popleft()[1])
        for msg in ready:
            self._produce(msg)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"Kafka refused the dataflow's output: {self._failure}")


class FactsFirstKafkaSink(FixedPartitionedSink):
    """Writes (route key, (topic, key, value)) outputs, each to its own topic; answers after the facts.

    One sink partition per topic partition, chosen by the route key (the aggregate that decided), so
    a decision's facts and its answer share a partition and its ordering; its position is nothing
    but "everything before this snapshot is stored"."""

    def __init__(self, brokers: list[str], partitions: int):
        self._brokers, self._partitions = brokers, partitions

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _FactsFirstPartition:
        # linger: records produced within 2 ms share one request, which is most of what the broker costs
        return _FactsFirstPartition(Producer(producer_config(self._brokers, **{"linger.ms": 2})))


def kafka_sink() -> FactsFirstKafkaSink:
    settings = get_settings()
    return FactsFirstKafkaSink(settings.brokers, settings.buyit_topic_partitions)


def to_sink_message(output: tuple[str, str, bytes]) -> KafkaSinkMessage:
    topic, key, value = output
    return KafkaSinkMessage(key=key.encode(), value=value, topic=topic)


def keyed_sink_message(routed: tuple[str, tuple[str, str, bytes]]) -> tuple[str, KafkaSinkMessage]:
    """(route key, output) -> (route key, message) for `FactsFirstKafkaSink`."""
    return (routed[0], to_sink_message(routed[1]))
