"""The decision dataflow hands a saga command to a later step inside the flow, not through Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bytewax.testing import TestingSink, TestingSource, run_main

from buyit.envelope import command_envelope, commands_topic, decode
from dataflows.decide import STAGES, build_flow
from dataflows.kafka_io import Record
from state.common import SYSTEM, Actor, BUYER
from state.cart import AddCartItem
from state.inventory import CreateStock, SetStock
from tests.state.given import PRODUCT_ID, SELLER_ID, SKU

BUYER_ID = "buyer-flow"
NOW = datetime.now(UTC)  # the operator's timers read the wall clock: nothing may be due during the run


def record(aggregate: str, key: str, command) -> Record:
    return Record(commands_topic(aggregate), key, command_envelope(command, key).encode())


def run(records: list[Record]) -> list[tuple[str, str, bytes]]:
    out: list = []
    run_main(build_flow(TestingSource(records), TestingSink(out)), epoch_interval=timedelta(0))
    return out


def types(outputs, topic: str) -> list[str]:
    return [decode(value).type for t, _, value in outputs if t == topic]


def stocked(units: int) -> list[Record]:
    return [record("inventory", PRODUCT_ID, CreateStock(command_id="create-stock", now=NOW, product_id=PRODUCT_ID,
                                                         seller_id=SELLER_ID, sku=SKU)),
            record("inventory", PRODUCT_ID, SetStock(command_id="set-stock", now=NOW, actor=SYSTEM,
                                                      product_id=PRODUCT_ID, total_quantity=units))]


def add(quantity: int, command_id: str = "add-1") -> Record:
    return record("cart", BUYER_ID, AddCartItem(
        command_id=command_id, now=NOW, actor=Actor(BUYER_ID, BUYER), buyer_id=BUYER_ID, product_id=PRODUCT_ID,
        sku=SKU, seller_id=SELLER_ID, price_cents=500, currency="USD", quantity=quantity, reservation_ttl_s=900,
        cart_ttl_s=900))


def test_saga_steps_run_forward_except_new_stock():
    assert STAGES.index("cart") < STAGES.index("order") < STAGES.index("inventory")
    assert STAGES.index("order") < STAGES.index("payment") and STAGES.index("order") < STAGES.index("ledger")
    # a seller's answer must not overtake its product's stock record: that hop stays on Kafka
    assert STAGES.index("catalog") > STAGES.index("inventory")


def test_a_cart_add_reserves_stock_in_the_same_pass():
    outputs = run([*stocked(3), add(2)])
    assert types(outputs, "cart.events") == ["CartCreated", "CartItemRequested"]
    assert "StockReserved" in types(outputs, "inventory.events")
    # handed on inside the flow: no ReserveStock record goes out to Kafka and back
    assert types(outputs, "inventory.commands") == []
    # the answer back to the cart runs against the DAG, so it goes through the cart's topic
    assert types(outputs, "cart.commands") == ["ConfirmReservation"]


def test_a_refusal_in_the_later_step_answers_the_request():
    outputs = run([*stocked(1), add(5)])
    assert "ReservationRefused" in types(outputs, "inventory.events")
    answers = [decode(v) for t, _, v in outputs if t == "command.results" and decode(v).correlation_id == "add-1"]
    assert len(answers) == 1 and answers[0].payload["error"] == "insufficient_stock", answers
    assert types(outputs, "cart.commands") == ["RefuseReservation"]
