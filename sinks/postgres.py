"""Batched, version-guarded upserts into the Postgres views: a replay or duplicate changes nothing."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from typing import Callable, Iterable

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from sinks.views import Row

log = logging.getLogger(__name__)


_STATEMENTS: dict[tuple, str] = {}


def _statement_of(row: Row) -> str:
    """`_statement(row)`, made once per shape of row (a replay writes a hundred thousand rows of a dozen shapes)."""
    shape = (row.table, row.key, row.guarded, *row.values)
    statement = _STATEMENTS.get(shape)
    if statement is None:
        statement = _STATEMENTS[shape] = _statement(row)
    return statement


def _statement(row: Row, source: str | None = None) -> str:
    """The upsert of rows like `row`, from one row's parameters or else from the query `source`."""
    cols = list(row.values)
    names = ", ".join(cols)
    values = source or f"VALUES ({', '.join(f'%({c})s' for c in cols)})"
    conflict = ", ".join(row.key)
    if not row.guarded:
        return f"INSERT INTO {row.table} ({names}) {values} ON CONFLICT ({conflict}) DO NOTHING"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in row.key)
    return (f"INSERT INTO {row.table} ({names}) {values} ON CONFLICT ({conflict}) DO UPDATE SET "
            f"{updates} WHERE {row.table}.version < EXCLUDED.version")


def latest_rows(rows: list[Row]) -> list[Row]:
    """Keep only the row of each key that would stand after the batch (the others would be no-ops): the
    newest version of a guarded row, the first of an unguarded one (insert-once: the first stands, as it
    does across batches, so a replay in bigger batches writes the same views)."""
    newest: dict[tuple, Row] = {}
    for row in rows:
        ident = (row.table, tuple(row.values[k] for k in row.key))
        held = newest.get(ident)
        if held is None or (row.guarded and row.values.get("version", 0) >= held.values.get("version", 0)):
            newest[ident] = row
    return list(newest.values())


