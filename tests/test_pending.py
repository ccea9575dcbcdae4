"""When a result is slower than the API's wait, the answer is 202 with a link that later gives the result."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import Client, test_settings as stack_settings
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def impatient_stack():
    """A stack whose API does not wait for results at all."""
    from buyit.stack import Stack
    data = Path(tempfile.mkdtemp(prefix="buyit-202-"))
    running = Stack(stack_settings(data, buyit_command_wait_s=0.0)).start()
    yield running
    running.stop()
    shutil.rmtree(data, ignore_errors=True)


def test_202_then_poll_for_the_result(impatient_stack):
    seller = Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
    r = seller.post("/api/catalog/products", json={"sku": "P-1", "name": "Slow", "priceCents": 100,
                                                    "currency": "USD", "status": "ACTIVE"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["error"] == "pending" and r.headers["Location"] == f"/api/commands/{body['commandId']}"
    done = eventually(lambda: (p := seller.get(r.headers["Location"])).status_code == 200 and p.json(),
                      what="the polled result")
    assert done["sku"] == "P-1" and done["sellerId"] == seller.user_id
    rejected = seller.post("/api/catalog/products", json={"sku": "P-1", "name": "Again", "priceCents": 1,
                                                           "currency": "USD"})
    assert rejected.status_code == 202
    answer = eventually(lambda: (p := seller.get(rejected.headers["Location"])).status_code == 409 and p.json(),
                        what="the polled rejection")
    assert answer["error"] == "sku_taken"
    assert Client(impatient_stack).get(r.headers["Location"]).status_code == 401
    other = Client(impatient_stack, f"seller-{uuid.uuid4().hex[:8]}", "SELLER")
    assert other.get(r.headers["Location"]).status_code == 404  # not another caller's answer
    assert Client(impatient_stack, "admin-1", "ADMIN").get(r.headers["Location"]).status_code == 200
