"""The Parquet event lake: every event envelope appended to hive-partitioned Parquet files for DuckDB.

Layout: `<lake>/events/topic=<topic>/date=<YYYY-MM-DD>/part-<worker>-<uuid>.parquet`, the date being
the event's `occurredAt` in UTC. Files are only ever added, never rewritten; delivery is at least
once, so readers dedupe by `event_id` (see sinks/analytics.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from buyit.envelope import Envelope

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


def utc(occurred_at: str) -> datetime:
    """`occurredAt` as a naive UTC timestamp (what the Parquet column holds)."""
    moment = datetime.fromisoformat(occurred_at)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def row(topic: str, envelope: Envelope) -> tuple:
    """One lake row: event_id, type, key, occurred_at, correlation_id, version, payload (JSON), topic."""
    return (envelope.event_id, envelope.type, envelope.key, utc(envelope.occurred_at), envelope.correlation_id,
            envelope.version, json.dumps(envelope.payload, separators=(",", ":")), topic)


def write_files(root: Path, rows: list[tuple], worker: int, con: duckdb.DuckDBPyConnection) -> list[Path]:
    """Write `rows` as one new Parquet file per (topic, date); returns the files written."""
    groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for r in rows:
        groups[(r[7], r[3].date().isoformat())].append(r)
    written = []
    for (topic, day), group in groups.items():
        folder = root / "events" / f"topic={topic}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{worker}-{uuid.uuid4().hex}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")  # readers glob *.parquet: they never see a half-written file
        con.execute(_BATCH, [list(col) for col in zip(*group)])
        quoted = str(tmp).replace("'", "''")
        con.execute(f"COPY batch TO '{quoted}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, path)
        written.append(path)
    return written


class _Partition(StatelessSinkPartition):
    """Buffers rows; flushes at FLUSH_ROWS, or FLUSH_SECONDS after the oldest buffered row, and on close.

    A background thread does the timed flush, because Bytewax calls `write_batch` only when items
    arrive and the tail of a quiet stream must still reach the lake. Rows buffered when the process
    dies are lost from the lake until a backfill (replay from offset 0 into a fresh lake folder).
    """

    def __init__(self, root: Path, worker: int):
        self._root, self._worker = root, worker
        self._con = duckdb.connect()
        self._rows: list[tuple] = []
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
        self._rows = []

    def close(self) -> None:
        self._closed.set()
        self._timer.join()
        with self._lock:
            if self._rows:
                self._flush()
        self._con.close()


class LakeSink(DynamicSink):
    """A Bytewax sink of `(topic, envelope)` items into the Parquet lake rooted at `root`."""

    def __init__(self, root: Path):
        self._root = Path(root)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._root, worker_index)
