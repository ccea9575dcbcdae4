"""Command results in Postgres: the first answer stands, and answers older than the TTL go."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from sinks.postgres import PostgresViewSink
from sinks.views import answer_row

pytestmark = pytest.mark.integration


def _answer(command_id: str, at: str, status: int = 200) -> dict:
    return {"eventId": str(uuid.uuid4()), "type": "CommandSucceeded", "key": command_id, "occurredAt": at,
            "correlationId": command_id, "causationId": command_id, "version": None, "requestedBy": "buyer-1",
            "payload": {"ok": True, "status": status, "commandType": "Ping", "body": {}}}


def test_results_keep_the_first_answer_and_go_after_their_ttl(stack):
    url = stack.env["DATABASE_URL"]
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    part = PostgresViewSink(url, results_ttl_s=3600).build("write_views", 0, 1)
    try:
        part.write_batch([[answer_row(_answer(old, "2020-01-01T00:00:00+00:00"))],
                          [answer_row(_answer(fresh, "2999-01-01T00:00:00+00:00"))]])
        part.write_batch([[answer_row(_answer(fresh, "2999-01-01T00:00:01+00:00", status=409))]])  # a later answer
    finally:
        part.close()
    with psycopg.connect(url) as conn:
        held = dict(conn.execute("SELECT command_id, result FROM command_results WHERE command_id IN (%s, %s)",
                                 (old, fresh)).fetchall())
        conn.execute("DELETE FROM command_results WHERE command_id = %s", (fresh,))  # not in the log: a replay
        conn.commit()                                                                 # of the stack would lack it
    assert old not in held  # answered in 2020: past the hour, deleted with the next batch
    assert held[fresh]["payload"]["status"] == 200, json.dumps(held[fresh])