def write_rows(conn: psycopg.Connection, rows: list[Row], straight: frozenset[str] = frozenset()) -> Counter:
    """Write a batch in one transaction, grouped into one executemany per statement; returns the rows
    each table took (an upsert the version guard turned away, or a duplicate, counts none).

    `straight`: tables that held no row when the writer began and that no one else writes (a replay into
    a fresh schema): their rows are copied straight in, with no upsert. A row already there (the writer
    wrote that key before) fails the batch with `UniqueViolation`; write it again without `straight`."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in latest_rows(rows):
        groups[(row.table, _statement_of(row))].append(row)
    written: Counter = Counter()
    with conn.transaction():
        with conn.cursor() as cur:
            for (table, statement), batch in groups.items():
                if table in straight and table not in SHARED:
                    written[table] += _copied_in(cur, batch[0], batch)
                    continue
                if len(batch) >= BULK:
                    written[table] += _copied(cur, batch[0], batch)
                    continue
                cur.executemany(statement, [row.values for row in (_in_key_order(batch) if table in SHARED else batch)])
                written[table] += max(cur.rowcount, 0)
    return written


# Rows of one statement from which they are copied into a scratch table and written by one INSERT … SELECT:
# Postgres then checks the conflicts in one pass instead of executing the statement once per row (a
# replay's batches; the live projection's are mostly smaller).
BULK = 100


def _copied(cur: psycopg.Cursor, like: Row, rows: list[Row]) -> int:
    """Write `rows` (all shaped like `like`: same table, columns, guard) by COPY and one upsert; the rows taken."""
    scratch = f"bulk_{like.table}"
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {scratch} (LIKE {like.table} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS")
    cols = _copy(cur, scratch, like, rows)
    # in key order: writers of the same rows at once lock them in the same order (see SHARED)
    cur.execute(_statement(like, f"SELECT {', '.join(cols)} FROM {scratch} ORDER BY {', '.join(like.key)}"))
    return max(cur.rowcount, 0)


def _copied_in(cur: psycopg.Cursor, like: Row, rows: list[Row]) -> int:
    """Copy `rows` (all shaped like `like`) straight into their table; the rows taken (all of them)."""
    _copy(cur, like.table, like, rows)
    return len(rows)


def _copy(cur: psycopg.Cursor, table: str, like: Row, rows: list[Row]) -> list[str]:
    """COPY `rows` (shaped like `like`) into `table`; returns the columns copied."""
    cols = list(like.values)
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in rows:
            values = row.values
            copy.write_row([values[c] for c in cols])
    return cols


# Tables whose rows more than one aggregate writes (a seller's payable account: every payment's ledger;
# a window minute: many carts and orders). Two writers at once (a cluster's workers, a replay's processes)
# lock such rows in key order, so neither waits on the other in a circle (a deadlock, and a batch redone).
SHARED = frozenset({"ledger_accounts", "sales_minutes", "cart_funnel_minutes"})


def _in_key_order(rows: list[Row]) -> list[Row]:
    try:
        return sorted(rows, key=lambda row: tuple(row.values[k] for k in row.key))
    except TypeError:  # a key of mixed types (None): Postgres refuses the row anyway
        return rows


Rejected = Callable[[list[Row], str], None]


# How often old command results are deleted (each partition does it; the DELETE is idempotent).
PURGE_EVERY_S = 60


class _Partition(StatelessSinkPartition):
    def __init__(self, url: str, on_reject: Rejected | None, results_ttl_s: int | None, tally: Counter | None,
                 straight: frozenset[str]):
        self._url = url
        self._straight = straight
        self._tally = tally if tally is not None else Counter()
        self._conn = psycopg.connect(url)
        self._on_reject = on_reject or (lambda rows, error: None)
        self._results_ttl_s = results_ttl_s
        self._purged_at = 0.0

    @retry(retry=retry_if_exception_type(psycopg.OperationalError), stop=stop_after_delay(60),
           wait=wait_exponential(max=2), reraise=True)
    def write_batch(self, items: list[list[Row]]) -> None:
        rows = [row for batch in items for row in batch]
        if not rows:
            return
        try:
            try:
                self._tally.update(write_rows(self._conn, rows, self._straight))
            except psycopg.errors.UniqueViolation:
                if not self._straight:
                    raise
                self._straight = frozenset()  # a key written before: upsert from now on (the batch wrote nothing)
                self._tally.update(write_rows(self._conn, rows))
            self._purge_old_results()
        except psycopg.OperationalError:
            self._conn.close()
            self._conn = psycopg.connect(self._url)
            raise
        except psycopg.Error:
            # One poison state must not stop the views: write each aggregate's rows on their own and
            # hand the ones Postgres refuses (a CHECK, bad data) to the dead letters.
            for batch in items:
                try:
                    self._tally.update(write_rows(self._conn, batch))
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as err:
                    log.error("view rows refused: %s", err)
                    self._on_reject(batch, str(err))

    def _purge_old_results(self, now: bool = False) -> None:
        if self._results_ttl_s is None or (not now and time.monotonic() - self._purged_at < PURGE_EVERY_S):
            return
        with self._conn.transaction():
            self._conn.execute("DELETE FROM command_results WHERE answered_at < now() - make_interval(secs => %s)",
                               (self._results_ttl_s,))
        self._purged_at = time.monotonic()

    def close(self) -> None:
        try:  # a replay re-inserts old answers as it goes: they leave again before it ends
            self._purge_old_results(now=True)
        except psycopg.Error as err:  # the next run's purge does it
            log.warning("purging old command results on close: %s", err)
        finally:
            self._conn.close()


class PostgresViewSink(DynamicSink):
    """A Bytewax sink of row lists into the view tables; refused rows go to `on_reject`; command results
    older than `results_ttl_s` are deleted as it goes and on close (None: kept); `tally` counts the rows
    each table took; `straight`: tables empty at the start that only this sink writes (see `write_rows`)."""

    def __init__(self, url: str, on_reject: Rejected | None = None, results_ttl_s: int | None = None,
                 tally: Counter | None = None, straight: frozenset[str] = frozenset()):
        self._url, self._on_reject, self._results_ttl_s, self._tally = url, on_reject, results_ttl_s, tally
        self._straight = straight

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._url, self._on_reject, self._results_ttl_s, self._tally, self._straight)


def empty_tables(url: str, tables: Iterable[str]) -> frozenset[str]:
    """Which of `tables` hold no row now."""
    with psycopg.connect(url) as conn:
        return frozenset(t for t in tables if conn.execute(f"SELECT NOT EXISTS (SELECT FROM {t})").fetchone()[0])
