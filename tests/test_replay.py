"""`buyit replay` rebuilds the read side from the event topics: into a fresh schema it equals the live
views, in place it changes nothing, `--verify` finds a tampered row, `--since` writes only what changed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from buyit import replay
from buyit.cli import app
from tests.conftest import private_stack
from tests.helpers import eventually
from tests.payments import pay
from tests.test_cart_api import add, listed_product

pytestmark = pytest.mark.integration

# Every view table by a total order of its rows. Written here, not taken from sinks/compare.py: the
# check of the replay must not trust the checker it also tests.
TABLES = {"users": "user_id", "products": "product_id", "stock": "product_id", "carts": "cart_id",
          "orders": "order_id", "shipments": "shipment_id", "payments": "payment_id",
          "ledger_transactions": "transaction_id", "ledger_entries": "transaction_id, seq",
          "ledger_accounts": "account_id", "command_results": "command_id"}

# A window minute's parts (on time, late) may split differently in a replay; their sum may not.
WINDOWS = {"sales_minutes": ("window_start, seller_id, product_id", "units_sold, gross_cents, orders, "
                             "reservations_made, reservations_expired, reservations_converted"),
           "cart_funnel_minutes": ("window_start", "carts_started, items_added, checkouts, paid, abandoned")}


def views(url: str, schema: str) -> dict:
    """Every view table's rows, the window tables summed over their parts."""
    with psycopg.connect(url) as conn:
        out = {t: conn.execute(f"SELECT * FROM {schema}.{t} ORDER BY {k}").fetchall() for t, k in TABLES.items()}
        for table, (key, counts) in WINDOWS.items():
            sums = ", ".join(f"sum({c})" for c in counts.split(", "))
            out[table] = conn.execute(f"SELECT {key}, {sums} FROM {schema}.{table} GROUP BY {key} "
                                      f"ORDER BY {key}").fetchall()
        return out


def same(live: dict, rebuilt: dict) -> bool:
    """Equal, or say which tables differ and how (for the failure message)."""
    for table in live:
        if live[table] != rebuilt[table]:
            theirs, mine = set(map(repr, live[table])), set(map(repr, rebuilt[table]))
            print(f"{table}: live only {theirs - mine}, replay only {mine - theirs}")
    return live == rebuilt


def every_row(url: str) -> dict:
    """Every row of every live table as stored, window parts and all."""
    with psycopg.connect(url) as conn:
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall()))
                for t in [*TABLES, *WINDOWS]}


def cache(r: redis.Redis, prefix: str = "") -> dict:
    keys = list(r.scan_iter(match=f"{prefix}cart:*"))
    return {k.decode()[len(prefix):]: json.loads(v) for k, v in zip(keys, r.mget(keys) if keys else [])}


@pytest.fixture(scope="module")
def stack():
    """A stack of this module's own: a replay reads the whole log, and must not meet what other tests left in
    the shared one (their deliberate poison, rows they wrote by hand)."""
    with private_stack("replay") as running:
        yield running


@pytest.fixture(scope="module")
def shop(stack):
    """A paid order, and a cart left open (so the cart cache has an entry); returns (seller, product id)."""
    from tests.conftest import Client

    def client(role=None):
        return Client(stack, f"{(role or 'anon').lower()}-{uuid.uuid4().hex[:8]}" if role else None, role)
    seller, pid = listed_product(client, 6)
    seller.post("/api/users/me")
    buyer, browsing = client("BUYER"), client("BUYER")
    add(buyer, pid, 2)
    answer = buyer.post("/api/cart/checkout").json()
    pay(stack, answer["clientSecret"])
    eventually(lambda: buyer.get(f"/api/orders/{answer['orderId']}").json().get("status") == "CONFIRMED")
    assert add(browsing, pid, 1).status_code == 201
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["soldQuantity"] == 2)
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").json()["reservedQuantity"] == 1)
    return seller, pid


