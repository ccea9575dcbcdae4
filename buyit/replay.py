"""`buyit replay`: rebuild the read side from the event topics, in place or into a fresh schema, and
`--verify` it against the live views.

What is rebuilt: the Postgres views (with `command_results` and the per-minute windows), the Redis cart
cache and, unless told otherwise, the Parquet lake. How: `dataflows/replay.py` (the projection's fold,
no decider, nothing produced, nothing external called) run to the ends the topics had at the start.

In place (the default), version-guarded upserts make a replay of current views a no-op: the summary
then shows no rows written. `--schema NAME` rebuilds into that schema (created if missing), the cart
cache under the key prefix `NAME:` and the lake in `lake-NAME` beside the live one, so readers can be
switched to it (how a projection change is rolled out).

`--since TIME` (rebuild what changed since TIME): every event is still read and folded, because a view
is its aggregate's whole history; what is written is limited to the view rows and cart cache entries of
aggregates with an event at or after TIME, the answers of commands answered since, the window minutes
from TIME's minute on (whole minutes, from all their facts), and the lake rows of events since TIME.
"At or after TIME" is Kafka's record timestamp (when the event was stored), found with
`offsets_for_times`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from buyit.settings import Settings

LIVE = None  # the schema DATABASE_URL's search path names (in place)


@dataclass
class Summary:
    """What a replay did."""

    events: int
    fresh: int
    seconds: float
    written: Counter = field(default_factory=Counter)
    dead: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        out = [f"replayed {self.events:,} events in {self.seconds:.1f} s ({self.rate:,.0f} events/s)"
               + (f", {self.fresh:,} of them since --since" if self.fresh != self.events else "")]
        tables = sorted(k for k in self.written if self.written[k])
        out.append("rows written: " + (", ".join(f"{k} {self.written[k]:,}" for k in tables) or "none"))
        out.append("dead letters: " + (", ".join(f"{k} {n:,}" for k, n in sorted(self.dead.items())) or "none"))
        return out


def in_schema(database_url: str, schema: str | None) -> str:
    """The connection string whose search path is `schema` (None: as given)."""
    if schema is None:
        return database_url
    return psycopg.conninfo.make_conninfo(database_url, options=f"-csearch_path={schema}")


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class _Bar:
    """A rich progress bar of offsets read against the offsets to read, with rate and time left. With
    several processes each reads every offset: the bar shows their mean."""

    def __init__(self, plan, show: bool, readers: int = 1):
        self._starts, self._ends, self._readers = plan.starts, plan.ends, readers
        self._done: dict[tuple[int, str, int], int] = {}
        self._progress = None
        if show:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self._progress = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                      TimeRemainingColumn(), console=Console(stderr=True), refresh_per_second=4)
            self._task = self._progress.add_task("replay", total=plan.total, rate="")
            self._started = time.monotonic()

    def __enter__(self):
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress:
            self._progress.stop()

    def read(self, partition: int, next_offsets: dict[str, int], reader: int = 0) -> None:
        """The source's `on_read`: where `reader` has read partition `partition` of each topic to."""
        for topic, at in next_offsets.items():
            tp = (topic, partition)
            self._done[(reader, *tp)] = min(at, self._ends[tp]) - self._starts[tp]
        if self._progress:
            done = sum(self._done.values()) // self._readers
            rate = done / max(time.monotonic() - self._started, 1e-6)
            self._progress.update(self._task, completed=done, rate=f"{rate:,.0f}/s")


@dataclass
class _Part:
    """What one replay process did: rows written, dead letters by reason."""

    written: Counter
    dead: Counter


def run(settings: Settings, schema: str | None = LIVE, since: datetime | None = None, lake: Path | None = None,
        cart_prefix: str | None = None, progress: bool = True, processes: int | None = None) -> Summary:
    """Replay into `schema` (None: in place), the lake into `lake` (None: no lake), the cart cache under
    `cart_prefix` (default: none in place, `schema:` for a schema), split over `processes` (default
    `BUYIT_REPLAY_PROCESSES`); see the module docstring."""
    from buyit.bootstrap import create_schema
    from dataflows import replay
    from sinks.postgres import empty_tables
    from sinks.views import TABLES
    from sinks.window_rebuild import replace_minutes, summed

    began = datetime.now(UTC)
    if schema is not None:
        create_schema(settings.database_url, schema)
    url = in_schema(settings.database_url, schema)
    if cart_prefix is None:
        cart_prefix = f"{schema}:" if schema is not None else ""
    plan = replay.plan(settings.brokers, settings.buyit_topic_partitions, since)
    processes = processes or settings.buyit_replay_processes
    started = time.monotonic()
    # Windows: each minute whole, summed over the processes, then written where the target differs. In
    # place, the live projection is still adding to the newest minutes: those are left to it.
    open_from = minute(began) - timedelta(minutes=1) - _wait() if schema is None else None
    first = minute(since) if since else None
    written: Counter = Counter()

    def write_windows(parts: list) -> None:
        """Every process's minutes are in: write them while the processes write their last rows."""
        with psycopg.connect(url) as conn:
            written.update(replace_minutes(conn, summed(parts), first, open_from))

    # A schema of the replay's own: the tables it finds empty get their rows copied straight in, no upsert
    straight = empty_tables(url, TABLES) if schema is not None else frozenset()
    job = functools.partial(_replay_part, settings, url, cart_prefix, lake, plan, straight, first)
    if processes == 1:
        minutes: list = []
        with _Bar(plan, progress) as bar:
            parts = [job(None, bar.read, minutes.append)]
        write_windows(minutes)
    else:
        parts = _in_processes(job, processes, plan, progress, write_windows)
    written.update(sum((p.written for p in parts), Counter()))
    dead = sum((p.dead for p in parts), Counter())
    return Summary(plan.total, plan.fresh, time.monotonic() - started, written, dead)


