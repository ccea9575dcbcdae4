"""The projection trusts nothing: a gap in an aggregate's versions is reported, and an event its fold
refuses is dead-lettered and skipped, while every other aggregate's views go on. In process, no Kafka."""

from __future__ import annotations

import json

from bytewax.testing import TestingSink, TestingSource, run_main

from buyit.envelope import Envelope, to_wire
from dataflows.kafka_io import Record
from dataflows.project import build_flow
from sinks.views import Row
from state import inventory
from state.common import type_name


def record(key: str, version: int, event) -> Record:
    envelope = Envelope(event_id=f"{key}-{version}", type=type_name(event), key=key, occurred_at="2026-01-01T00:00:00",
                        correlation_id=f"{key}-{version}", causation_id=None, version=version, payload=to_wire(event))
    return Record("inventory.events", key, envelope.encode(), version)


def created(key):
    return inventory.StockCreated(product_id=key, seller_id="s", sku=key, low_stock_threshold=5)


def set_total(key, total, reserved=0):
    return inventory.StockUpdated(product_id=key, total_quantity=total, low_stock_threshold=5,
                                  levels=inventory.Levels(total, total - reserved, reserved, 0, 0))


def reserved(key, quantity):
    return inventory.StockReserved(product_id=key, reservation_id=f"r-{key}", cart_id="c", buyer_id="b",
                                   quantity=quantity, expires_at="2026-01-01T01:00:00+00:00", available=0)


def run(records: list[Record]) -> tuple[list[Row], list[dict]]:
    rows, dead, carts = [], [], []
    run_main(build_flow(TestingSource(records), TestingSink(rows), TestingSink(dead), TestingSink(carts)))
    return [r for batch in rows for r in batch], [json.loads(d[2]) for d in dead]


def stock_rows(rows: list[Row], key: str) -> list[dict]:
    return [r.values for r in rows if r.table == "stock" and r.values["product_id"] == key]


def stale_rows(rows: list[Row]) -> list[tuple]:
    return [(r.values["aggregate"], r.values["aggregate_id"], r.values["version"], r.values["reason"])
            for r in rows if r.table == "stale_aggregates"]


def test_an_event_the_fold_refuses_is_dead_lettered_and_the_rest_goes_on():
    rows, dead = run([
        record("p1", 1, created("p1")), record("p1", 2, set_total("p1", 3)),
        record("p1", 3, reserved("p1", 9)),  # more than there is: evolve refuses it
        record("p2", 1, created("p2")), record("p2", 2, set_total("p2", 5)),
    ])
    assert [(d["reason"], d["key"]) for d in dead] == [("projection_failed", "p1")]
    assert "available never negative" in dead[0]["error"]
    assert stale_rows(rows) == [("inventory", "p1", 3, "projection_failed")]
    assert stock_rows(rows, "p1")[-1]["total_quantity"] == 3 and stock_rows(rows, "p1")[-1]["version"] == 2
    assert stock_rows(rows, "p2")[-1]["total_quantity"] == 5  # the other product's views went on


def test_a_gap_in_the_versions_is_reported_not_hidden():
    rows, dead = run([record("p3", 1, created("p3")), record("p3", 3, set_total("p3", 4)),  # 2 never came
                      record("p3", 3, set_total("p3", 4))])  # and 3 again: a redelivery, skipped
    assert [(d["reason"], d["key"]) for d in dead] == [("version_gap", "p3")]
    assert "version 3 after 1" in dead[0]["error"]
    assert stale_rows(rows) == [("inventory", "p3", 3, "version_gap")]
    assert [(r["total_quantity"], r["version"]) for r in stock_rows(rows, "p3")] == [(0, 1), (4, 3)]


def test_a_batch_keeps_the_last_state_of_each_cart_of_a_buyer():
    """Coalescing a batch by aggregate must not drop a buyer's ended cart when the next one begins in it."""
    from dataflows.project import latest_states
    from state.cart import ACTIVE, COMPLETED, Cart
    first, done, second = (Cart(cart_id="c1", buyer_id="b", version=1), Cart(cart_id="c1", buyer_id="b", status=COMPLETED,
                                                                               version=2),
                           Cart(cart_id="c2", buyer_id="b", status=ACTIVE, version=3))
    batch = [("view", ("cart:b", ("cart", state))) for state in (first, done, second)]
    assert latest_states(batch) == [("cart", done), ("cart", second)]


def test_a_retrys_repeat_record_is_not_recorded_as_the_answer():
    """The answer recorded for a command is its first real answer; a retry's "repeat" never takes its place."""
    def result(kind: str, status: int) -> Record:
        envelope = Envelope(event_id=f"r-{kind}", type=kind, key="cmd-1", occurred_at="2026-01-01T00:00:00+00:00",
                            correlation_id="cmd-1", causation_id=None, version=None,
                            payload={"ok": True, "status": status, "body": None})
        return Record("command.results", "cmd-1", envelope.encode())
    rows, dead = run([result("CommandRepeated", 200), result("CommandSucceeded", 201)])
    answers = [json.loads(r.values["result"])["type"] for r in rows if r.table == "command_results"]
    assert answers == ["CommandSucceeded"] and dead == []


def test_a_retired_aggregate_keeps_its_rows_and_only_its_version_is_held():
    """`Retired` leaves the views as they were and holds a tombstone: a copy of an older event is skipped,
    and an event after it (the decider takes none) is reported."""
    from datetime import UTC, datetime

    from dataflows.project import fold
    from state.common import Retired, Tombstone
    rows, dead = run([record("p4", 1, created("p4")), record("p4", 2, set_total("p4", 7)),
                      record("p4", 3, Retired(retired_at=datetime(2026, 1, 1, 2, tzinfo=UTC))),
                      record("p4", 2, set_total("p4", 7)),  # a copy from before: skipped
                      record("p4", 4, set_total("p4", 1))])  # cannot be: reported, not applied
    assert [(r["total_quantity"], r["version"]) for r in stock_rows(rows, "p4")] == [(0, 1), (7, 2)]
    assert [(d["reason"], d["key"]) for d in dead] == [("after_retirement", "p4")]
    assert stale_rows(rows) == [("inventory", "p4", 4, "after_retirement")]
    envelope = Envelope(event_id="x", type="Retired", key="p5", occurred_at="2026-01-01T00:00:00+00:00",
                        correlation_id="x", causation_id=None, version=1, payload={"retiredAt": "2026-01-01T02:00:00+00:00"})
    held, outputs = fold(None, ("inventory", envelope, envelope.message(), True))
    assert isinstance(held, Tombstone) and held.version == 1 and outputs == []
