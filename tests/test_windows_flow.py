"""The projection's per-minute windows, in process: running counts, a closed minute, a late fact."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bytewax.testing import TestingSink, TestingSource, run_main

from buyit.envelope import Envelope, to_wire
from dataflows.kafka_io import Record
from dataflows.project import build_flow
from state import inventory
from state.common import type_name

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(key: str, version: int, event, at: datetime) -> Record:
    envelope = Envelope(event_id=f"{key}-{version}", type=type_name(event), key=key, occurred_at=at.isoformat(),
                        correlation_id=f"{key}-{version}", causation_id=None, version=version, payload=to_wire(event))
    return Record("inventory.events", key, envelope.encode(), version)


def reserve(rid: str):
    return inventory.StockReserved(product_id="p1", reservation_id=rid, cart_id=f"c-{rid}", buyer_id="b", quantity=1,
                                   expires_at=T0 + timedelta(hours=1), available=0)


def expire(rid: str):
    return inventory.ReservationExpired(product_id="p1", reservation_id=rid, holder_id=f"c-{rid}", buyer_id="b",
                                        quantity=1, kind=inventory.SOFT, available=1)


def run(records):
    views, dead, windows = [], [], []
    flow = build_flow(TestingSource(records), TestingSink(views), TestingSink(dead), TestingSink([]),
                      windows_sink=TestingSink(windows))
    run_main(flow)
    rows = [r for batch in views for r in batch if r.table == "sales_minutes"]
    return rows, [json.loads(w[2]) for w in windows], dead


def final(rows, product_id="p1"):
    """The newest version of each (minute, part) row, as the version-guarded upsert keeps it."""
    kept: dict = {}
    for r in rows:
        v = r.values
        if v["product_id"] == product_id:
            ident = (v["window_start"], v["part"])
            if ident not in kept or kept[ident]["version"] <= v["version"]:
                kept[ident] = v
    return kept


def test_minutes_fill_close_and_a_late_fact_lands_in_its_minute_s_late_part():
    records = [
        record("p1", 1, inventory.StockCreated(product_id="p1", seller_id="s1", sku="p1", low_stock_threshold=5), T0),
        record("p1", 2, inventory.StockUpdated(product_id="p1", total_quantity=5, low_stock_threshold=5,
                                               levels=inventory.Levels(5, 5, 0, 0, 0)), T0),
        record("p1", 3, reserve("r1"), T0 + timedelta(seconds=10)),
        record("p1", 4, reserve("r2"), T0 + timedelta(seconds=20)),
        record("p1", 5, reserve("r3"), T0 + timedelta(minutes=5)),  # moves the watermark past minute 0
        record("p1", 6, expire("r1"), T0 + timedelta(seconds=50)),  # minute 0 closed: late
    ]
    rows, published, dead = run(records)
    assert dead == []
    kept = final(rows)
    minute0, minute5 = T0, T0 + timedelta(minutes=5)
    assert kept[(minute0, "on_time")]["reservations_made"] == 2 and kept[(minute0, "on_time")]["closed"]
    assert kept[(minute0, "late")]["reservations_expired"] == 1 and kept[(minute0, "late")]["version"] == 1
    assert kept[(minute5, "on_time")]["reservations_made"] == 1  # closed at the end of the input
    # running counts were written while minute 0 was open: 1, then 2
    assert [r.values["reservations_made"] for r in rows if r.values["window_start"] == minute0
            and r.values["part"] == "on_time" and r.values["product_id"] == "p1"][:2] == [1, 2]
    # the topic carries only settled figures: closed minutes and late parts, per product and per seller
    assert {(p["productId"], p["windowStart"], p["part"], p["closed"]) for p in published} == {
        ("p1", minute0.isoformat(), "on_time", True), ("", minute0.isoformat(), "on_time", True),
        ("p1", minute0.isoformat(), "late", False), ("", minute0.isoformat(), "late", False),
        ("p1", minute5.isoformat(), "on_time", True), ("", minute5.isoformat(), "on_time", True)}


def test_a_duplicate_event_counts_once():
    records = [record("p1", 1, inventory.StockCreated(product_id="p1", seller_id="s1", sku="p1", low_stock_threshold=5),
                      T0),
               record("p1", 2, inventory.StockUpdated(product_id="p1", total_quantity=5, low_stock_threshold=5,
                                                      levels=inventory.Levels(5, 5, 0, 0, 0)), T0),
               record("p1", 3, reserve("r1"), T0), record("p1", 3, reserve("r1"), T0)]
    rows, _, _ = run(records)
    assert final(rows)[(T0, "on_time")]["reservations_made"] == 1
