"""The lake loses nothing on a crash and writes nothing twice: a partition "crashed" (dropped without
close) after a snapshot, resumed from it and fed again what came after it, holds every row exactly once.
And the lake sink wired into the real projection flow gives the sales the oracle expects."""

from __future__ import annotations

from collections import Counter

import duckdb
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows.kafka_io import Record
from dataflows.project import build_flow
from sinks import lake, lake_queries
from sinks.lake import LakePartition, LakeSink
from tests.sim.market_day import market_day
from tests.test_analytics_day import expect_sales_by, lake_items


@pytest.fixture(scope="module")
def day():
    return market_day(carts=700)


def on_disk(root) -> Counter:
    """(table, event_id, line) of every row in the lake's files, counted: raw rows have line -1."""
    con = duckdb.connect()
    held = Counter()
    for path in root.glob("events/*/*/*.parquet"):
        held.update(("events", e, -1) for (e,) in con.execute(f"SELECT event_id FROM '{path}'").fetchall())
    for path in root.glob("facts/*/*/*.parquet"):
        table = path.parent.parent.name
        held.update((table, e, n) for e, n in con.execute(f"SELECT event_id, line FROM '{path}'").fetchall())
    return held


def expected(items) -> Counter:
    want = Counter()
    for _, item in items:
        if isinstance(item, lake.Derived):
            want.update((t, r[0], r[1]) for t, r in item.rows)
        else:
            envelope, event = item
            want[("events", envelope.event_id, -1)] += 1
            want.update((t, r[0], r[1]) for t, r in lake.fact_rows(envelope, event))
    return want


def crash_and_resume(root, items, cut: int, crash: int, replay_flush_rows: int | None = None) -> None:
    """Write items[:cut], snapshot, write items[cut:crash], crash; resume and write items[cut:] (the replay,
    which cuts its batches elsewhere, so its files are not the crashed run's)."""
    part = LakeSink(root).build_part("write_lake", "lake-0", None)
    for i in range(0, cut, 500):
        part.write_batch(items[i:min(i + 500, cut)])
    state = part.snapshot()
    for i in range(cut, crash, 500):
        part.write_batch(items[i:min(i + 500, crash)])
    part._closing.set()  # the crash: the process is gone, its threads with it; no close, no flush
    part._ager.join()
    del part
    if replay_flush_rows:  # the restarted process fills its buffer differently (batches, settings)
        lake.FLUSH_ROWS = replay_flush_rows
    resumed = LakeSink(root).build_part("write_lake", "lake-0", state)
    for i in range(cut, len(items), 700):
        resumed.write_batch(items[i:i + 700])
    resumed.close()


class TestCrash:
    @pytest.mark.parametrize("cut, crash", [(2_000, 2_000), (2_000, 5_500), (3_100, 3_900)],
                             ids=["crash_at_the_snapshot", "files_written_after_it", "buffer_only_after_it"])
    def test_every_row_once_after_a_crash(self, day, tmp_path, monkeypatch, cut, crash):
        monkeypatch.setattr(lake, "FLUSH_ROWS", 3_000)  # files before and after the snapshot, rows buffered at it
        items = list(lake_items(day.events[:8_000], {}))
        assert len(items) > crash
        crash_and_resume(tmp_path / "lake", items, cut, crash)
        assert on_disk(tmp_path / "lake") == expected(items)

    @pytest.mark.parametrize("fault", ["snapshot_without_the_buffer", "resume_keeps_later_files"])
    def test_the_check_catches_the_old_faults(self, day, tmp_path, monkeypatch, fault):
        """The old sink's fault (buffered rows not in the snapshot: lost) and a resume that keeps what it
        wrote after the snapshot (duplicates) both fail the check."""
        monkeypatch.setattr(lake, "FLUSH_ROWS", 3_000)
        if fault == "snapshot_without_the_buffer":
            original = LakePartition.snapshot
            monkeypatch.setattr(LakePartition, "snapshot", lambda self: (*original(self)[:2], {}))
        else:
            monkeypatch.setattr(LakePartition, "_discard_from", lambda self, seq: None)
        items = list(lake_items(day.events[:8_000], {}))
        crash_and_resume(tmp_path / "lake", items, 3_100, 6_500, replay_flush_rows=20_000)
        held, want = on_disk(tmp_path / "lake"), expected(items)
        assert held != want
        assert (want - held if fault == "snapshot_without_the_buffer" else held - want)  # lost, or twice


def test_the_projection_flow_writes_the_sales(day, tmp_path):
    """The lake sink in the real projection flow (Bytewax, in process): sales-by-seller equals the oracle."""
    records = [Record(h.topic, h.envelope.key, h.envelope.encode(), n) for n, h in enumerate(day.events)]
    records += records[:500]  # the log repeats some: the fold skips them, the raw rows dedupe
    flow = build_flow(TestingSource(records), TestingSink([]), TestingSink([]), TestingSink([]),
                      lake_sink=LakeSink(tmp_path / "lake"))
    run_main(flow)
    want = expect_sales_by(("bucket", "sellerId", "currency"), lambda d: lambda b, i: (b, i.seller_id, i.currency))
    assert lake_queries.run(tmp_path / "lake", "sales-by-seller") == want(day, "day", None, None, None)
