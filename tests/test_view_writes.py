"""`sinks.postgres.write_rows`: a batch of `BULK` or more rows of one statement is copied into a scratch table
and upserted by one INSERT … SELECT; it must leave the tables exactly as writing row by row does. Rows for a
table that was empty and is the writer's alone (a replay into a fresh schema) are copied straight in."""

from __future__ import annotations

import uuid
from collections import Counter

import psycopg
import pytest

from buyit.bootstrap import create_schema
from buyit.replay import in_schema
from sinks import postgres
from sinks.postgres import BULK, PostgresViewSink, empty_tables, write_rows
from sinks.views import Row

pytestmark = pytest.mark.integration

N = BULK + 20


def stock(i: int, version: int, total: int = 10) -> Row:
    return Row("stock", ("product_id",), {
        "product_id": f"p{i:04d}", "seller_id": "s", "sku": f"sku-{i}", "total_quantity": total,
        "available_quantity": total, "reserved_quantity": 0, "allocated_quantity": 0, "sold_quantity": 0,
        "low_stock_threshold": 5, "version": version})


def answer(i: int, text: str) -> Row:
    return Row("command_results", ("command_id",), {"command_id": f"c{i:04d}", "requested_by": "u",
                                                     "result": f'{{"said": "{text}"}}',
                                                     "answered_at": "2026-12-03T12:00:00+00:00"}, guarded=False)


@pytest.fixture(params=["copied", "row by row"])
def conn(request, stack, monkeypatch):
    """A connection to a schema of its own, writing big batches by COPY or (BULK out of reach) row by row."""
    if request.param == "row by row":
        monkeypatch.setattr(postgres, "BULK", 10**9)
    url = stack.env["DATABASE_URL"]
    schema = f"writes_{uuid.uuid4().hex[:8]}"
    create_schema(url, schema)
    with psycopg.connect(in_schema(url, schema)) as conn:
        yield conn
        conn.rollback()
        conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
        conn.commit()


def table(conn, name: str, key: str) -> list[tuple]:
    return conn.execute(f"SELECT * FROM {name} ORDER BY {key}").fetchall()


def test_a_big_batch_takes_what_row_by_row_takes(conn):
    first = write_rows(conn, [stock(i, 2) for i in range(N)] + [answer(i, "first") for i in range(N)])
    assert first == {"stock": N, "command_results": N}
    # older versions are turned away, newer ones replace, new keys come in; an answer is written once
    again = [stock(i, 1, total=99) for i in range(0, N, 2)] + [stock(i, 3, total=7) for i in range(1, N, 2)]
    again += [stock(N + i, 1) for i in range(5)]
    assert write_rows(conn, again + [answer(i, "second") for i in range(N + 3)]) == {
        "stock": N // 2 + 5, "command_results": 3}
    stocks = table(conn, "stock", "product_id")
    assert len(stocks) == N + 5
    assert [(r[0], r[3], r[-1]) for r in stocks[:4]] == [("p0000", 10, 2), ("p0001", 7, 3), ("p0002", 10, 2),
                                                          ("p0003", 7, 3)]
    answers = table(conn, "command_results", "command_id")
    assert len(answers) == N + 3 and all(r[2] == {"said": "first"} for r in answers[:N])


def test_a_row_postgres_refuses_fails_the_batch_and_writes_none_of_it(conn):
    bad = stock(7, 1)
    bad.values["available_quantity"] = -1  # breaks a CHECK
    with pytest.raises(psycopg.errors.CheckViolation):
        write_rows(conn, [stock(i, 1) for i in range(N)] + [bad])
    assert table(conn, "stock", "product_id") == []


def test_rows_copied_straight_into_empty_tables_are_what_the_upsert_writes(conn):
    rows = [stock(i, 2) for i in range(N)] + [answer(i, "first") for i in range(5)]
    rows += [stock(3, 1, total=99), answer(2, "second")]  # an older version, a second answer: not taken
    assert write_rows(conn, rows, straight=frozenset({"stock", "command_results"})) == {"stock": N,
                                                                                         "command_results": 5}
    straight = table(conn, "stock", "product_id"), table(conn, "command_results", "command_id")
    conn.execute("TRUNCATE stock, command_results")
    write_rows(conn, rows)
    assert (table(conn, "stock", "product_id"), table(conn, "command_results", "command_id")) == straight


def test_a_key_already_there_fails_a_straight_batch_whole(conn):
    write_rows(conn, [stock(1, 1)])
    with pytest.raises(psycopg.errors.UniqueViolation):
        write_rows(conn, [stock(0, 1), stock(1, 2)], straight=frozenset({"stock"}))
    assert [(r[0], r[-1]) for r in table(conn, "stock", "product_id")] == [("p0001", 1)]


def test_the_sink_upserts_once_a_straight_batch_meets_a_key_it_wrote_before(stack):
    url = stack.env["DATABASE_URL"]
    schema = f"writes_{uuid.uuid4().hex[:8]}"
    create_schema(url, schema)
    url = in_schema(url, schema)
    written = Counter()
    part = PostgresViewSink(url, tally=written, straight=empty_tables(url, ["stock", "carts"])).build("w", 0, 1)
    try:
        part.write_batch([[stock(i, 1)] for i in range(N)])
        part.write_batch([[stock(i, 2, total=7)] for i in range(0, N, 2)])  # newer versions of some
        part.write_batch([[stock(N, 1)], [stock(1, 3, total=3)]])
        with psycopg.connect(url) as check:
            stocks = {r[0]: (r[3], r[-1]) for r in table(check, "stock", "product_id")}
        assert len(stocks) == N + 1 and written["stock"] == N + N // 2 + 2
        assert stocks["p0000"] == (7, 2) and stocks["p0001"] == (3, 3) and stocks["p0003"] == (10, 1)
        assert empty_tables(url, ["stock", "carts"]) == {"carts"}
    finally:
        part.close()
        with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
