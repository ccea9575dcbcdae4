"""What a flash sale's product costs to snapshot: the decision dataflow pickles it every second it is touched.

    python -m bench.snapshot [--carts 75000] [--per-second 5000]

No stack: the product's state is built through the real decider (`state/inventory.py`), `--per-second`
new carts holding one unit each simulated second; in the same second, as many as one in ten of them
checks out (an allocation) and one in twenty lets go (a tombstone), chosen at random among the carts
already holding, until about `--carts` hold it. At the end of each simulated second the state is
pickled twice, as Bytewax's snapshot would: as it is (reservations and tombstones filed in drawers, the
unchanged drawers' bytes kept, the indexes left out), and as the previous build pickled it (plain persistent
maps, the indexes included). Prints both per second, their ratio, and the time to load the last snapshot.
"""

from __future__ import annotations

import argparse
import copyreg
import gc
import io
import pickle
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pyrsistent import pmap

from state import inventory
from state.inventory import Ended, Reservation, Stock


def as_before(stock: Stock) -> tuple[float, bytes]:
    """Seconds to pickle `stock` as the previous build did: every dataclass as a dict of its fields (pickle's
    default), the entries in plain persistent maps, the indexes included."""
    fields = {**vars(stock), "reservations": pmap(dict(stock.reservations.items())),
              "ended": pmap(dict(stock.ended.items()))}
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {kind: _as_dataclass for kind in (Stock, Reservation, Ended)}
    started = time.perf_counter()
    pickler.dump((Stock, fields))
    return time.perf_counter() - started, out.getvalue()


def _as_dataclass(obj) -> tuple:
    return (copyreg.__newobj__, (type(obj),), vars(obj))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--carts", type=int, default=75_000, help="carts holding the product at the end (75000)")
    ap.add_argument("--per-second", type=int, default=5_000, help="new carts a simulated second (5000)")
    args = ap.parse_args()
    rng, start = random.Random(7), datetime(2026, 12, 3, tzinfo=UTC)
    stock = replace(inventory.initial_state(), product_id="hot", seller_id="s", sku="HOT", total=10**9, version=1)
    holding: list[str] = []
    print(f"{'second':>6} {'holds':>7} {'tombstones':>10} {'now ms':>8} {'before ms':>9} {'ratio':>6}")
    now_total = before_total = 0.0
    for second in range((args.carts + args.per_second - 1) // args.per_second):
        now = start + timedelta(seconds=second)
        commands = [inventory.ReserveStock(
            command_id=f"c{second}-{i}", now=now, actor="b", product_id="hot", reservation_id=f"r-{second}-{i}",
            cart_id=f"cart-{second}-{i}", buyer_id=f"buyer-{second}-{i}", quantity=1, mode="add",
            expires_at=now + timedelta(minutes=15), seq=1) for i in range(args.per_second)]
        chosen = rng.sample(holding, min(len(holding), args.per_second // 10 + args.per_second // 20))
        for reservation_id in chosen[:args.per_second // 10]:
            commands.append(inventory.AllocateStock(
                command_id=f"a-{reservation_id}", now=now, actor="system", product_id="hot",
                reservation_id=reservation_id, order_id=f"order-{reservation_id}", quantity=1,
                expires_at=now + timedelta(minutes=30)))
        for reservation_id in chosen[args.per_second // 10:]:
            commands.append(inventory.ReleaseReservation(
                command_id=f"r-{reservation_id}", now=now, actor="b", product_id="hot",
                reservation_id=reservation_id, seq=2))
        let_go = set(chosen)
        holding = [r for r in holding if r not in let_go]
        for command in commands:
            for event in inventory.decide(stock, command):
                stock = inventory.evolve(stock, event)
        holding.extend(f"r-{second}-{i}" for i in range(args.per_second))
        gc.collect()  # each figure without a collection of the other's garbage in it
        started = time.perf_counter()
        blob = pickle.dumps(stock, protocol=pickle.HIGHEST_PROTOCOL)
        now_s = time.perf_counter() - started
        gc.collect()
        before_s, before = as_before(stock)
        now_total, before_total = now_total + now_s, before_total + before_s
        print(f"{second + 1:>6} {len(stock.reservations):>7} {len(stock.ended):>10} {now_s * 1e3:>8.1f} "
              f"{before_s * 1e3:>9.1f} {before_s / now_s:>5.1f}x")
    started = time.perf_counter()
    loaded = pickle.loads(blob)
    load_s = time.perf_counter() - started
    if loaded != stock:
        raise SystemExit("the last snapshot does not load as the state it was taken of")
    started = time.perf_counter()
    pickle.loads(before)
    before_load_s = time.perf_counter() - started
    print(f"all seconds: {now_total * 1e3:.0f} ms now, {before_total * 1e3:.0f} ms before "
          f"({before_total / now_total:.1f}x); the last snapshot: {len(blob) / 1e6:.1f} MB now, "
          f"{len(before) / 1e6:.1f} MB before; loads in {load_s * 1e3:.0f} ms now, {before_load_s * 1e3:.0f} ms before")


if __name__ == "__main__":
    main()
