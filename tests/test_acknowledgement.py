"""The API says "accepted" (2xx or 202) only of a command the broker acknowledged; otherwise 503 with
Retry-After, and the producer has dropped the command by then, so it is never delivered afterwards."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from buyit.processes import free_port
from ingest_api.bus import CommandBus, NotAcknowledged, delivery_timeout_ms
from state.cart import AddCartItem


def _command() -> AddCartItem:
    return AddCartItem(command_id=str(uuid.uuid4()), now=datetime.now(UTC), buyer_id="b1", product_id="p1", sku="S1",
                       seller_id="s1", price_cents=100, currency="USD",
                       quantity=1, reservation_ttl_s=900, cart_ttl_s=3600)


@pytest.mark.parametrize("wait", [True, False])
def test_an_unacknowledged_command_is_refused_and_never_delivered_later(wait):
    nobody = f"127.0.0.1:{free_port()}"  # no broker listens here
    wait_s = 3.0
    bus = CommandBus([nobody], 1.0, ack_wait_s=wait_s)

    async def attempt():
        bus._loop = asyncio.get_running_loop()
        poller = threading.Thread(target=bus._deliver, daemon=True)
        poller.start()
        started = time.monotonic()
        try:
            with pytest.raises(NotAcknowledged):
                await bus.send("cart", "b1", _command(), wait=wait)
            return time.monotonic() - started
        finally:
            bus._stop.set()
            poller.join(5)

    took = asyncio.run(attempt())
    assert took <= wait_s + 0.5, took
    # By the time the caller hears 503 the producer has given the record up: nothing left to send later.
    assert bus._producer.flush(1) == 0
    assert delivery_timeout_ms(wait_s) < wait_s * 1000


def test_503_carries_retry_after():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from ingest_api import errors
    from ingest_api.errors import ApiError
    app = FastAPI()
    errors.install(app)

    @app.get("/x")
    async def x():
        raise ApiError(503, "unavailable", "the command could not be accepted", retry_after=2)
    r = TestClient(app).get("/x")
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert r.json() == {"error": "unavailable", "message": "the command could not be accepted"}


def test_no_202_for_a_command_the_broker_has_not_acknowledged_yet():
    """The answer is late and the broker has not acknowledged the command either: that is a 503, not a 202."""
    bus = CommandBus([f"127.0.0.1:{free_port()}"], 0.3, ack_wait_s=0.6)

    async def attempt():
        bus._loop = asyncio.get_running_loop()
        with pytest.raises(NotAcknowledged):
            await bus.send("cart", "b1", _command())
    asyncio.run(attempt())
    bus._producer.purge()


@pytest.mark.integration
@pytest.mark.parametrize("wait", [True, False], ids=["answer_late", "no_wait"])
def test_a_command_the_broker_holds_is_accepted_as_soon_as_the_answer_is_late(stack, wait):
    """No answer in time (this bus reads no results), but the broker acknowledged the command: None (a 202)
    when the wait for the answer ends, whether the acknowledgement came before that or after."""
    from state.health import Ping
    bus = CommandBus(stack.env["KAFKA_BOOTSTRAP_SERVERS"].split(","), 1.0, ack_wait_s=4.0)

    async def attempt():
        bus._loop = asyncio.get_running_loop()
        poller = threading.Thread(target=bus._deliver, daemon=True)
        poller.start()
        try:
            started = time.monotonic()
            answer_wait = 0.5 if wait else 0.0
            result = await bus.send("health", "ack-test", Ping(command_id=str(uuid.uuid4()), now=datetime.now(UTC)),
                                    wait=wait, timeout=answer_wait)
            return result, time.monotonic() - started - answer_wait
        finally:
            bus._stop.set()
            poller.join(5)

    result, after_the_wait = asyncio.run(attempt())
    assert result is None
    assert after_the_wait < 1.0, after_the_wait  # not the whole ack_wait_s
