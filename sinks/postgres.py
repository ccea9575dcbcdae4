"""Batched, version-guarded upserts into the Postgres views: a replay or duplicate changes nothing."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Callable

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from sinks.views import Row

log = logging.getLogger(__name__)


def _statement(row: Row) -> str:
    cols = list(row.values)
    names = ", ".join(cols)
    params = ", ".join(f"%({c})s" for c in cols)
    conflict = ", ".join(row.key)
    if not row.guarded:
        return f"INSERT INTO {row.table} ({names}) VALUES ({params}) ON CONFLICT ({conflict}) DO NOTHING"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in row.key)
    return (f"INSERT INTO {row.table} ({names}) VALUES ({params}) ON CONFLICT ({conflict}) DO UPDATE SET "
            f"{updates} WHERE {row.table}.version < EXCLUDED.version")


def latest_rows(rows: list[Row]) -> list[Row]:
    """Keep only the newest version of each row in a batch (the others would be no-ops)."""
    newest: dict[tuple, Row] = {}
    for row in rows:
        ident = (row.table, tuple(row.values[k] for k in row.key))
        held = newest.get(ident)
        if held is None or row.values.get("version", 0) >= held.values.get("version", 0):
            newest[ident] = row
    return list(newest.values())


def write_rows(conn: psycopg.Connection, rows: list[Row]) -> None:
    """Write a batch in one transaction, grouped into one executemany per statement."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in latest_rows(rows):
        groups[_statement(row)].append(row.values)
    with conn.transaction():
        with conn.cursor() as cur:
            for statement, params in groups.items():
                cur.executemany(statement, params)


Rejected = Callable[[list[Row], str], None]


class _Partition(StatelessSinkPartition):
    def __init__(self, url: str, on_reject: Rejected | None):
        self._url = url
        self._conn = psycopg.connect(url)
        self._on_reject = on_reject or (lambda rows, error: None)

    @retry(retry=retry_if_exception_type(psycopg.OperationalError), stop=stop_after_delay(60),
           wait=wait_exponential(max=2), reraise=True)
    def write_batch(self, items: list[list[Row]]) -> None:
        rows = [row for batch in items for row in batch]
        if not rows:
            return
        try:
            write_rows(self._conn, rows)
        except psycopg.OperationalError:
            self._conn.close()
            self._conn = psycopg.connect(self._url)
            raise
        except psycopg.Error:
            # One poison state must not stop the views: write each aggregate's rows on their own and
            # hand the ones Postgres refuses (a CHECK, bad data) to the dead letters.
            for batch in items:
                try:
                    write_rows(self._conn, batch)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as err:
                    log.error("view rows refused: %s", err)
                    self._on_reject(batch, str(err))

    def close(self) -> None:
        self._conn.close()


class PostgresViewSink(DynamicSink):
    """A Bytewax sink of row lists into the view tables; refused rows go to `on_reject`."""

    def __init__(self, url: str, on_reject: Rejected | None = None):
        self._url, self._on_reject = url, on_reject

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._url, self._on_reject)
