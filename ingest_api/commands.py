"""Turning a request into a command, and a command's result into a response."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from ingest_api.bus import CommandBus, Result
from ingest_api.errors import RETRY_AFTER_S, ApiError, not_found
from state.common import Actor

_ID = re.compile(r"^[A-Za-z0-9_.:@|-]{1,128}$")


def idempotent_command_id(owner: str, path: str, key: str) -> str:
    """The command id of `owner`'s request to `path` with `Idempotency-Key: key`.

    The three parts are encoded as a JSON list, not joined with ':': user ids may hold ':' themselves,
    and with a plain join user "eve" sending key "/p:k" and user "eve:/p" sending key "k" were one
    command (the second checkout then answered with the first buyer's order and client secret).
    Where neither the owner nor the path holds a ':' the old join is unambiguous and kept, so a retry
    across a deploy is still the same command; the two forms start differently and never meet."""
    if ":" not in owner and ":" not in path:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"buyit:{owner}:{path}:{key}"))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "buyit-v2:" + json.dumps([owner, path, key])))


def command_id(request: Request, actor: Actor | None) -> str:
    """A fresh id, or one derived from the caller's `Idempotency-Key` so a retry is the same command."""
    key = request.headers.get("idempotency-key")
    if key:
        if len(key) > 255:
            raise ApiError(422, "invalid", "Idempotency-Key is longer than 255 characters")
        return idempotent_command_id(actor.user_id if actor else "anonymous", request.url.path, key)
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


def checked_id(value: str, what: str) -> str:
    """Path ids are opaque, but never anything a view or topic key could choke on."""
    if not _ID.match(value):
        raise not_found(what)
    return value


def pending(command_id: str, **known) -> JSONResponse:
    """202: accepted, the result is not in yet; poll `Location`. `known`: ids the caller can already use."""
    location = f"/api/commands/{command_id}"
    return JSONResponse({"error": "pending", "message": "accepted; the result is not in yet",
                         "commandId": command_id, "location": location, **known}, 202,
                        headers={"Location": location})


def refusal(result: Result) -> ApiError:
    """The error a rejected command answers with."""
    return ApiError(result.status, result.error or "rejected", result.message or "rejected", result.details)


def respond(result: Result | None, command_id: str, success_status: int = 200,
            shape: Callable[[dict], dict] | None = None) -> JSONResponse:
    """The HTTP answer for a command's result (or 202 while it is still being decided);
    `shape` turns the decider's body into what the route answers with."""
    if result is None:
        return pending(command_id)
    if not result.ok:
        raise refusal(result)
    return JSONResponse(shape(result.body) if shape else result.body, success_status)


async def send(request: Request, aggregate: str, key: str, command) -> Result | None:
    """Send `command` to `aggregate` keyed by `key`; its result, or None while it is being decided.

    A retry (same `Idempotency-Key`) of a request whose chain answered it from a later step is told "a
    repeat" by the deciders: its first answer is the answer (known here, recorded by the projection, or
    still on its way)."""
    bus: CommandBus = request.app.state.bus
    try:
        result = await bus.send(aggregate, key, command)
    except RuntimeError as err:  # not acknowledged by the broker (or refused by it): nothing was accepted
        raise ApiError(503, "unavailable", f"the command could not be accepted: {err}",
                       retry_after=RETRY_AFTER_S) from err
    repeated = result is not None and result.repeated
    if repeated or (result is None and request.headers.get("idempotency-key")):
        result = bus.recent(command.command_id) or await recorded(request.app.state.reads, command.command_id)
        if result is None and repeated:  # the first request's chain is still deciding
            result = await bus.wait(command.command_id, bus.wait_s)
    return result


async def recorded(reads, command_id: str) -> Result | None:
    """A command's answer as the projection recorded it (given to any API replica, or before this one started)."""
    row = await reads.command_result(command_id)
    return Result.from_envelope(row) if row else None


async def execute(request: Request, aggregate: str, key: str, command, success_status: int = 200,
                  shape: Callable[[dict], dict] | None = None) -> JSONResponse:
    """Send `command` to `aggregate` keyed by `key` and answer with its (shaped) result."""
    return respond(await send(request, aggregate, key, command), command.command_id, success_status, shape)
