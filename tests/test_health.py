"""GET /health names every part it checks and goes 503, naming the culprit, when one is down. On the spare
stack (tests/conftest.py), never the session's: these tests stop its parts, and each leaves it healthy."""

from __future__ import annotations

import httpx
import pytest

from ingest_api.routes import system
from tests.helpers import eventually

pytestmark = pytest.mark.integration

PARTS = {"commands", "broker", "postgres", "redis", "projection"}


def health(stack) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{stack.api_ports[0]}/health", timeout=30)


def test_every_part_is_named_and_ok(spare_stack):
    r = health(spare_stack)
    assert r.status_code == 200, r.text
    assert r.json()["components"] == {part: "ok" for part in PARTS}


def test_an_aggregate_the_projection_cannot_keep_right_is_counted_stale_and_health_stays_ok(spare_stack):
    """An event with a gap before it (one missing from the log) is dead-lettered, its aggregate marked stale
    in `stale_aggregates`, and /health counts it while the projection carries on."""
    from confluent_kafka import Producer

    from buyit.envelope import Envelope
    before = health(spare_stack).json()["staleAggregates"]
    gap = Envelope(event_id="gap-1", type="StockCreated", key="gap-product", occurred_at="2026-01-01T00:00:00+00:00",
                   correlation_id="gap-1", causation_id=None, version=5,
                   payload={"productId": "gap-product", "sellerId": "s", "sku": "G", "lowStockThreshold": 5})
    producer = Producer({"bootstrap.servers": spare_stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    producer.produce("inventory.events", gap.encode(), b"gap-product")
    assert producer.flush(10) == 0
    r = eventually(lambda: (h := health(spare_stack)).json()["staleAggregates"] == before + 1 and h,
                   what="the aggregate counted stale")
    assert r.status_code == 200, r.text


def test_redis_down_is_named(spare_stack):
    spare_stack.supervisor.stop_one("valkey")
    try:
        r = health(spare_stack)
        assert r.status_code == 503
        parts = r.json()["components"]
        assert parts["redis"] != "ok" and all(parts[p] == "ok" for p in PARTS - {"redis"}), parts
    finally:
        spare_stack._start_redis()
    eventually(lambda: health(spare_stack).status_code == 200, what="healthy again")


def test_a_stopped_projection_is_named(spare_stack):
    spare_stack.supervisor.stop_one("dataflow-project")
    try:
        health(spare_stack)  # a ping the projection will not record
        r = eventually(lambda: (h := health(spare_stack)).status_code == 503 and h, timeout=system.PROJECTION_LAG_S + 30,
                       what="the projection reported behind")
        parts = r.json()["components"]
        assert parts["projection"].startswith("behind") and parts["commands"] == "ok", parts
    finally:
        spare_stack.start_dataflows(("project",))
    eventually(lambda: health(spare_stack).status_code == 200, timeout=60, what="healthy again")
