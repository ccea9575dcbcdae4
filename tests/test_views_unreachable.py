"""Postgres restarting is the caller's to retry (503 with Retry-After), never a 500: found by tests/faults,
where a cart add whose product lookup met a connection cut by Postgres' exit was answered 500."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import PoolTimeout

from ingest_api import errors


@pytest.mark.parametrize("failure", [
    psycopg.errors.AdminShutdown("terminating connection due to unexpected postmaster exit"),
    psycopg.OperationalError("connection refused"),
    PoolTimeout("couldn't get a connection after 30.00 sec"),
], ids=["cut_by_postmaster_exit", "refused", "pool_exhausted"])
def test_views_unreachable_is_503_with_retry_after(failure):
    app = FastAPI()
    errors.install(app)

    @app.get("/read")
    async def read():
        raise failure
    r = TestClient(app, raise_server_exceptions=False).get("/read")
    assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
    assert r.headers["Retry-After"] == str(errors.RETRY_AFTER_S)


def test_anything_else_unexpected_is_still_500():
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom():
        raise ZeroDivisionError
    assert TestClient(app, raise_server_exceptions=False).get("/boom").status_code == 500
