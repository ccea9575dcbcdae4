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

from collections import Counter
from datetime import datetime
from typing import Iterable

import psycopg

from state.analytics import FUNNEL_COUNTS, ON_TIME, SALES, SALES_COUNTS, split_key, window_start

# table -> (the minute's key columns, the counted columns); `part`, `closed` and `version` describe a part
MINUTES = {
    "sales_minutes": (("window_start", "seller_id", "product_id"), SALES_COUNTS),
    "cart_funnel_minutes": (("window_start",), FUNNEL_COUNTS),
}

# table -> the minute's key -> (its counts in MINUTES' order, its number of facts)
Replayed = dict[str, dict[tuple, tuple[tuple[int, ...], int]]]


def replayed(minutes: Iterable[tuple[tuple[str, int], tuple[dict, int]]], since: datetime | None) -> Replayed:
    """A replay's window minutes ((fact key, window id), (counts, facts)), each whole, by table and minute
    key, from `since` on."""
    out: Replayed = {table: {} for table in MINUTES}
    for (key, window_id), (counts, facts) in minutes:
        start = window_start(window_id)
        if since is not None and start < since:
            continue
        scope, seller_id, product_id = split_key(key)
        table = "sales_minutes" if scope == SALES else "cart_funnel_minutes"
        minute = (start, seller_id, product_id) if scope == SALES else (start,)
        out[table][minute] = (tuple(counts.get(c, 0) for c in MINUTES[table][1]), facts)
    return out


def summed(parts: Iterable[Replayed]) -> Replayed:
    """Several processes' `replayed` minutes added up, minute by minute."""
    out: Replayed = {table: {} for table in MINUTES}
    for part in parts:
        for table, minutes in part.items():
            held_minutes = out[table]
            for minute, (counts, facts) in minutes.items():
                held = held_minutes.get(minute)
                held_minutes[minute] = (counts, facts) if held is None else (
                    tuple(a + b for a, b in zip(held[0], counts)), held[1] + facts)
    return out


def table_sums(conn: psycopg.Connection, table: str, since: datetime | None) -> dict[tuple, tuple]:
    keys, counts = MINUTES[table]
    where = "WHERE window_start >= %s" if since else ""
    cur = conn.execute(f"SELECT {', '.join(keys)}, {', '.join(f'sum({c})::bigint' for c in counts)} "
                       f"FROM {table} {where} GROUP BY {', '.join(keys)}", (since,) if since else ())
    return {tuple(r[:len(keys)]): tuple(r[len(keys):]) for r in cur}


def replace_minutes(conn: psycopg.Connection, minutes: Replayed, since: datetime | None,
                    open_from: datetime | None) -> Counter:
    """Make every minute at or after `since` (before `open_from`, if given) sum as `minutes` (see `replayed`)
    does, each written as one closed on-time part whose version is its fact count; returns the rows written
    per table."""
    written: Counter = Counter()
    with conn.transaction():
        for table, (keys, counts) in MINUTES.items():
            held = table_sums(conn, table, since)
            mine = minutes.get(table, {})
            stale = [m for m in {*held, *mine} if held.get(m) != (mine[m][0] if m in mine else None)
                     and (open_from is None or m[0] < open_from)]
            if not stale:
                continue
            match = " AND ".join(f"{k} = %s" for k in keys)
            with conn.cursor() as cur:
                cur.executemany(f"DELETE FROM {table} WHERE {match}", [m for m in stale if m in held])
                rows = [(*m, ON_TIME, *mine[m][0], True, mine[m][1]) for m in stale if m in mine]
                if rows:  # COPY: a rebuild into a fresh schema writes every minute (a third of its time as INSERTs)
                    cols = (*keys, "part", *counts, "closed", "version")
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            written[table] += len(rows)
            written[f"{table} minutes replaced"] += len(stale)
    return written
