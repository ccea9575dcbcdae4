"""The one record shape on every topic, and the JSON codec between it and `state/` messages."""

from __future__ import annotations

import hashlib
import re
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, Callable

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
_SNAKES: dict[str, str] = {}  # wire name -> attribute name


def _plain_fields(cls: type) -> frozenset[str]:
    """The fields of `cls` declared as a str, int, float or bool (or one of those or None): their values
    go to and from the wire as they are. Any other field (or all, if the hints cannot be resolved) is
    converted value by value."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a hint naming something only a type checker sees
        return frozenset()

    def plain(hint) -> bool:
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            return all(plain(arg) for arg in typing.get_args(hint))
        return hint in _PLAIN

    return frozenset(f.name for f in fields(cls) if plain(hints.get(f.name)))


def _writer(cls: type) -> Callable[[Any], dict]:
    """A function that turns an instance of the dataclass `cls` into its wire dict: generated once per class,
    one dict display of its fields, since reflection per record was half of the decision dataflow's time
    and a loop over the fields still a tenth."""
    plain = _plain_fields(cls)
    items = ", ".join(f"{camel(f.name)!r}: " + (f"v.{f.name}" if f.name in plain else f"to_wire(v.{f.name})")
                      for f in fields(cls))
    namespace = {"to_wire": to_wire}
    exec(f"def write(v):\n    return {{{items}}}\n", namespace)  # noqa: S102 - the names come from our own classes
    return namespace["write"]


_WRITERS: dict[type, Callable[[Any], dict] | None] = {}  # class -> its writer (None: not a dataclass)


def to_wire(value: Any) -> Any:
    """A dataclass (or anything inside one) as JSON-ready data with camelCase keys."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is datetime:
        return value.isoformat()
    if kind is dict:
        return {str(k): to_wire(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_wire(v) for v in value]
    try:
        write = _WRITERS[kind]
    except KeyError:
        write = _WRITERS[kind] = _writer(kind) if is_dataclass(kind) else None
    if write is not None:
        return write(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


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


_READERS: dict[type, dict[str, tuple[str, bool]]] = {}  # class -> wire name -> (attribute, plain?)


def _reader(cls: type) -> dict[str, tuple[str, bool]]:
    plain = _plain_fields(cls)
    return {camel(f.name): (f.name, f.name in plain) for f in fields(cls)}


def from_wire(type_: str, payload: dict) -> Any:
    """Rebuild the registered message `type_` from its wire payload; ValueError if it can't."""
    cls = REGISTRY.get(type_)
    if cls is None:
        raise ValueError(f"unknown message type {type_!r}")
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = _reader(cls)
    known = {}
    for name, value in payload.items():
        field = reader.get(name)
        if field is None:
            known[_snake(name)] = _to_snake(value)
        else:
            known[field[0]] = value if field[1] else _to_snake(value)
    try:
        return msgspec.convert(known, cls)
    except (msgspec.ValidationError, TypeError) as err:
        raise ValueError(str(err)) from err


@dataclass
class Envelope:
    """eventId, type, key (aggregate id), occurredAt, correlationId, causationId, version, payload.

    `payload` is the message's wire dict, or, from `read_event`, its JSON text as read (`msgspec.Raw`,
    which encodes as itself)."""

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
        if isinstance(self.payload, msgspec.Raw):
            return _typed(self.type, self.payload)
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


class _Wire(msgspec.Struct, rename="camel"):
    """An envelope as read by `read_event`: the payload left as its JSON text."""

    event_id: str
    type: str
    key: str
    occurred_at: str
    payload: msgspec.Raw
    correlation_id: str | None = None
    causation_id: str | None = None
    version: int | None = None
    requested_by: str | None = None


_WIRE = msgspec.json.Decoder(_Wire)


def read_event(raw: bytes | None) -> tuple[Envelope, Any]:
    """A record's envelope and the message it carries, read in one pass by typed decoders: what `decode` and
    `Envelope.message` give (but the envelope's payload stays JSON text), in half the time. The projection
    reads every event this way. ValueError for anything that is not a well-formed envelope or message."""
    try:
        wire = _WIRE.decode(raw or b"")
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ValueError(f"not an envelope: {err}") from err
    if memoryview(wire.payload)[:1] != b"{":
        raise ValueError("not an envelope: its payload is not an object")
    envelope = Envelope(wire.event_id, wire.type, wire.key, wire.occurred_at, wire.correlation_id or wire.event_id,
                        wire.causation_id, wire.version, wire.payload, wire.requested_by)
    return envelope, _typed(wire.type, wire.payload)


def _typed(type_: str, payload: msgspec.Raw) -> Any:
    """The registered message `type_` read from its JSON text: decoded into a generated msgspec Struct that
    mirrors its class with camelCase names, then converted to the class (both in C). A class the mirror
    cannot follow goes through `from_wire`, as does everything else."""
    cls = REGISTRY.get(type_)
    if cls is None:
        raise ValueError(f"unknown message type {type_!r}")
    try:
        read = _TYPED[cls]
    except KeyError:
        read = _TYPED[cls] = _typed_reader(cls)
    try:
        if read is None:
            return from_wire(type_, msgspec.json.decode(payload))
        return msgspec.convert(read.decode(payload), cls, from_attributes=True)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as err:
        raise ValueError(str(err)) from err


_TYPED: dict[type, "msgspec.json.Decoder | None"] = {}
_MIRRORS: dict[type, type] = {}


def _typed_reader(cls: type) -> "msgspec.json.Decoder | None":
    try:
        return msgspec.json.Decoder(_mirror(cls))
    except Exception:  # a hint only a type checker resolves, a type msgspec does not know: read it as a dict
        return None


def _mirror(cls: type) -> type:
    """A msgspec Struct with the fields of the dataclass `cls` (its defaults too) under their wire names,
    nested dataclasses mirrored in turn."""
    mirrored = _MIRRORS.get(cls)
    if mirrored is None:
        hints = typing.get_type_hints(cls)
        specs: list = []
        for f in fields(cls):
            hint = _mirrored(hints[f.name])
            if f.default is not MISSING:
                specs.append((f.name, hint, f.default))
            elif f.default_factory is not MISSING:
                specs.append((f.name, hint, msgspec.field(default_factory=f.default_factory)))
            else:
                specs.append((f.name, hint))
        mirrored = _MIRRORS[cls] = msgspec.defstruct(
            f"Wire{cls.__name__}", specs, kw_only=True, rename={f.name: camel(f.name) for f in fields(cls)})
    return mirrored


def _mirrored(hint: Any) -> Any:
    if is_dataclass(hint):
        return _mirror(hint)
    origin = typing.get_origin(hint)
    if origin is None or origin is typing.Literal:
        return hint
    args = tuple(a if a is Ellipsis else _mirrored(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return typing.Union[args]
    return origin[args]


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
