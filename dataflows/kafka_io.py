"""Kafka in and out for the dataflows.

The source reads many topics through one consumer per partition index (not one
consumer per topic-partition, as Bytewax's `KafkaSource` does): with a dozen
topics that keeps idle polling cheap and the request/reply latency low. It is
assign-based (no consumer group to rebalance) and its offsets live in the
dataflow's recovery snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from buyit.clients import consumer_config, producer_config
from buyit.envelope import RESULTS

from buyit.settings import get_settings

# How long one `next_batch` may block waiting for the first record. poll() returns on the first record,
# so this only bounds how late an idle worker runs its timers and exchanges.
POLL_S = 0.05


@dataclass(frozen=True)
class Record:
    """One record read from Kafka (or a read error, with `error` set)."""

    topic: str
    key: str | None
    value: bytes | None
    offset: int = -1
    error: str | None = None


class _TopicsPartition(StatefulSourcePartition):
    def __init__(self, brokers: list[str], topics: list[str], index: int, resume: dict | None, batch: int,
                 tail: bool, poll_s: float):
        self._consumer = Consumer(consumer_config(brokers, "buyit-dataflow"))
        self._next = dict(resume or {})
        self._consumer.assign([TopicPartition(t, index, self._next.get(t, OFFSET_BEGINNING)) for t in topics])
        self._batch = batch
        self._poll_s = poll_s
        # Not tailing (a backfill): stop at the end each topic had when we started.
        self._until = None if tail else {
            t: self._consumer.get_watermark_offsets(TopicPartition(t, index), timeout=10)[1] for t in topics}

    def next_batch(self) -> list[Record]:
        if self._until is not None and all(self._next.get(t, 0) >= end for t, end in self._until.items()):
            raise StopIteration()
        out = []
        first = self._consumer.poll(self._poll_s)  # returns on the first record, unlike consume()'s timeout
        if first is None:
            return out
        for msg in [first, *self._consumer.consume(self._batch - 1, 0)]:
            err = msg.error()
            if err is not None:
                if err.code() in (-191,):  # partition EOF, not an error
                    continue
                out.append(Record(msg.topic() or "?", None, None, -1, str(err)))
                continue
            self._next[msg.topic()] = msg.offset() + 1
            key = msg.key()
            out.append(Record(msg.topic(), key.decode("utf-8", "replace") if key else None, msg.value(),
                              msg.offset()))
        return out

    def snapshot(self) -> dict:
        return dict(self._next)

    def close(self) -> None:
        self._consumer.close()


class TopicsSource(FixedPartitionedSource):
    """Reads `topics` from the beginning (or the snapshot's offsets) and keeps tailing them (or, with
    `tail=False`, stops at the ends they had when it started)."""

    def __init__(self, brokers: list[str], topics: list[str], partitions: int, batch: int = 500, tail: bool = True):
        self._brokers, self._topics, self._partitions, self._batch = brokers, topics, partitions, batch
        self._tail = tail

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: dict | None) -> _TopicsPartition:
        # A worker polls its partitions in turn: split the wait so one idle partition never holds up another.
        return _TopicsPartition(self._brokers, self._topics, int(for_part), resume_state, self._batch, self._tail,
                                POLL_S / self._partitions)


def kafka_source(topics: list[str], tail: bool = True) -> TopicsSource:
    settings = get_settings()
    return TopicsSource(settings.brokers, topics, settings.buyit_topic_partitions, tail=tail)


class _FactsFirstPartition(StatelessSinkPartition):
    def __init__(self, brokers: list[str]):
        self._producer = Producer(producer_config(brokers))

    def write_batch(self, items: list[KafkaSinkMessage]) -> None:
        # Records on different partitions have no order, so answers go out only once the events and
        # saga commands they answer for are stored: a client acting on an answer (setting stock right
        # after creating a product, paying right after checkout) can never overtake them.
        answers = [m for m in items if m.topic == RESULTS]
        for phase in ([m for m in items if m.topic != RESULTS], answers):
            if not phase:
                continue
            for msg in phase:
                self._producer.produce(msg.topic, msg.value, msg.key)
                self._producer.poll(0)
            if self._producer.flush(30) > 0:
                raise RuntimeError("Kafka did not acknowledge the dataflow's output in 30 s")

    def close(self) -> None:
        self._producer.flush(30)


class FactsFirstKafkaSink(DynamicSink):
    """Writes (topic, key, value) outputs, each to its own topic; answers after the facts."""

    def __init__(self, brokers: list[str]):
        self._brokers = brokers

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FactsFirstPartition:
        return _FactsFirstPartition(self._brokers)


def kafka_sink() -> FactsFirstKafkaSink:
    return FactsFirstKafkaSink(get_settings().brokers)


def to_sink_message(output: tuple[str, str, bytes]) -> KafkaSinkMessage:
    topic, key, value = output
    return KafkaSinkMessage(key=key.encode(), value=value, topic=topic)
