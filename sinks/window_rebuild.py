"""A replay's per-minute windows: whole minutes replaced where their sums differ, never upserted part by part.

The live projection keeps a minute as parts (on time, late) that readers add, each upserted with its
fact count as version. A replay reads the topics far faster than they were written and in another
order, so it splits the same facts into parts differently; upserting its parts next to the live ones
would count a fact in both (a replayed on-time part of 7 facts beats a live one of 5, and the live late
part of 2 stays). So a replay sums each minute's facts (buyit/replay.py), and at the end compares every minute's
sums with the target table: a minute that differs (or that only the table has) is deleted and written
again from the replay, in one transaction; an equal one is left alone, so replaying a healthy system in
place writes nothing.

Minutes that may still be open in the live projection (ending less than `WAIT` before the replay began)
are left to it when replaying in place: the live run is still adding to them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

import psycopg

from sinks.views import Row

# table -> (the minute's key columns, the counted columns); `part`, `closed` and `version` describe a part
MINUTES = {
    "sales_minutes": (("window_start", "seller_id", "product_id"),
                      ("units_sold", "gross_cents", "orders", "reservations_made", "reservations_expired",
                       "reservations_converted")),
    "cart_funnel_minutes": (("window_start",), ("carts_started", "items_added", "checkouts", "paid", "abandoned")),
}


def sums(rows: list[Row]) -> dict[str, dict[tuple, tuple]]:
    """table -> minute key -> its counts summed over its parts."""
    out: dict[str, dict[tuple, list]] = defaultdict(dict)
    for row in rows:
        keys, counts = MINUTES[row.table]
        minute = tuple(row.values[k] for k in keys)
        held = out[row.table].setdefault(minute, [0] * len(counts))
        for i, c in enumerate(counts):
            held[i] += row.values[c]
    return {t: {m: tuple(v) for m, v in minutes.items()} for t, minutes in out.items()}


def table_sums(conn: psycopg.Connection, table: str, since: datetime | None) -> dict[tuple, tuple]:
    keys, counts = MINUTES[table]
    where = "WHERE window_start >= %s" if since else ""
    cur = conn.execute(f"SELECT {', '.join(keys)}, {', '.join(f'sum({c})::bigint' for c in counts)} "
                       f"FROM {table} {where} GROUP BY {', '.join(keys)}", (since,) if since else ())
    return {tuple(r[:len(keys)]): tuple(r[len(keys):]) for r in cur}


def replace_minutes(conn: psycopg.Connection, parts: list[Row], since: datetime | None,
                    open_from: datetime | None) -> Counter:
    """Make every minute at or after `since` (before `open_from`, if given) sum as `parts` do; returns
    the rows written per table."""
    written: Counter = Counter()
    replayed = sums(parts)
    by_minute: dict[tuple[str, tuple], list[Row]] = defaultdict(list)
    for row in parts:
        by_minute[(row.table, tuple(row.values[k] for k in MINUTES[row.table][0]))].append(row)
    with conn.transaction():
        for table, (keys, counts) in MINUTES.items():
            held = table_sums(conn, table, since)
            mine = replayed.get(table, {})
            stale = [m for m in {*held, *mine} if held.get(m) != mine.get(m)
                     and (open_from is None or m[0] < open_from)]
            if not stale:
                continue
            match = " AND ".join(f"{k} = %s" for k in keys)
            with conn.cursor() as cur:
                cur.executemany(f"DELETE FROM {table} WHERE {match}", [m for m in stale if m in held])
                rows = [r for m in stale for r in by_minute.get((table, m), [])]
                if rows:  # COPY: a rebuild into a fresh schema writes every minute (a third of its time as INSERTs)
                    cols = list(rows[0].values)
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row([row.values[c] for c in cols])
            written[table] += len(rows) if rows else 0
            written[f"{table} minutes replaced"] += len(stale)
    return written

