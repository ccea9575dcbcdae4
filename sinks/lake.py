"""The Parquet lake: every event envelope, and the typed fact tables of sinks/facts.py, for DuckDB.

Layout, hive-partitioned by the event's `occurredAt` day in UTC:
`<lake>/events/topic=<topic>/date=<YYYY-MM-DD>/part-<worker>-<digest>.parquet` (raw envelopes) and
`<lake>/facts/<table>/date=<YYYY-MM-DD>/part-<worker>-<digest>.parquet` (typed rows).

Idempotence, in two layers. A file's name is a digest of the natural keys of the rows it holds
(`event_id`, and `line` for facts), so a batch written again after a crash replaces its own file
instead of adding a copy. That is not enough on its own: a replay cuts its batches elsewhere, so
the same event can still land in two different files. Readers therefore keep one row per natural
key (sinks/analytics.py dedupes by `event_id`, sinks/lake_sql.py's views by `(event_id, line)`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import duckdb
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from buyit.envelope import Envelope
from sinks.facts import columns, fact_rows, utc

log = logging.getLogger(__name__)

FLUSH_ROWS = 5_000
FLUSH_SECONDS = 2.0

# One unnest per column zips the parameter lists back into rows: one query per file, no per-row inserts.
_BATCH = """CREATE OR REPLACE TEMP TABLE batch AS SELECT
  unnest($1::VARCHAR[]) AS event_id, unnest($2::VARCHAR[]) AS type, unnest($3::VARCHAR[]) AS key,
  unnest($4::TIMESTAMP[]) AS occurred_at, unnest($5::VARCHAR[]) AS correlation_id,
  unnest($6::BIGINT[]) AS version, unnest($7::VARCHAR[]) AS payload, unnest($8::VARCHAR[]) AS topic"""


def lake_dir(data_dir: Path) -> Path:
    """Where the lake lives inside `BUYIT_DATA_DIR`."""
    return Path(data_dir).resolve() / "lake"


def row(topic: str, envelope: Envelope) -> tuple:
    """One lake row: event_id, type, key, occurred_at, correlation_id, version, payload (JSON), topic."""
    return (envelope.event_id, envelope.type, envelope.key, utc(envelope.occurred_at), envelope.correlation_id,
            envelope.version, json.dumps(envelope.payload, separators=(",", ":")), topic)


def write_files(root: Path, rows: list[tuple], worker: int, con: duckdb.DuckDBPyConnection) -> list[Path]:
    """Write raw event `rows` as one Parquet file per (topic, date); returns the files written."""
    groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for r in rows:
        groups[(r[7], r[3].date().isoformat())].append(r)
    written = []
    for (topic, day), group in groups.items():
        folder = root / "events" / f"topic={topic}" / f"date={day}"
        con.execute(_BATCH, [list(col) for col in zip(*group)])
        written.append(_copy(con, folder, worker, _digest(r[0] for r in group)))
    return written


def write_facts(root: Path, facts: list[tuple[str, tuple]], worker: int,
                con: duckdb.DuckDBPyConnection) -> list[Path]:
    """Write `(table, row)` fact rows as one Parquet file per (table, date); returns the files written."""
    groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for table, r in facts:
        groups[(table, r[2].date().isoformat())].append(r)
    written = []
    for (table, day), group in groups.items():
        cols = columns(table)
        select = ", ".join(f"unnest(${n}::{kind}[]) AS {name}" for n, (name, kind) in enumerate(cols, 1))
        con.execute(f"CREATE OR REPLACE TEMP TABLE batch AS SELECT {select}", [list(c) for c in zip(*group)])
        folder = root / "facts" / table / f"date={day}"
        written.append(_copy(con, folder, worker, _digest(f"{r[0]}/{r[1]}" for r in group)))
    return written


def _digest(keys) -> str:
    """A file name part that only these rows' keys give (see the module docstring)."""
    sha = hashlib.sha256()
    for key in keys:
        sha.update(key.encode())
        sha.update(b"\n")
    return sha.hexdigest()[:24]


def _copy(con: duckdb.DuckDBPyConnection, folder: Path, worker: int, digest: str) -> Path:
    """COPY the temp table `batch` to `folder/part-<worker>-<digest>.parquet`, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{worker}-{digest}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")  # readers glob *.parquet: they never see a half-written file
    quoted = str(tmp).replace("'", "''")
    con.execute(f"COPY batch TO '{quoted}' (FORMAT parquet, COMPRESSION zstd)")
    os.replace(tmp, path)
    return path


def facts_of(items: list[tuple[str, Envelope]]) -> list[tuple[str, tuple]]:
    """The fact rows of a batch; an event the mapping cannot read is logged and left to the raw table."""
    out = []
    for _, envelope in items:
        try:
            out.extend(fact_rows(envelope))
        except Exception:  # the projection dead-letters what it cannot fold; the lake keeps the raw row
            log.exception("no fact rows for event %s (%s)", envelope.event_id, envelope.type)
    return out


class _Partition(StatelessSinkPartition):
    """Buffers rows; flushes at FLUSH_ROWS, or FLUSH_SECONDS after the oldest buffered row, and on close.

    A background thread does the timed flush, because Bytewax calls `write_batch` only when items
    arrive and the tail of a quiet stream must still reach the lake. Rows buffered when the process
    dies are lost from the lake until `buyit replay --since` (before the loss) writes them again.
    """

    def __init__(self, root: Path, worker: int, tally: Counter | None = None):
        self._root, self._worker = root, worker
        self._tally = tally if tally is not None else Counter()
        self._con = duckdb.connect()
        self._rows: list[tuple] = []
        self._facts: list[tuple[str, tuple]] = []
        self._since = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._tick, name=f"lake-flush-{worker}", daemon=True)
        self._timer.start()

    def write_batch(self, items: list[tuple[str, Envelope]]) -> None:
        with self._lock:
            if not self._rows:
                self._since = time.monotonic()
            self._rows.extend(row(topic, envelope) for topic, envelope in items)
            self._facts.extend(facts_of(items))
            if len(self._rows) >= FLUSH_ROWS:
                self._flush()

    def _tick(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS / 4):
            with self._lock:
                if self._rows and time.monotonic() - self._since >= FLUSH_SECONDS:
                    try:
                        self._flush()
                    except Exception:  # keep the rows and the thread; the next tick tries again
                        log.exception("lake flush failed")

    def _flush(self) -> None:
        """Write the buffer (the caller holds the lock); on failure the rows stay buffered."""
        write_files(self._root, self._rows, self._worker, self._con)
        write_facts(self._root, self._facts, self._worker, self._con)  # after a failure above, both are retried
        self._tally.update({"lake events": len(self._rows), "lake fact rows": len(self._facts)})
        self._rows, self._facts = [], []

    def close(self) -> None:
        self._closed.set()
        self._timer.join()
        with self._lock:
            if self._rows:
                self._flush()
        self._con.close()


class LakeSink(DynamicSink):
    """A Bytewax sink of `(topic, envelope)` items into the Parquet lake rooted at `root`; `tally` counts the
    rows written."""

    def __init__(self, root: Path, tally: Counter | None = None):
        self._root, self._tally = Path(root), tally

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._root, worker_index, self._tally)