def _replay_part(settings: Settings, url: str, cart_prefix: str, lake: Path | None, plan, straight: frozenset[str],
                 first: datetime | None, shard, on_read, on_minutes) -> _Part:
    """Replay the aggregates of `shard` (None: all) in this process; `on_read(partition, next offsets)`;
    `on_minutes(minutes)` hears its window minutes from `first` on (sinks/window_rebuild.py `replayed`) once
    every record is folded; `straight`: tables to copy rows straight into (sinks/postgres.py `write_rows`)."""
    from bytewax.testing import run_main

    from dataflows import replay
    from sinks.cart_cache import CartCacheSink
    from sinks.lake import LakeSink
    from sinks.postgres import PostgresViewSink
    from sinks.window_rebuild import replayed

    written: Counter = Counter()
    refused: list[str] = []
    flow, _, dead = replay.replay_flow(
        replay.source(settings.brokers, settings.buyit_topic_partitions, plan.bounds(on_read), shard),
        PostgresViewSink(url, lambda rows, err: refused.append(err), settings.buyit_command_results_ttl_s, written,
                         straight),
        CartCacheSink(settings.redis_url, cart_prefix, written),
        LakeSink(lake, written) if lake is not None else None,
        lambda minutes: on_minutes(replayed(minutes.items(), first)))
    with _few_collections():
        # one epoch for the whole run: an epoch's end snapshots every stateful step, which only recovery reads
        run_main(flow, epoch_interval=timedelta(days=1))
    reasons = replay.dead_reasons(dead)
    if refused:
        reasons["view_rows_refused"] += len(refused)
    return _Part(written, reasons)


def _in_processes(job, processes: int, plan, progress: bool, on_minutes) -> list[_Part]:
    """Run `job(shard, on_read, on_minutes)` in `processes` forked processes, one shard each, showing their
    progress; once every process has folded its records, calls `on_minutes` here with their minutes (while
    they write their last rows); returns their parts, or raises the first failure (the others stopped)."""
    import multiprocessing
    import queue as queues
    import traceback

    from dataflows.kafka_io import Shard

    context = multiprocessing.get_context("fork")  # no re-import: a small replay would take longer to start
    reports = context.Queue()

    def child(index: int) -> None:
        def on_read(partition, next_offsets):
            reports.put(("read", index, (partition, dict(next_offsets))))

        def folded(minutes):
            reports.put(("minutes", index, minutes))
        try:
            reports.put(("done", index, job(Shard(index, processes), on_read, folded)))
        except BaseException:
            reports.put(("failed", index, traceback.format_exc()))
            raise

    workers = [context.Process(target=child, args=(i,), name=f"buyit-replay-{i}", daemon=True)
               for i in range(processes)]
    for w in workers:  # before the bar: its drawing thread must not be forked
        w.start()
    parts: dict[int, _Part] = {}
    minutes: dict[int, dict] = {}
    try:
        with _Bar(plan, progress, readers=processes) as bar:
            while len(parts) < processes:
                try:
                    kind, index, body = reports.get(timeout=0.5)
                except queues.Empty:
                    gone = [w for i, w in enumerate(workers) if i not in parts and w.exitcode is not None]
                    if gone:
                        raise RuntimeError(f"replay process {gone[0].name} exited with {gone[0].exitcode}")
                    continue
                if kind == "read":
                    bar.read(*body, reader=index)
                elif kind == "minutes":
                    minutes[index] = body
                    if len(minutes) == processes:
                        on_minutes([minutes[i] for i in range(processes)])
                elif kind == "done":
                    parts[index] = body
                else:
                    raise RuntimeError(f"replay process {index} failed:\n{body}")
        for w in workers:
            w.join()
        return [parts[i] for i in range(processes)]
    finally:
        for w in workers:  # a failed replay is abandoned: what it wrote is idempotent, and a rerun redoes it
            if w.is_alive():
                w.kill()
                w.join(5)


@contextlib.contextmanager
def _few_collections():
    """Python's cyclic GC scans the whole heap ever more often as the fold's states pile up (a third of
    a replay's time, measured): freeze what exists, and collect young objects far less often meanwhile."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _wait() -> timedelta:
    from dataflows.windows import WAIT
    return WAIT


@dataclass
class Verdict:
    """What `--verify` found."""

    summary: Summary
    differences: list[str]
    moved_on: list[str]
    rows_compared: int


def verify(settings: Settings, settle_s: float = 10.0, progress: bool = True) -> Verdict:
    """Replay into a temporary schema (and cart cache prefix), compare it with the live views and cache,
    then drop both. Differences that persist for `settle_s` count (the live projection may trail the
    topics' ends by a moment); rows the live side changed after the replay began are listed apart."""
    import redis

    from sinks.compare import compare_carts, compare_tables
    schema = f"replay_verify_{uuid.uuid4().hex[:10]}"
    prefix = f"{schema}:"
    client = redis.Redis.from_url(settings.redis_url)
    try:
        summary = run(settings, schema, cart_prefix=prefix, progress=progress)
        deadline = time.monotonic() + settle_s
        while True:
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                live = conn.execute("SELECT current_schema()").fetchone()[0]
                found = compare_tables(conn, live, schema, settings.buyit_command_results_ttl_s)
            differences = found.differences + compare_carts(client, prefix)
            if not differences or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return Verdict(summary, differences, found.moved_on, found.rows_compared)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
        client.close()
