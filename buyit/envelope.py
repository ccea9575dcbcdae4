"""The one record shape on every topic, and the JSON codec between it and `state/` messages."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any

import msgspec

from state.common import REGISTRY, Command, type_name

_ENCODER = msgspec.json.Encoder()
_CAMEL = re.compile(r"_([a-z0-9])")
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


_PLAIN = (str, int, float, bool, type(None))
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}  # dataclass -> ((attribute, wire name), ...)
_SNAKES: dict[str, str] = {}  # wire name -> attribute name


def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple((f.name, camel(f.name)) for f in fields(cls)) if is_dataclass(cls) else ()
    return names


def to_wire(value: Any) -> Any:
    """A dataclass (or anything inside one) as JSON-ready data with camelCase keys.

    Field names are looked up once per class: this runs for every record, and reflection per
    call was half of the decision dataflow's time."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is datetime:
        return value.isoformat()
    if kind is dict:
        return {str(k): to_wire(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_wire(v) for v in value]
    names = _fields(kind)
    if names:
        return {wire: to_wire(getattr(value, attr)) for attr, wire in names}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return {} if is_dataclass(value) else value


def _snake(name: str) -> str:
    attr = _SNAKES.get(name)
    if attr is None:
        attr = snake(name)
        if len(_SNAKES) < 10_000:  # field names are few; free-form map keys must not grow this forever
            _SNAKES[name] = attr
    return attr


def _to_snake(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {_snake(k): _to_snake(v) for k, v in value.items()}
    if kind is list:
        return [_to_snake(v) for v in value]
    return value


def from_wire(type_: str, payload: dict) -> Any:
    """Rebuild the registered message `type_` from its wire payload; ValueError if it can't."""
    cls = REGISTRY.get(type_)
    if cls is None:
        raise ValueError(f"unknown message type {type_!r}")
    try:
        return msgspec.convert(_to_snake(payload), cls)
    except (msgspec.ValidationError, TypeError) as err:
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
        record = {"eventId": self.event_id, "type": self.type, "key": self.key, "occurredAt": self.occurred_at,
                  "correlationId": self.correlation_id, "causationId": self.causation_id,
                  "version": self.version, "payload": self.payload, "requestedBy": self.requested_by}
        return _ENCODER.encode(record)

    def message(self) -> Any:
        """The `state/` command or event this record carries."""
        return from_wire(self.type, self.payload)


def decode(raw: bytes | None) -> Envelope:
    """Parse a record's value; ValueError for anything that is not a well-formed envelope."""
    try:
        data = msgspec.json.decode(raw or b"")
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
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as err:
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
    # what the request observed rather than asked (the clock, the catalog at checkout) may differ on a retry
    body = {k: v for k, v in payload.items() if k not in ("commandId", "now", "listings")}
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


TOPICS_COMMANDS = ("health", "user", "catalog", "inventory", "cart", "order", "payment", "ledger")
RESULTS = "command.results"
# A result record that answers nothing: a retry of a request taken already; its answer is the first one's.
REPEATED = "CommandRepeated"
DEAD_LETTERS = "dead.letters"
ANALYTICS_WINDOWS = "analytics.windows"  # per-minute figures of the projection, settled or late


def commands_topic(aggregate: str) -> str:
    return f"{aggregate}.commands"


def events_topic(aggregate: str) -> str:
    return f"{aggregate}.events"


def all_topics() -> list[str]:
    """Every topic the system uses, created idempotently at start-up."""
    return ([commands_topic(a) for a in TOPICS_COMMANDS] + [events_topic(a) for a in TOPICS_COMMANDS]
            + [RESULTS, DEAD_LETTERS, ANALYTICS_WINDOWS])
