"""How fast `buyit replay` rebuilds the read side: events/s into the views, and lake rows/s.

    python -m bench.replay [--events 200000] [--no-lake]

A private stack's broker and stores only (no dataflows, no API: nothing else competes for the two
cores). `--events` synthetic events, the simulated marketplace day of tests/sim/market_day.py scaled to
that many (realistic envelopes of every aggregate, with their versions), are produced straight onto the
event topics: through the real deciders they would take minutes to make. Then `buyit replay` into a
fresh schema: the views alone (with the windows, command results and cart cache), twice, then the views
and the lake together. The figures are events replayed per second of wall time, the whole run included
(planning, the final window rebuild); lake rows are raw events plus fact rows.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench._common import private_stack


def produce(brokers: list[str], events: int) -> tuple[int, float]:
    """Produce about `events` events of simulated days; returns (events produced, seconds to make them)."""
    from confluent_kafka import Producer

    from buyit.clients import producer_config
    from tests.sim.market_day import market_day
    started = time.perf_counter()
    day = market_day(carts=max(1, events // 12), sellers=50).events[:events]  # about 12.3 events a cart
    made = time.perf_counter() - started
    producer = Producer(producer_config(brokers, **{"linger.ms": 50, "batch.size": 1 << 20,
                                                     "compression.type": "lz4"}))
    for happened in day:
        while True:
            try:
                producer.produce(happened.topic, happened.envelope.encode(), happened.envelope.key.encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)
    return len(day), made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--no-lake", action="store_true", help="skip the views-and-lake run")
    args = parser.parse_args()
    measure(args.events, lake=not args.no_lake)


def measure(events_wanted: int, lake: bool = True) -> None:
    """Produce `events_wanted` events on a private stack, replay them (views; then views and lake), print."""
    from buyit import replay
    with private_stack("replay", services_only=True) as stack:
        settings = stack.settings.model_copy(update={"database_url": stack.env["DATABASE_URL"],
                                                     "redis_url": stack.env["REDIS_URL"],
                                                     "kafka_bootstrap_servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
        started = time.perf_counter()
        events, made = produce(settings.brokers, events_wanted)
        print(f"produced {events:,} events in {time.perf_counter() - started:.1f} s ({made:.1f} s to simulate them)",
              file=sys.stderr)
        # The first replay reads from a broker just started: its JVM still compiles its fetch path (a
        # running system's broker has long done so), so a second one is measured too.
        for run, schema in (("views, first", "bench_views"), ("views, again", "bench_views_again")):
            views = replay.run(settings, schema, progress=sys.stderr.isatty())
            print(f"{run}: {views.events:,} events in {views.seconds:.2f} s: {views.rate:,.0f} events/s "
                  f"({settings.buyit_replay_processes} processes)")
        print("  " + "\n  ".join(views.lines()[1:]))
        if lake:
            both = replay.run(settings, "bench_lake", lake=stack.data / "lake-bench", progress=sys.stderr.isatty())
            lake_rows = both.written["lake events"] + both.written["lake fact rows"]
            print(f"views + lake: {both.events:,} events in {both.seconds:.2f} s: {both.rate:,.0f} events/s, "
                  f"{lake_rows:,} lake rows: {lake_rows / both.seconds:,.0f} lake rows/s")
            print("  " + "\n  ".join(both.lines()[1:]))


if __name__ == "__main__":
    main()
