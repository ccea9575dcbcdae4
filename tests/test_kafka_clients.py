"""Any Kafka client reads our topics: kafka-python (pure Python) and kcat (librdkafka) list and read them."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from buyit.envelope import all_topics
from state.catalog import ProductCreated
from state.common import type_name
from tests.helpers import eventually

CREATED = type_name(ProductCreated)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def product_created(stack):
    """A product whose ProductCreated record is on `catalog.events`."""
    import httpx

    from buyit.identity import mint
    token = mint(stack.settings, "clients-seller", "SELLER")
    r = httpx.post(f"http://127.0.0.1:{stack.api_ports[0]}/api/catalog/products", timeout=30,
                   headers={"Authorization": f"Bearer {token}"},
                   json={"sku": "CLIENTS-1", "name": "Read me", "priceCents": 100, "currency": "USD"})
    assert r.status_code == 201, r.text
    return r.json()["productId"]


def test_kafka_python_lists_and_reads_the_topics(stack, product_created):
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"], consumer_timeout_ms=2000,
                             enable_auto_commit=False)
    try:
        assert set(all_topics()) <= consumer.topics()
        part = TopicPartition("catalog.events", 0)
        consumer.assign([part])
        consumer.seek_to_beginning(part)

        def created():
            return [r for r in consumer if json.loads(r.value)["key"] == product_created
                    and json.loads(r.value)["type"] == CREATED]
        assert eventually(created, what="ProductCreated read by kafka-python")
    finally:
        consumer.close()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)")
def test_kcat_lists_and_reads_the_topics(stack, product_created):
    brokers = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    listing = subprocess.run(["kcat", "-b", brokers, "-L", "-J"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert set(all_topics()) <= {t["topic"] for t in json.loads(listing.stdout)["topics"]}
    read = subprocess.run(["kcat", "-b", brokers, "-C", "-t", "catalog.events", "-o", "beginning", "-e", "-q"],
                          capture_output=True, text=True, timeout=30)
    assert read.returncode == 0, read.stderr
    records = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]
    assert any(r["key"] == product_created and r["type"] == CREATED for r in records), read.stdout[-2000:]
