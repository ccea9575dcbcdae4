"""`sinks.postgres.write_rows`: a batch of `BULK` or more rows of one statement is copied into a scratch table
and upserted by one INSERT … SELECT; it must leave the tables exactly as writing row by row does."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from buyit.bootstrap import create_schema
from buyit.replay import in_schema
from sinks import postgres
from sinks.postgres import BULK, write_rows
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
