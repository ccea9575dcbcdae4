"""Poison records: whatever lands on a topic, the dataflows carry on and the record goes to dead.letters."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Producer

from tests.helpers import eventually, read_topic
from tests.test_cart_api import listed_product

pytestmark = pytest.mark.integration


def produce(stack, topic: str, key: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": ",".join(stack.settings_for_children().brokers)})
    producer.produce(topic, value, key.encode())
    producer.flush(10)


def dead_letters_mentioning(stack, marker: str) -> list[dict]:
    return [d for d in read_topic(stack.settings_for_children().brokers, "dead.letters") if marker in json.dumps(d)]


def test_garbage_commands_are_dead_lettered_and_deciding_goes_on(stack, client):
    marker = uuid.uuid4().hex
    produce(stack, "catalog.commands", marker, f"not json {marker}".encode())
    produce(stack, "inventory.commands", marker, json.dumps({"eventId": marker, "type": "SetStock", "key": marker,
                                                              "occurredAt": "x", "payload": {"nope": 1}}).encode())
    assert len(eventually(lambda: len(dead_letters_mentioning(stack, marker)) >= 2
                          and dead_letters_mentioning(stack, marker), what="two dead letters"))
    listed_product(client, 3)  # the decision flow still decides
    stack.supervisor.check_alive()


def test_an_event_postgres_refuses_does_not_stop_the_views(stack, client):
    """A NUL byte is valid JSON but not valid Postgres text: the projection must skip it, not die."""
    key = str(uuid.uuid4())
    event = {"eventId": str(uuid.uuid4()), "type": "PRODUCT_CREATED", "key": key, "occurredAt": "2026-01-01T00:00:00Z",
             "correlationId": key, "causationId": None, "version": 1, "payload": {
                 "productId": key, "sellerId": "s", "sku": "NUL", "name": "bad\u0000name", "description": "",
                 "category": "", "priceCents": 1, "currency": "USD", "status": "ACTIVE", "imagePublicIds": [],
                 "createdAt": "2026-01-01T00:00:00Z"}}
    produce(stack, "catalog.events", key, json.dumps(event).encode())
    eventually(lambda: dead_letters_mentioning(stack, key), what="refused rows dead-lettered")
    seller, pid = listed_product(client, 2)  # views still follow
    stack.supervisor.check_alive()
