"""A replay's fold (`dataflows.replay.Folded`), no I/O: it writes each aggregate's rows once, at its final
state, yet the views it leaves are those of writing every change as it happens; a buyer's old carts and
retired aggregates included, whatever the batch size, and with `--since` only what changed since."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from buyit.envelope import Envelope, to_wire
from dataflows.kafka_io import Record
from dataflows.project import fold, parse
from dataflows.replay import Folded
from sinks.postgres import latest_rows
from sinks.views import rows as view_rows
from state.cart import view as cart_view
from state.common import Retired, type_name
from tests.sim.market_day import market_day


@pytest.fixture(scope="module")
def records() -> list[Record]:
    """A simulated day (buyers with several carts each), then every confirmed order and its payment retired."""
    day = market_day(carts=300, sellers=5).events
    out = [Record(h.topic, h.envelope.key, h.envelope.encode()) for h in day]
    versions: dict[tuple[str, str], int] = {}
    for h in day:
        versions[(h.topic, h.envelope.key)] = h.envelope.version
    done = {h.envelope.key for h in day if type_name(h.event) == "OrderConfirmed"}
    payments = {h.envelope.key for h in day if h.topic == "payment.events" and h.event.order_id in done}
    later = day[-1].at + timedelta(hours=2)
    for topic, keys in (("order.events", done), ("payment.events", payments)):
        for key in sorted(keys):
            event = Retired(retired_at=later)
            envelope = Envelope(str(uuid.uuid4()), type_name(event), key, later.isoformat(), str(uuid.uuid4()), None,
                                versions[(topic, key)] + 1, to_wire(event))
            out.append(Record(topic, key, envelope.encode()))
    assert len(done) > 10 and len(payments) > 10
    return out


def as_written(records: list[Record]) -> tuple[dict, dict]:
    """The oracle: every change's rows written as it happens (what the live projection does), and the cart
    cache entry each buyer is left with. Returns (table and key -> values, buyer -> cart view)."""
    states: dict = {}
    written, cached = [], {}
    for record in records:
        kind, item = parse(record)
        key = f"{item[0]}:{item[1].key}"
        states[key], outputs = fold(states.get(key), item)
        for tag, output in outputs:
            if tag == "view":
                written += view_rows(*output)
                if output[0] == "cart" and (view := cart_view(output[1])) is not None:
                    cached[view["buyerId"]] = view
    return _table(written), cached


def replayed(records: list[Record], batch: int) -> tuple[dict, dict]:
    folded = Folded()
    written, cached = [], {}
    outputs = [out for i in range(0, len(records), batch) for out in folded.batch(records[i:i + batch], False)]
    for tag, items in outputs + folded.rest():
        if tag == "views":
            written += [row for rows in items for row in rows]
        elif tag == "carts":
            cached.update((view["buyerId"], view) for view in items)
    return _table(written), cached


def _table(rows) -> dict:
    return {(r.table, tuple(r.values[k] for k in r.key)): r.values for r in latest_rows(rows)}


@pytest.mark.parametrize("batch", [1, 97, 5000])
def test_rows_written_once_leave_the_views_of_every_change(records, batch):
    rows, cached = as_written(records)
    assert {table for table, _ in rows} >= {"carts", "orders", "payments", "stock", "ledger_entries"}
    assert sum(table == "carts" for table, _ in rows) > 134  # buyers' old carts too
    assert replayed(records, batch) == (rows, cached)


def test_since_writes_only_what_changed_since(records):
    half = len(records) // 2
    marked = [Record(r.topic, r.key, r.value, fresh=i >= half) for i, r in enumerate(records)]
    rows, cached = as_written(marked)
    assert 0 < len(rows) < len(as_written(records)[0])
    assert replayed(marked, 500) == (rows, cached)
