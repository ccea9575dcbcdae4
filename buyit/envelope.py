"""The one record shape on every topic, and the JSON codec between it and `state/` messages."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from state.common import REGISTRY, Command, type_name

_CAMEL = re.compile(r"_([a-z0-9])")
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


def to_wire(value: Any) -> Any:
    """A dataclass (or anything inside one) as JSON-ready data with camelCase keys."""
    if is_dataclass(value) and not isinstance(value, type):
        return {camel(f.name): to_wire(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _to_snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {snake(k): _to_snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_snake(v) for v in value]
    return value


@lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def from_wire(type_: str, payload: dict) -> Any:
    """Rebuild the registered message `type_` from its wire payload; ValueError if it can't."""
    cls = REGISTRY.get(type_)
    if cls is None:
        raise ValueError(f"unknown message type {type_!r}")
    try:
        # Dict-valued fields (free-form maps) keep their keys; only field names are converted.
        return _adapter(cls).validate_python(_to_snake(payload))
    except ValidationError as err:
        raise ValueError(str(err)) from err


@dataclass
class Envelope:
    """eventId, type, key (aggregate id), occurredAt, correlationId, causationId, version, payload."""

    event_id: str
    type: str
    key: str
    occurred_at: str
    correlation_id: str
    causation_id: str | None
    version: int | None
    payload: dict
    requested_by: str | None = None  # the user whose request started the chain; its answer is theirs

    def encode(self) -> bytes:
        return json.dumps(to_wire(self), separators=(",", ":")).encode()

    def message(self) -> Any:
        """The `state/` command or event this record carries."""
        return from_wire(self.type, self.payload)


def decode(raw: bytes | None) -> Envelope:
    """Parse a record's value; ValueError for anything that is not a well-formed envelope."""
    try:
        data = json.loads(raw or b"")
        return Envelope(
            event_id=str(data["eventId"]),
            type=str(data["type"]),
            key=str(data["key"]),
            occurred_at=str(data["occurredAt"]),
            correlation_id=str(data.get("correlationId") or data["eventId"]),
            causation_id=data.get("causationId"),
            version=data.get("version"),
            payload=dict(data["payload"]),
            requested_by=data.get("requestedBy"),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"not an envelope: {err}") from err


def command_envelope(command: Command, key: str, correlation_id: str | None = None,
                     causation_id: str | None = None, requested_by: str | None = None) -> Envelope:
    """Wrap a command; an API command starts its own correlation chain, requested by its actor."""
    return Envelope(
        requested_by=requested_by or command.actor.user_id,
        event_id=command.command_id,
        type=type_name(command),
        key=key,
        occurred_at=command.now.isoformat(),
        correlation_id=correlation_id or command.command_id,
        causation_id=causation_id,
        version=None,
        payload=to_wire(command),
    )


def fingerprint(payload: dict) -> str:
    """What makes two commands "the same request": the payload without its id and clock."""
    body = {k: v for k, v in payload.items() if k not in ("commandId", "now")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


TOPICS_COMMANDS = ("health", "user", "catalog", "inventory", "cart", "order", "payment", "ledger")
RESULTS = "command.results"
DEAD_LETTERS = "dead.letters"


def commands_topic(aggregate: str) -> str:
    return f"{aggregate}.commands"


def events_topic(aggregate: str) -> str:
    return f"{aggregate}.events"


def all_topics() -> list[str]:
    """Every topic the system uses, created idempotently at start-up."""
    return ([commands_topic(a) for a in TOPICS_COMMANDS] + [events_topic(a) for a in TOPICS_COMMANDS]
            + [RESULTS, DEAD_LETTERS])
