"""The dataflows' Kafka sink publishes answers only after the facts they answer for are stored,
and a recovery snapshot is taken only once everything written before it is stored."""

from __future__ import annotations

import threading

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage

from dataflows.kafka_io import _FactsFirstPartition


class SlowKafka:
    """A producer whose delivery reports come only when the test says the broker stored a record."""

    def __init__(self):
        self.sent: list[str] = []
        self.waiting: list = []  # delivery callbacks of records not yet stored
        self.lock = threading.Lock()
        self.fail_with = None

    def produce(self, topic, value, key, on_delivery=None):
        with self.lock:
            self.sent.append(topic)
            if on_delivery is not None:
                self.waiting.append(on_delivery)

    def store(self, count: int | None = None) -> None:
        """The broker stores the oldest `count` records (all by default): their reports arrive."""
        with self.lock:
            done = self.waiting[:count] if count is not None else list(self.waiting)
            del self.waiting[:len(done)]
        for report in done:
            report(self.fail_with, None)

    def poll(self, timeout):
        threading.Event().wait(min(timeout, 0.01))
        return 0

    def flush(self, timeout):
        self.store()
        return 0

    def __len__(self):
        return len(self.waiting)


def messages(*topics: str) -> list[KafkaSinkMessage]:
    return [KafkaSinkMessage(b"k", b"v", topic=t) for t in topics]


@pytest.fixture
def sink():
    kafka = SlowKafka()
    partition = _FactsFirstPartition(kafka)
    yield partition, kafka
    partition._closing.set()


def test_an_answer_waits_until_every_earlier_fact_is_stored(sink):
    partition, kafka = sink
    partition.write_batch(messages("catalog.events", "inventory.commands", "command.results"))
    assert kafka.sent == ["catalog.events", "inventory.commands"]  # the answer is held
    kafka.store(1)
    assert kafka.sent == ["catalog.events", "inventory.commands"]  # one fact is still in flight
    kafka.store(1)
    assert kafka.sent == ["catalog.events", "inventory.commands", "command.results"]


def test_an_answer_with_nothing_in_flight_goes_at_once_and_later_facts_do_not_hold_it(sink):
    partition, kafka = sink
    partition.write_batch(messages("command.results", "cart.events"))
    assert kafka.sent == ["command.results", "cart.events"]


def test_answers_keep_their_place_behind_their_own_facts(sink):
    partition, kafka = sink
    partition.write_batch(messages("cart.events", "command.results"))
    partition.write_batch(messages("order.events", "command.results"))
    kafka.store(1)  # the first answer's fact is stored, the second's not yet
    assert kafka.sent == ["cart.events", "order.events", "command.results"]
    kafka.store()
    assert kafka.sent.count("command.results") == 2


def test_a_snapshot_returns_only_once_everything_is_stored(sink):
    partition, kafka = sink
    partition.write_batch(messages("cart.events", "command.results"))
    partition.snapshot()
    assert kafka.waiting == [] and kafka.sent == ["cart.events", "command.results"]


def test_a_refused_record_stops_the_dataflow(sink):
    partition, kafka = sink
    kafka.fail_with = "MSG_SIZE_TOO_LARGE"
    partition.write_batch(messages("cart.events"))
    kafka.store()
    with pytest.raises(RuntimeError, match="MSG_SIZE_TOO_LARGE"):
        partition.write_batch(messages("cart.events"))
