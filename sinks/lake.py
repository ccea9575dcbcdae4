"""The Parquet lake: every event envelope, and the typed fact tables of sinks/facts.py, for DuckDB.

Layout, hive-partitioned by the event's `occurredAt` day in UTC:
`<lake>/events/topic=<topic>/date=<YYYY-MM-DD>/part-<part>-<generation>-<seq>.parquet` (raw envelopes)
and `<lake>/facts/<table>/date=<YYYY-MM-DD>/part-<part>-<generation>-<seq>.parquet` (typed rows).

Nothing is lost on a crash, and nothing a crash replays is written twice. The sink is a Bytewax
`FixedPartitionedSink`: a partition's recovery snapshot is (generation, next file number, the rows
still buffered). So every row a snapshot covers is either in a file or in the snapshot itself, and on
resume the partition first deletes its files numbered at or after the snapshot's (written after it;
the dataflow re-reads their rows from the snapshot's offsets) and takes the buffered rows back. A
fresh start (no snapshot) takes a new generation, so it never overwrites an older run's files.

What the log itself repeats (an event produced twice, e.g. by a decider replaying after its own
crash) still reaches the lake twice as raw rows and facts, so readers of those keep one row per
natural key (sinks/analytics.py by `event_id`, sinks/lake_sql.py's views by `(event_id, line)`);
the `sales` rows come from the projection's fold, which skips redelivered events, and need no dedupe.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from buyit.envelope import Envelope
from sinks.facts import Derived, columns, fact_rows, utc

log = logging.getLogger(__name__)

FLUSH_ROWS = 20_000  # buffered rows (raw + facts) that make a flush; the snapshot carries fewer
FLUSH_SECONDS = 2.0  # and how long a row may wait for one: a quiet stream still reaches the queries
PARTS = ("lake-0", "lake-1")  # fixed forever: a resume state belongs to its part's name
EVENTS = "events"  # the buffer's name for raw envelopes, beside the fact tables'
_ENCODE = msgspec.json.Encoder()

# Raw rows: event_id, type, key, occurred_at, correlation_id, version, payload (JSON), topic.
_EVENT_COLUMNS = (("event_id", "VARCHAR"), ("type", "VARCHAR"), ("key", "VARCHAR"), ("occurred_at", "TIMESTAMP"),
                  ("correlation_id", "VARCHAR"), ("version", "BIGINT"), ("payload", "VARCHAR"), ("topic", "VARCHAR"))
# Times travel as the envelopes' ISO strings and are cast once per column by DuckDB (below).
_ARROW = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "INTEGER": pa.int32(), "TIMESTAMP": pa.string()}


def lake_dir(data_dir: Path) -> Path:
    """Where the lake lives inside `BUYIT_DATA_DIR`."""
    return Path(data_dir).resolve() / "lake"


def row(topic: str, envelope: Envelope) -> tuple:
    """One raw lake row, in `_EVENT_COLUMNS` order."""
    return (envelope.event_id, envelope.type, envelope.key, envelope.occurred_at, envelope.correlation_id,
            envelope.version, _ENCODE.encode(envelope.payload).decode(), topic)


def day_of(occurred_at: str) -> str:
    """The UTC day of an ISO time: its first ten characters when it is stamped in UTC (as BuyIt stamps)."""
    if occurred_at.endswith(("+00:00", "Z")):
        return occurred_at[:10]
    return utc(occurred_at).date().isoformat()


def keyed(topic: str, item: Any) -> tuple[str, tuple[str, Any]]:
    """An item for LakeSink: keyed by topic for routing, and the topic again in the value, because a
    FixedPartitionedSink hands its partitions the values only."""
    return topic, (topic, item)


def facts_of(envelope: Envelope, event: Any = None) -> list[tuple[str, tuple]]:
    """The fact rows of one event; an event the mapping cannot read is logged and left to the raw table."""
    try:
        return fact_rows(envelope, event)
    except Exception:  # the projection dead-letters what it cannot fold; the lake keeps the raw row
        log.exception("no fact rows for event %s (%s)", envelope.event_id, envelope.type)
        return []


class LakePartition(StatefulSinkPartition):
    """One part of the lake's writer: buffers rows, writes them at FLUSH_ROWS and on close, and
    snapshots what is still buffered (see the module docstring)."""

    def __init__(self, root: Path, part: str, resume: tuple | None, tally: Counter | None = None):
        self._root, self._part = Path(root), part
        self._tally = tally if tally is not None else Counter()  # rows written, for a replay's summary
        self._con = duckdb.connect(config={"threads": 1})
        try:  # with ICU loaded, TIMESTAMPTZ -> TIMESTAMP gives the session's zone; without, UTC already
            self._con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            pass
        self._buffer: dict[str, list[tuple]] = defaultdict(list)
        if resume is None:
            # the process id too: a replay's processes start their parts in the same instant
            self._generation, self._seq = f"{time.time_ns():x}p{os.getpid()}", 0
        else:
            self._generation, self._seq, pending = resume
            self._discard_from(self._seq)
            for table, rows in pending.items():
                self._buffer[table].extend(rows)
        self._rows = sum(len(rows) for rows in self._buffer.values())
        self._since = time.monotonic()  # when the oldest buffered row came (or the buffer was last written)
        # Bytewax snapshots only the parts that had items in an epoch: a quiet part's last rows would wait for
        # the next item. This thread writes them once they waited FLUSH_SECONDS. Safe against a crash: a file
        # written after the latest snapshot is discarded on resume and its rows come again (`_discard_from`).
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ager = threading.Thread(target=self._flush_aged, name=f"lake-{part}-ager", daemon=True)
        self._ager.start()

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        """`(topic, item)` items: an `Envelope`, an `(envelope, event)` pair (decoded already), or `Derived`."""
        with self._lock:
            self._take(items)

    def _take(self, items: list[tuple[str, Any]]) -> None:
        raw, facts = self._buffer[EVENTS], []
        for topic, item in items:
            if isinstance(item, Derived):
                facts.extend(item.rows)
                continue
            envelope, event = item if isinstance(item, tuple) else (item, None)
            raw.append(row(topic, envelope))
            facts.extend(facts_of(envelope, event))
        for table, values in facts:
            self._buffer[table].append(values)
        if not self._rows:
            self._since = time.monotonic()
        self._rows += len(items) + len(facts)
        if self._rows >= FLUSH_ROWS or self._waited():
            self.flush()

    def snapshot(self) -> tuple:
        """(generation, the next file's number, the rows not yet in a file): all a resume needs. Rows that
        waited FLUSH_SECONDS are written first."""
        with self._lock:
            if self._waited():
                self.flush()
            return (self._generation, self._seq, {table: list(rows) for table, rows in self._buffer.items() if rows})

    def _flush_aged(self) -> None:
        while not self._closing.wait(FLUSH_SECONDS / 4):
            with self._lock:
                if self._waited():
                    try:
                        self.flush()
                    except Exception:  # the next write or snapshot tries again, and raises there
                        log.exception("lake flush failed")

    def _waited(self) -> bool:
        return self._rows > 0 and time.monotonic() - self._since >= FLUSH_SECONDS

    def flush(self) -> None:
        """Write the buffer, one file per (table, day), all numbered `self._seq`; on failure nothing is
        cleared, and the retry rewrites the same names."""
        for table, rows in self._buffer.items():
            groups: dict[tuple[str, str], list[tuple]] = defaultdict(list)
            if table == EVENTS:  # raw rows are partitioned by topic too
                for values in rows:
                    groups[(f"events/topic={values[7]}", day_of(values[3]))].append(values)
            else:
                for values in rows:
                    groups[(f"facts/{table}", day_of(values[2]))].append(values)
            for (where, day), group in groups.items():
                self._write(self._root / where / f"date={day}", _EVENT_COLUMNS if table == EVENTS else columns(table),
                            group)
            self._tally["lake events" if table == EVENTS else "lake fact rows"] += len(rows)
        self._buffer.clear()
        self._rows = 0
        self._seq += 1

    def _write(self, folder: Path, cols: tuple[tuple[str, str], ...], rows: list[tuple]) -> Path:
        """`rows` as one Parquet file in `folder`, atomically: an Arrow table handed to DuckDB once."""
        table = pa.table([pa.array(values, _ARROW[kind]) for (_, kind), values in zip(cols, zip(*rows))],
                         names=[name for name, _ in cols])
        select = ", ".join(f"{name}::TIMESTAMPTZ::TIMESTAMP AS {name}" if kind == "TIMESTAMP" else name
                           for name, kind in cols)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{self._part}-{self._generation}-{self._seq:08d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")  # readers glob *.parquet: they never see a half-written file
        self._con.register("batch", table)
        try:
            # snappy: decodes about twice as fast as zstd in the sales scan (bench/analytics.py)
            self._con.execute(f"COPY (SELECT {select} FROM batch) TO '{_quoted(tmp)}' (FORMAT parquet, "
                              "COMPRESSION snappy)")
        finally:
            self._con.unregister("batch")
        os.replace(tmp, path)
        return path

    def _discard_from(self, seq: int) -> None:
        """Delete this part's files of this generation numbered `seq` or later: written after the snapshot
        being resumed, their rows come again from the replay or the snapshot's buffer."""
        prefix = f"part-{self._part}-{self._generation}-"
        for path in self._root.glob(f"*/*/date=*/{prefix}*.parquet"):
            if int(path.stem.removeprefix(prefix)) >= seq:
                log.info("lake resume: discarding %s (after the snapshot)", path)
                path.unlink()

    def close(self) -> None:
        self._closing.set()
        self._ager.join()
        with self._lock:
            if self._rows:
                self.flush()
            self._con.close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class LakeSink(FixedPartitionedSink):
    """A Bytewax sink of `(topic, item)` into the Parquet lake rooted at `root` (see LakePartition); `tally`
    counts the rows written."""

    def __init__(self, root: Path, tally: Counter | None = None):
        self._root, self._tally = Path(root), tally

    def list_parts(self) -> list[str]:
        return list(PARTS)

    def build_part(self, step_id: str, for_part: str, resume_state: tuple | None) -> LakePartition:
        return LakePartition(self._root, for_part, resume_state, self._tally)
