"""Compare two copies of the read side, table by table and row by row: the live views and a replay's.

What is compared, and what is left out on purpose:
- every view table, all columns, keyed by its primary key;
- the window tables summed over their parts per minute: `part`, `closed` and `version` only say how the
  facts were split between on-time and late, which a replay does differently (sinks/window_rebuild.py);
- `command_results` only for answers younger than the results TTL less `RESULTS_MARGIN_S`: older ones are
  deleted by each side's purge at its own moment;
- the cart cache by buyer and JSON value; its TTLs are left out (each entry lives until its cart expires,
  counted from when it was written).
A row newer in the live table than in the replay (a higher `version`) changed after the replay began:
it is reported as such, and is not a difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from sinks.window_rebuild import MINUTES

# table -> primary key columns
TABLES = {"users": ("user_id",), "products": ("product_id",), "stock": ("product_id",), "carts": ("cart_id",),
          "orders": ("order_id",), "shipments": ("shipment_id",), "payments": ("payment_id",),
          "ledger_transactions": ("transaction_id",), "ledger_entries": ("transaction_id", "seq"),
          "ledger_accounts": ("account_id",), "command_results": ("command_id",)}

RESULTS_MARGIN_S = 300


@dataclass
class Comparison:
    """Differences (each a printable line) and rows the live side changed after the replay began."""

    differences: list[str] = field(default_factory=list)
    moved_on: list[str] = field(default_factory=list)
    rows_compared: int = 0


def _rows(conn: psycopg.Connection, schema: str, table: str, results_ttl_s: int) -> tuple[list[str], dict]:
    """Column names and {key: row} of one table (window tables: summed per minute)."""
    if table in MINUTES:
        keys, counts = MINUTES[table]
        query = sql.SQL("SELECT {keys}, {sums} FROM {t} GROUP BY {keys}").format(
            keys=sql.SQL(", ").join(map(sql.Identifier, keys)), t=sql.Identifier(schema, table),
            sums=sql.SQL(", ").join(sql.SQL("sum({})::bigint AS {}").format(sql.Identifier(c), sql.Identifier(c))
                                    for c in counts))
        width = len(keys)
    else:
        where = sql.SQL("")
        if table == "command_results":
            where = sql.SQL(" WHERE answered_at >= now() - make_interval(secs => {})").format(
                sql.Literal(max(0, results_ttl_s - RESULTS_MARGIN_S)))
        query = sql.SQL("SELECT * FROM {t}").format(t=sql.Identifier(schema, table)) + where
        width = 0
    with conn.cursor() as cur:
        cur.execute(query)
        names = [d.name for d in cur.description]
        key_cols = [names.index(k) for k in (TABLES.get(table) or names[:width])]
        return names, {tuple(r[i] for i in key_cols): r for r in cur}


def _same(a, b) -> bool:
    """Equal as stored; JSON columns compared as values (key order is not meaning)."""
    return a == b or (isinstance(a, (dict, list)) and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))


def compare_tables(conn: psycopg.Connection, live: str, rebuilt: str, results_ttl_s: int,
                   tables: list[str] | None = None) -> Comparison:
    """Compare schema `live` with schema `rebuilt`, every table (or `tables`) row by row."""
    out = Comparison()
    for table in tables or [*TABLES, *MINUTES]:
        names, theirs = _rows(conn, live, table, results_ttl_s)
        _, mine = _rows(conn, rebuilt, table, results_ttl_s)
        out.rows_compared += len(mine)
        version = names.index("version") if "version" in names and table not in MINUTES else None
        for key in sorted({*theirs, *mine}, key=str):
            a, b = theirs.get(key), mine.get(key)
            if a is None:
                out.differences.append(f"{table} {key}: missing from the live views (replay has {_show(names, b)})")
            elif b is None:
                out.differences.append(f"{table} {key}: only in the live views ({_show(names, a)})")
            elif any(not _same(x, y) for x, y in zip(a, b)):
                cols = [f"{n}: live {x!r} != replayed {y!r}" for n, x, y in zip(names, a, b) if not _same(x, y)]
                line = f"{table} {key}: {'; '.join(cols)}"
                if version is not None and a[version] > b[version]:
                    out.moved_on.append(line)
                else:
                    out.differences.append(line)
    return out


def _show(names: list[str], row: tuple) -> str:
    return ", ".join(f"{n}={v!r}" for n, v in zip(names, row))


def compare_carts(redis_client, prefix: str) -> list[str]:
    """Differences between the live cart cache (`cart:*`) and the one rebuilt under `prefix`."""
    def entries(pattern: str, strip: int) -> dict[str, dict]:
        keys = list(redis_client.scan_iter(match=pattern, count=1000))
        values = redis_client.mget(keys) if keys else []
        return {k.decode()[strip:]: json.loads(v) for k, v in zip(keys, values) if v is not None}
    live = {k: v for k, v in entries("cart:*", 0).items()}
    mine = entries(f"{prefix}cart:*", len(prefix))
    out = []
    for key in sorted({*live, *mine}):
        a, b = live.get(key), mine.get(key)
        if a is None:
            out.append(f"cart cache {key}: missing from the live cache (replay has version {b['version']})")
        elif b is None:
            out.append(f"cart cache {key}: only in the live cache (version {a['version']})")
        elif a != b:
            out.append(f"cart cache {key}: live {a} != replayed {b}")
    return out
