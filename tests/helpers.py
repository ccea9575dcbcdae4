"""Test helpers: waiting on conditions with a deadline, minting tokens, a tiny PNG."""

from __future__ import annotations

import base64
import time
from typing import Callable, TypeVar

T = TypeVar("T")

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def eventually(probe: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    """Call `probe` until it returns something truthy without raising; fail after `timeout` seconds.

    A probe that looks up what is not there yet (IndexError, KeyError) counts as not yet true: views
    catch up with the decisions after the command was answered."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except (AssertionError, LookupError) as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what or probe}; last: {last!r}")
        time.sleep(interval)


def read_topic(brokers: list[str], topic: str, timeout: float = 2.0) -> list[dict]:
    """Every record on `topic` (all partitions, from the beginning, up to each one's end when called), decoded
    as JSON; fails rather than answer with part of it."""
    import json

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": ",".join(brokers), "group.id": "buyit-tests",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out, done, deadline = [], {p: ends[p] <= 0 for p in parts}, time.monotonic() + timeout + 10
        while not all(done.values()) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.1):
                if msg.error():
                    continue
                out.append(json.loads(msg.value()))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done[msg.partition()] = True
        if not all(done.values()):  # a partial read would let a check pass on what it never saw
            behind = sorted(p for p, ok in done.items() if not ok)
            raise AssertionError(f"{topic}: partitions {behind} not read to their end offsets in {timeout + 10:.0f}s")
        return out
    finally:
        consumer.close()
