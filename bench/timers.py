"""Timers: what a command costs the decision dataflow while many aggregates wait on a deadline.

    python -m bench.timers [--idle 0 10000 50000] [--commands 20000]

Two measurements, in process (Bytewax's run_main, no Kafka):

1. Bytewax alone: a keyed `stateful` step with `--idle` keys that do nothing, with a timer each (far in
   the future) or without, then `--commands` items for one key: the cost of one such item.
2. The decision dataflow (dataflows/decide.py): `--idle` buyers' carts, each with its expiry, then a
   quarter of `--commands` cart adds by one buyer; per add, with each
   cart holding its own Bytewax timer (`DeciderLogic`, before) and with the deadlines in the timer step
   (`Scheduled`, now), timed from the busy buyer's first output to its last.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime, timedelta

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic
from bytewax.testing import TestingSink, TestingSource, run_main

from bench._common import table

FAR = datetime(2100, 1, 1, tzinfo=UTC)


class _Idle(StatefulLogic):
    timer: datetime | None = FAR

    def __init__(self, resume):
        self.count = resume or 0

    def on_item(self, value):
        self.count += 1
        return [], StatefulLogic.RETAIN

    def notify_at(self):
        return self.timer

    def snapshot(self):
        return self.count


class _NoTimer(_Idle):
    timer = None


def _bytewax_run(logic: type, idle: int, items: int) -> float:
    flow = Dataflow("timers")
    keyed = op.key_on("key", op.input("in", flow, TestingSource([f"idle-{i}" for i in range(idle)] + ["hot"] * items)),
                      lambda x: x)
    op.output("out", op.stateful("step", keyed, logic), TestingSink([]))
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started


def bytewax_item_us(logic: type, idle: int, items: int) -> float:
    """Per item for the busy key: a run with the idle keys and the items, less one with the idle keys alone."""
    return (_bytewax_run(logic, idle, items) - _bytewax_run(logic, idle, 0)) / items * 1e6


def _add(buyer: str, at: datetime):
    from buyit.envelope import command_envelope
    from dataflows.kafka_io import Record
    from state.cart import AddCartItem
    command = AddCartItem(command_id=str(uuid.uuid4()), now=at, buyer_id=buyer, product_id="p1", sku="S1",
                          seller_id="s1", price_cents=100, currency="USD", quantity=1, reservation_ttl_s=900,
                          cart_ttl_s=3600)
    return Record("cart.commands", buyer, command_envelope(command, buyer).encode())


class _Clocked(list):
    """A sink's list that notes when the busy buyer's first and last outputs arrive."""

    def __init__(self):
        super().__init__()
        self.first = self.last = None

    def __iadd__(self, items):  # how TestingSink writes a batch
        if any(item[1] == "hot" for item in items):  # (topic, key, value)
            self.last = time.perf_counter()
            self.first = self.first or self.last
        return self


def decide_add_us(idle: int, commands: int, own_timers: bool) -> float:
    """Per cart add by one buyer, from its first output to its last (the idle carts are made first)."""
    from dataflows.decide import build_flow
    from dataflows.decider import DeciderLogic
    from dataflows.timers import Scheduled
    now, out = datetime.now(UTC), _Clocked()
    records = [_add(f"idle-{i}", now) for i in range(idle)]
    records += [_add("hot", now + timedelta(milliseconds=i)) for i in range(commands)]
    flow = build_flow(TestingSource(records, batch_size=10), TestingSink(out),
                      logic=DeciderLogic if own_timers else Scheduled)
    run_main(flow)
    return (out.last - out.first) / (commands - 1) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle", type=int, nargs="+", default=[0, 10_000, 50_000], help="idle keys (default 0 10000 50000)")
    ap.add_argument("--commands", type=int, default=20_000, help="items for the busy key (default 20000)")
    args = ap.parse_args(argv)
    rows = []
    for idle in args.idle:
        rows.append([f"{idle:,}", f"{bytewax_item_us(_Idle, idle, args.commands):.1f}",
                     f"{bytewax_item_us(_NoTimer, idle, args.commands):.1f}",
                     f"{decide_add_us(idle, args.commands // 4, True):.1f}",
                     f"{decide_add_us(idle, args.commands // 4, False):.1f}"])
    print(table(["idle keys", "Bytewax item, timers (µs)", "Bytewax item, no timers (µs)",
                 "cart add, own timers (µs)", "cart add, timer step (µs)"], rows))
    print("\nBytewax items come one per batch; cart adds in batches of 10 (the decision dataflow reads up to 500).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
