"""Health, the local issuer's keys, and polling for a command's result."""

import asyncio
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from buyit import identity
from buyit.settings import get_settings
from ingest_api.auth import Caller
from ingest_api.commands import checked_id, now, pending, recorded, respond
from ingest_api.errors import not_found
from state.health import Ping

router = APIRouter(tags=["system"])

HEALTH_WAIT_S = 5.0  # however short the configured command wait, health waits for a real answer
PART_WAIT_S = 2.0  # each store gets this long to answer
# The projection records every answer, health pings' too: a ping answered this long ago and still not in
# Postgres means the views are not moving. (Under that, a ping may simply not have been written yet.)
PROJECTION_LAG_S = 10.0


@router.get("/health")
async def health(request: Request):
    """Each part by name, 200 only when all are ok: `commands` (a command's whole round trip: API → broker →
    decider → results), `broker`, `postgres`, `redis`, and `projection` (answers reach the views)."""
    state, started = request.app.state, time.monotonic()
    components = {"commands": await _check(_round_trip(state), HEALTH_WAIT_S),
                  "broker": await _check(run_in_threadpool(state.bus.broker_reachable, PART_WAIT_S), PART_WAIT_S + 1),
                  "postgres": await _check(state.reads.health(), PART_WAIT_S),
                  "redis": await _check(state.redis.ping(), PART_WAIT_S)}
    components["projection"] = await _check(_projection_moves(state), PART_WAIT_S)
    healthy = all(v == "ok" for v in components.values())
    body = {"status": "ok" if healthy else "degraded", "components": components}
    if components["postgres"] == "ok":  # views the projection could not keep right (it carries on): not down
        body["staleAggregates"] = await _stale_count(state)
    body["roundTripMs"] = round((time.monotonic() - started) * 1000, 1)
    return JSONResponse(body, 200 if healthy else 503)


async def _stale_count(state) -> int | None:
    """How many aggregates the projection marked stale (`stale_aggregates`), or None if it cannot say now."""
    try:
        async with asyncio.timeout(PART_WAIT_S):
            row = await state.reads.one("SELECT count(DISTINCT (aggregate, aggregate_id)) AS n FROM stale_aggregates")
    except Exception:  # the count is a report, never a reason for /health to fail
        return None
    return row["n"]


async def _check(probe, timeout: float) -> str:
    """"ok", or what went wrong: the point of a health check is to report, not to fail."""
    try:
        async with asyncio.timeout(timeout):
            answer = await probe
    except TimeoutError:
        return f"no answer in {timeout:.0f}s"
    except Exception as err:
        return f"error: {err}"
    return "ok" if answer is True else str(answer)


async def _round_trip(state) -> bool | str:
    command_id = str(uuid.uuid4())
    result = await state.bus.send("health", "ping", Ping(command_id=command_id, now=now()), timeout=HEALTH_WAIT_S)
    if result is None or not result.ok:
        return "no answer"
    state.health_pings.append((command_id, time.monotonic()))
    return True


async def _projection_moves(state) -> bool | str:
    """Whether the oldest ping answered over PROJECTION_LAG_S ago reached Postgres (True if none is that old)."""
    pings, due = state.health_pings, time.monotonic() - PROJECTION_LAG_S
    checked = None
    while pings and pings[0][1] <= due:
        checked = pings.popleft()
    if checked is None:
        return True
    if await state.reads.command_result(checked[0]) is None:
        pings.appendleft(checked)  # asked again next time, so the check stays failed until the views catch up
        return f"behind: an answer from {time.monotonic() - checked[1]:.0f}s ago is not in the views"
    return True


@router.get("/.well-known/jwks.json")
async def jwks():
    """The local issuer's public keys (only meaningful when no external JWKS is configured)."""
    return identity.jwks(get_settings())


@router.get("/api/commands/{command_id}")
async def command_result(request: Request, command_id: str, actor: Caller):
    """The result of a command that answered 202; still 202 while it is being decided."""
    checked_id(command_id, "command")
    bus, reads = request.app.state.bus, request.app.state.reads
    # This process's memory first; then what the projection recorded (an answer given before this
    # replica started, or to another one); then a short wait for an answer still to come.
    result = bus.recent(command_id) or await recorded(reads, command_id)
    if result is None:
        result = await bus.wait(command_id, 1.0) or await recorded(reads, command_id)
    if result is None:
        return pending(command_id)
    if not (actor.is_admin or result.requested_by == actor.user_id):
        raise not_found("command")  # another caller's answer is not yours to read
    return respond(result, command_id)

