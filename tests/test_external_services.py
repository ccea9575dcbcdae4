"""Configured URLs replace the embedded parts: nothing embedded is started, and everything still works."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import Client, test_settings as stack_settings
from tests.helpers import eventually
from tests.payments import pay

pytestmark = pytest.mark.integration


def test_a_stack_on_external_kafka_postgres_redis_and_stripe():
    from buyit.stack import Stack
    outside_dir, inside_dir = (Path(tempfile.mkdtemp(prefix=f"buyit-{n}-")) for n in ("ext", "app"))
    outside = Stack(stack_settings(outside_dir), api=False, dataflows=False)
    inside = None
    try:
        outside.start()  # stands in for a company's own Kafka, Postgres, Redis and Stripe
        env = outside.env
        inside = Stack(stack_settings(inside_dir, kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                                      database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"],
                                      stripe_api_base=env["STRIPE_API_BASE"]))
        inside.start()
        assert {c.name for c in inside.supervisor.children} == {"dataflow-decide", "dataflow-project", "dataflow-payments", "api"}

        seller = Client(inside, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
        pid = seller.post("/api/catalog/products", json={"sku": "X-1", "name": "External", "priceCents": 500,
                                                          "currency": "USD", "status": "ACTIVE"}).json()["productId"]
        eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").status_code == 200)
        assert seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 3}).status_code == 200
        buyer = Client(inside, f"buyer-{uuid.uuid4().hex[:8]}", "BUYER")
        eventually(lambda: buyer.post("/api/cart/items", json={"productId": pid, "quantity": 1}).status_code == 201)
        answer = buyer.post("/api/cart/checkout").json()
        intent = pay(inside, answer["clientSecret"])  # the configured Stripe, not an embedded one
        assert intent.startswith("pi_")
    finally:
        if inside is not None:
            inside.stop()
        outside.stop()
        shutil.rmtree(outside_dir, ignore_errors=True)
        shutil.rmtree(inside_dir, ignore_errors=True)