@pytest.fixture
def settings(stack):
    return stack.settings.model_copy(update={"database_url": stack.env["DATABASE_URL"],
                                             "redis_url": stack.env["REDIS_URL"],
                                             "kafka_bootstrap_servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})


@pytest.fixture
def cli_env(stack, monkeypatch):
    """`buyit` run in this process against the test stack's parts."""
    from buyit.settings import get_settings
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class TestFreshSchema:
    def test_equals_the_live_views_and_cache(self, shop, settings, tmp_path):
        schema = f"replay_{uuid.uuid4().hex[:8]}"
        summary = replay.run(settings, schema, lake=tmp_path / "lake", progress=False)
        url = settings.database_url
        rebuilt = views(url, schema)
        assert rebuilt["orders"] and rebuilt["ledger_entries"] and rebuilt["sales_minutes"] and rebuilt["carts"]
        assert eventually(lambda: same(views(url, "public"), rebuilt), what="live views equal the replay")
        r = redis.Redis.from_url(settings.redis_url)
        assert cache(r) and cache(r, f"{schema}:") == cache(r), "the cart cache rebuilt equals the live one"
        assert summary.events > 0 and summary.written["orders"] > 0 and summary.written["lake events"] > 0
        assert not summary.dead
        assert list((tmp_path / "lake" / "facts" / "order_lines").glob("*/*.parquet"))


    def test_the_same_in_one_process_or_three(self, shop, settings):
        """Three processes each fold the aggregates whose key falls to them, and their window minutes are
        summed: the rows are those one process writes."""
        one, three = (f"replay_{uuid.uuid4().hex[:8]}" for _ in range(2))
        alone = replay.run(settings, one, progress=False, processes=1)
        split = replay.run(settings, three, progress=False, processes=3)
        assert views(settings.database_url, one) == views(settings.database_url, three)
        assert alone.events == split.events and not alone.dead and not split.dead
        assert alone.written["orders"] == split.written["orders"] > 0


    def test_a_process_that_fails_fails_the_replay(self, shop, settings):
        """One process cannot write (its cart cache is unreachable): the replay raises what it met, at once,
        and leaves no process behind."""
        import multiprocessing
        broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
        with pytest.raises(RuntimeError, match="ConnectionError"):
            replay.run(broken, f"replay_{uuid.uuid4().hex[:8]}", progress=False, processes=2)
        assert not multiprocessing.active_children()


class TestInPlace:
    def test_twice_changes_nothing(self, shop, settings, tmp_path):
        url = settings.database_url
        schema = f"replay_{uuid.uuid4().hex[:8]}"  # the live views have caught up with the topics' ends
        replay.run(settings, schema, progress=False)
        eventually(lambda: same(views(url, "public"), views(url, schema)), what="live views caught up")
        before = every_row(url)
        cached = cache(redis.Redis.from_url(settings.redis_url))
        for _ in range(2):
            summary = replay.run(settings, lake=tmp_path / "lake", progress=False)
            assert every_row(url) == before
            written = {k: n for k, n in summary.written.items() if n and not k.startswith("lake")}
            assert written == {}, "version guards turn every row away, equal minutes are left alone"
        assert cache(redis.Redis.from_url(settings.redis_url)) == cached


class TestVerify:
    def test_healthy_then_a_tampered_row_is_found(self, shop, cli_env, settings):
        seller, pid = shop
        runner = CliRunner()
        healthy = eventually(lambda: (lambda r: r if r.exit_code == 0 else None)(
            runner.invoke(app, ["replay", "--verify", "--no-progress"])), timeout=40, what="verify passes")
        assert "0 differences" in healthy.output
        url = settings.database_url
        with psycopg.connect(url, autocommit=True) as conn:  # the fault: a view row no event explains
            conn.execute("UPDATE stock SET available_quantity = available_quantity + 5, "
                         "total_quantity = total_quantity + 5 WHERE product_id = %s", (pid,))
        try:
            found = runner.invoke(app, ["replay", "--verify", "--no-progress"])
            assert found.exit_code == 1, found.output
            lines = [line for line in found.output.splitlines() if line.startswith("DIFFERENT")]
            assert len(lines) == 1 and f"stock ('{pid}',)" in lines[0] and "available_quantity" in lines[0], lines
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("UPDATE stock SET available_quantity = available_quantity - 5, "
                             "total_quantity = total_quantity - 5 WHERE product_id = %s", (pid,))
        with psycopg.connect(url) as conn:
            left = conn.execute("SELECT count(*) FROM information_schema.schemata "
                                "WHERE schema_name LIKE 'replay_verify_%'").fetchone()[0]
        assert left == 0, "the temporary schema is dropped"
        assert not cache(redis.Redis.from_url(settings.redis_url), "replay_verify_*:")


class TestSince:
    def test_writes_only_what_changed_since(self, shop, client, settings):
        seller, old_pid = shop
        since = datetime.now(UTC)
        _, new_pid = listed_product(client, 3)
        schema = f"replay_{uuid.uuid4().hex[:8]}"
        summary = replay.run(settings, schema, since=since, progress=False)
        assert 0 < summary.fresh < summary.events
        with psycopg.connect(settings.database_url) as conn:
            stock = dict(conn.execute(f"SELECT product_id, total_quantity FROM {schema}.stock").fetchall())
        # The live view follows the events within the projection's fetch wait (250 ms): wait for it.
        def live_stock():
            with psycopg.connect(settings.database_url) as conn:
                row = conn.execute("SELECT total_quantity FROM stock WHERE product_id = %s", (new_pid,)).fetchone()
            return row if row and row[0] == 3 else None
        live = eventually(live_stock, timeout=10, what="the live view has the new product's stock")
        assert stock == {new_pid: live[0]} == {new_pid: 3}, "folded from the start, written only if changed since"


class TestWindowMinutes:
    def test_only_differing_minutes_are_replaced(self, stack, settings):
        """A replay's minutes against a target table: a minute only the replay has is written, one only the
        table has is removed, one whose sums differ is removed and written again (no part left twice), an
        equal one is not touched."""
        from buyit.bootstrap import create_schema
        from sinks.views import Row
        from sinks.window_rebuild import replace_minutes
        schema = f"replay_{uuid.uuid4().hex[:8]}"
        create_schema(settings.database_url, schema)

        def minute(n: int, units: int, part: str = "on_time") -> Row:
            at = datetime(2026, 1, 1, 12, n, tzinfo=UTC)
            return Row("sales_minutes", ("window_start", "seller_id", "product_id", "part"), {
                "window_start": at, "seller_id": "s", "product_id": "p", "part": part, "units_sold": units,
                "gross_cents": 100 * units, "orders": 1, "reservations_made": 0, "reservations_expired": 0,
                "reservations_converted": 0, "closed": True, "version": units})

        def replayed(n: int, units: int) -> tuple:  # a replay's minute: (its key, (its counts, its facts))
            return (datetime(2026, 1, 1, 12, n, tzinfo=UTC), "s", "p"), ((units, 100 * units, 1, 0, 0, 0), units)

        table_only, differs, equal = minute(1, 1), minute(2, 2), minute(3, 3)
        with psycopg.connect(replay.in_schema(settings.database_url, schema)) as conn:
            cols = list(table_only.values)
            for row in (table_only, differs, minute(2, 5, "late"), equal):
                conn.execute(f"INSERT INTO sales_minutes ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                             [row.values[c] for c in cols])
            conn.commit()
            mine = dict(replayed(n, units) for n, units in ((2, 9), (3, 3), (4, 4)))  # differs, equal, replay only
            written = replace_minutes(conn, {"sales_minutes": mine}, None, None)
            got = conn.execute("SELECT extract(minute FROM window_start)::int, part, units_sold, gross_cents, closed, "
                               "version FROM sales_minutes ORDER BY 1, 2").fetchall()
            conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
            conn.commit()
        assert got == [(n, "on_time", units, 100 * units, True, units) for n, units in ((2, 9), (3, 3), (4, 4))]
        assert written == {"sales_minutes": 2, "sales_minutes minutes replaced": 3}
