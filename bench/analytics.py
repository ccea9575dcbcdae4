"""The lake's speed: rows/s the lake sink writes, and DuckDB's sales-by-seller over 10 M order lines.

    python -m bench.analytics [--lines 10000000] [--carts 4400] [--replay-events 200000]

1. Write: a simulated marketplace day (tests/sim/market_day.py) through the lake sink, as the
   projection feeds it: events/s and fact rows/s, raw envelopes and fact tables together.
2. Query: `--lines` confirmed sale lines generated straight into the lake layout by DuckDB
   (`range()`), then the named query `sales-by-seller` (per seller per day,
   a scan of the `sales` table, written once per confirmed line, so neither dedupe nor join): DuckDB's
   time on an open lake connection, then the whole API call; and, for comparison, the bare
   scan-and-aggregate of the same lines. Times are medians of 7 runs. Rows/s per core divides by
   DuckDB's threads (all cores of this machine).
3. Replay: `--replay-events` events produced onto a private stack's topics and rebuilt by `buyit replay`
   into a fresh schema, views alone and then views and lake (bench/replay.py; 0 skips it): events/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from sinks import lake_queries, lake_sql
from sinks.lake import LakeSink


def write_rate(carts: int, root: Path) -> tuple[int, int, float]:
    """(events, fact rows, seconds) of a simulated day through one lake sink partition."""
    from tests.sim.market_day import market_day
    from tests.test_analytics_day import lake_items
    events = market_day(carts=carts).events
    items = list(lake_items(events, {}))  # decoded and folded, as the projection hands them over
    part = LakeSink(root).build_part("write_lake", "lake-0", None)
    started = time.perf_counter()
    for i in range(0, len(items), 1000):
        part.write_batch(items[i:i + 1000])
    part.close()
    seconds = time.perf_counter() - started
    with duckdb.connect() as con:
        facts = con.execute(f"SELECT count(*) FROM read_parquet('{root}/facts/*/*/*.parquet', union_by_name = true)"
                            ).fetchall()[0][0]
    return len(events), facts, seconds


def generate(root: Path, lines: int, days: int = 7) -> float:
    """`lines` confirmed sale lines (2.5 per order, 500 sellers, `days` days) in the lake's layout, one file
    per day; returns the seconds it took."""
    started = time.perf_counter()
    con = duckdb.connect()
    per_day = lines // days
    for day in range(days):
        folder = root / "facts" / "sales" / f"date=2025-03-{day + 1:02d}"
        folder.mkdir(parents=True)
        first = day * per_day
        # line i belongs to order i * 2 // 5; its first line is the one where i * 2 % 5 < 2
        con.execute(f"""COPY (
            SELECT 'confirmed-' || (i * 2 // 5) AS event_id, (i - (i * 2 // 5) * 5 // 2)::INTEGER AS line,
                   TIMESTAMP '2025-03-01' + INTERVAL (i * 86400 * {days} // {lines}) SECOND AS occurred_at,
                   'order-' || (i * 2 // 5) AS order_id, 'buyer-' || (i % 50000) AS buyer_id,
                   'seller-' || (hash(i * 2 // 5) % 500) AS seller_id, 'product-' || (i % 20000) AS product_id,
                   (1 + i % 3)::BIGINT AS quantity, ((1 + i % 3) * (199 + i % 9000))::BIGINT AS amount_cents,
                   'USD' AS currency, (i * 2 % 5 < 2)::INTEGER AS orders_of_seller, 1 AS orders_of_product
            FROM range({first}, {first + per_day}) t(i))
            TO '{folder}/part-0-bench.parquet' (FORMAT parquet, COMPRESSION snappy)""")
    con.close()
    return time.perf_counter() - started


def timed(fn, runs: int = 7) -> float:
    """The median of `runs` wall times of `fn()` (the first run also warms the OS page cache)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--carts", type=int, default=4400)
    parser.add_argument("--replay-events", type=int, default=200_000, help="events replayed (0: skip)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="buyit-bench-lake-"))
    try:
        events, facts, seconds = write_rate(args.carts, work / "day")
        print(f"write: {events:,} events -> {events + facts:,} lake rows ({facts:,} fact rows) in {seconds:.2f} s: "
              f"{events / seconds:,.0f} events/s, {(events + facts) / seconds:,.0f} rows/s")
        root = work / "lake"
        made = generate(root, args.lines)
        print(f"generated {args.lines:,} sale lines with DuckDB in {made:.1f} s")
        sql, params = lake_queries.statement("sales-by-seller")
        con = lake_sql.connect(root)
        rows = len(con.execute(sql, params).fetchall())
        query = timed(lambda: con.execute(sql, params).fetchall())
        con.close()
        print(f"sales-by-seller (the named query: scan of sales, per seller per day): {rows} rows in {query:.3f} s "
              f"of DuckDB: {args.lines / query / 1e6:.1f} M lines/s, {args.lines / query / cores / 1e6:.1f} M lines/s "
              f"per core ({cores} cores)")
        call = timed(lambda: lake_queries.run(root, "sales-by-seller"))
        print(f"  as the API runs it (connect, query, rows as dicts): {call:.3f} s")
        glob = f"{root}/facts/sales/*/*.parquet"
        bare = timed(lambda: duckdb.connect().execute(
            f"""SELECT date, seller_id, currency, sum(quantity), sum(amount_cents)
                FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY ALL""").fetchall())
        print(f"bare scan + aggregate of the same lines (no range, no seller filter): {bare:.3f} s: "
              f"{args.lines / bare / 1e6:.1f} M lines/s, {args.lines / bare / cores / 1e6:.1f} M lines/s per core")
        if args.replay_events:
            from bench.replay import measure
            measure(args.replay_events)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
