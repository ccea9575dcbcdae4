"""The dataflows' Kafka sink publishes answers only after the facts they answer for are stored."""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSinkMessage

from dataflows.kafka_io import _FactsFirstPartition


class RecordingProducer:
    def __init__(self):
        self.calls: list[tuple] = []

    def produce(self, topic, value, key):
        self.calls.append(("produce", topic))

    def poll(self, timeout):
        pass

    def flush(self, timeout):
        self.calls.append(("flush",))
        return 0


def test_results_go_out_after_the_events_and_saga_commands_are_flushed():
    partition = _FactsFirstPartition.__new__(_FactsFirstPartition)
    partition._producer = RecordingProducer()
    partition.write_batch([KafkaSinkMessage(b"k", b"v", topic=t) for t in
                           ("catalog.events", "command.results", "inventory.commands", "command.results")])
    assert partition._producer.calls == [
        ("produce", "catalog.events"), ("produce", "inventory.commands"), ("flush",),
        ("produce", "command.results"), ("produce", "command.results"), ("flush",)]
