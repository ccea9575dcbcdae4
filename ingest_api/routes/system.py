"""Health, the local issuer's keys, and polling for a command's result."""

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from buyit import identity
from buyit.settings import get_settings
from ingest_api.auth import Caller
from ingest_api.bus import Result
from ingest_api.commands import checked_id, now, pending, respond
from ingest_api.errors import not_found
from state.health import Ping

router = APIRouter(tags=["system"])

HEALTH_WAIT_S = 5.0  # however short the configured command wait, health waits for a real answer


@router.get("/health")
async def health(request: Request):
    """200 once a command makes the whole round trip (API → broker → decider → results) and Postgres answers."""
    components, started = {}, time.monotonic()
    try:
        result = await request.app.state.bus.send("health", "ping", Ping(command_id=str(uuid.uuid4()), now=now()),
                                                  timeout=HEALTH_WAIT_S)
        components["commands"] = "ok" if result is not None and result.ok else "no answer"
    except Exception as err:  # the point of a health check is to report, not to fail
        components["commands"] = f"error: {err}"
    try:
        components["postgres"] = "ok" if await request.app.state.reads.health() else "error"
    except Exception as err:
        components["postgres"] = f"error: {err}"
    healthy = all(v == "ok" for v in components.values())
    return JSONResponse({"status": "ok" if healthy else "degraded", "components": components,
                         "roundTripMs": round((time.monotonic() - started) * 1000, 1)}, 200 if healthy else 503)


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
    result = bus.recent(command_id) or await _recorded(reads, command_id)
    if result is None:
        result = await bus.wait(command_id, 1.0) or await _recorded(reads, command_id)
    if result is None:
        return pending(command_id)
    if not (actor.is_admin or result.requested_by == actor.user_id):
        raise not_found("command")  # another caller's answer is not yours to read
    return respond(result, command_id)


async def _recorded(reads, command_id: str) -> Result | None:
    recorded = await reads.command_result(command_id)
    return Result.from_envelope(recorded) if recorded else None
