"""A read-only DuckDB connection over the lake, with every fact table as a deduplicated view.

Each view keeps one row per natural key `(event_id, line)`: an event the log holds twice reaches
the lake twice (see sinks/lake.py), so a row may sit in more than one file. Not `sales`: the
projection writes each of its rows once, and its readers want the bare scan. A table with no file yet is an empty
view of the right columns, so queries run on a fresh lake too.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from sinks.facts import TABLES, columns

UNIQUE = {"sales"}  # tables whose rows are written exactly once: their views do not dedupe

# What a lake session may run: reads only. DDL, COPY, ATTACH, INSERT, SET ... are refused.
_READS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class ReadOnly(Exception):
    """A statement that would change something, refused by a read-only lake connection."""


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(root: Path, table: str) -> str:
    """The SELECT behind `table`'s view: its Parquet files, one row per (event_id, line)."""
    folder = Path(root) / "facts" / table
    if next(folder.glob("date=*/*.parquet"), None) is None:
        empty = ", ".join(f"NULL::{kind} AS {name}" for name, kind in [*columns(table), ("date", "DATE")])
        return f"SELECT {empty} WHERE false"
    # `date` is the partition: occurred_at's UTC day, free to read (a day bucket from it instead of
    # date_trunc over occurred_at made sales-by-seller 1.4x faster, bench/analytics.py)
    names = ", ".join([*(name for name, _ in columns(table)), "date"])
    # QUALIFY row_number() rather than DISTINCT ON: measured 1.5-4x faster here (bench/analytics.py), as
    # DISTINCT ON carries every column through its hash table.
    scan = (f"SELECT {names} FROM read_parquet({_quoted(str(folder) + '/date=*/*.parquet')}, "
            "hive_partitioning = true, hive_types = {'date': DATE})")
    return scan if table in UNIQUE else f"{scan} QUALIFY row_number() OVER (PARTITION BY event_id, line) = 1"


def connect(root: Path | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per fact table over the lake at `root`, then locked down.

    After the views are made, file access is limited to the lake folder and the configuration is
    locked, so no query can read elsewhere or turn access back on; `execute_read` refuses writes
    inside the folder too (DuckDB's allowed directories allow writing)."""
    root = Path(root).resolve()
    # Result order is set by each query's ORDER BY; not keeping scan order lets DuckDB run its scans in parallel.
    con = duckdb.connect(config={"preserve_insertion_order": False})
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS {view_sql(root, table)}")
    con.execute(f"SET allowed_directories = [{_quoted(str(root) + '/')}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def execute_read(con: duckdb.DuckDBPyConnection, sql: str, params: dict | list | None = None):
    """Run one or more statements that only read; the last one's cursor. ReadOnly for anything else."""
    statements = con.extract_statements(sql)
    if not statements:
        raise ReadOnly("no statement")
    for statement in statements:
        if statement.type not in _READS:
            raise ReadOnly(f"the lake is read-only: {statement.type.name} refused")
    cursor = con
    for statement in statements:
        cursor = con.execute(statement.query, params) if params else con.execute(statement.query)
    return cursor


def fetch_dicts(cursor) -> list[dict]:
    """A cursor's rows as dicts by column name."""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]
