"""The wire codec: generated per class, it must write and read exactly what plain reflection would."""

from __future__ import annotations

import uuid
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from buyit.envelope import Envelope, camel, command_envelope, decode, from_wire, read_event, to_wire
from state.cart import Checkout, Listing
from state.common import SYSTEM, Actor, _namespace, type_name
from state.inventory import ReserveStock
from state.order import OrderItem, PlaceOrder
from tests.sim.market_day import market_day

NOW = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def reflected(value):
    """The wire form by reflection, field by field (what the codec did before it was generated)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): reflected(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [reflected(v) for v in value]
    if is_dataclass(value):
        return {camel(f.name): reflected(getattr(value, f.name)) for f in fields(value)}
    return value


COMMANDS = [
    ReserveStock(command_id=str(uuid.uuid4()), now=NOW, actor=Actor("buyer-1", "BUYER"), product_id="p-1",
                 reservation_id="r-1", cart_id="c-1", buyer_id="buyer-1", quantity=2,
                 expires_at=NOW + timedelta(minutes=15), seq=3),
    Checkout(command_id="k-1", now=NOW, buyer_id="b", order_id="o", payment_id="pay", allocation_ttl_s=1800,
             fee_bps=1000, listings=(Listing("p-1", 1250, "EUR", True), Listing("p-2", 99, "USD", False))),
    PlaceOrder(command_id="k-2", now=NOW, order_id="o", buyer_id="b", cart_id="c", payment_id="pay",
               items=(OrderItem("i", "p", "SKU-1", "s", 2, 1250, "EUR", "r"),), allocation_ttl_s=1800, fee_bps=1000),
]


def encoded(value) -> bytes:
    return msgspec.json.encode(value)


def test_every_event_of_a_day_writes_as_reflection_does_and_reads_back_equal():
    day = market_day(carts=300)
    kinds = set()
    for happened in day.events:
        wire = to_wire(happened.event)
        assert encoded(wire) == encoded(reflected(happened.event)), happened.event
        assert from_wire(happened.envelope.type, wire) == happened.event
        kinds.add(type(happened.event))
    assert len(kinds) > 20  # the day exercises most event classes


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_commands_with_nested_values_round_trip_through_an_envelope(command):
    envelope = decode(command_envelope(command, "key-1").encode())
    assert encoded(envelope.payload) == encoded(reflected(command))
    assert envelope.payload["now"] == NOW.isoformat()  # datetimes as isoformat, not msgspec's own form
    assert envelope.message() == command


@pytest.mark.parametrize("payload", [
    {"productId": {"nested": 1}}, {"quantity": "two"}, {"expiresAt": "yesterday"}, {}, {"actor": "me"},
], ids=str)
def test_a_malformed_payload_is_a_value_error(payload):
    good = to_wire(COMMANDS[0])
    with pytest.raises(ValueError):
        from_wire(type_name(ReserveStock), {**good, **payload} if payload else {})


def test_an_unknown_field_is_ignored_and_an_unknown_type_refused():
    assert from_wire("ReserveStock", {**to_wire(COMMANDS[0]), "somethingNew": 1}) == COMMANDS[0]
    with pytest.raises(ValueError, match="unknown message type"):
        from_wire("NoSuchThing", {})


def test_read_event_gives_what_decode_and_message_give_for_every_event_of_a_day():
    day = market_day(carts=300)
    for happened in day.events:
        raw = happened.envelope.encode()
        envelope, event = read_event(raw)
        plain = decode(raw)
        assert event == plain.message() == happened.event
        assert msgspec.json.decode(envelope.payload) == plain.payload  # kept as its JSON text
        assert envelope.message() == event
        assert Envelope(**{**vars(envelope), "payload": plain.payload}) == plain


def test_read_event_fills_defaults_and_ignores_unknown_fields_as_from_wire_does():
    command = COMMANDS[1]  # Checkout: nested listings
    wire = to_wire(command)
    del wire["listings"], wire["actor"]  # fields with defaults, left out by an older writer
    wire["somethingNew"] = {"x": 1}
    raw = Envelope("e", type_name(Checkout), "k", NOW.isoformat(), "e", None, None, wire).encode()
    read = read_event(raw)[1]
    assert read == from_wire(type_name(Checkout), wire)
    assert read.listings == () and read.actor == SYSTEM


@pytest.mark.parametrize("payload", [
    {"productId": {"nested": 1}}, {"quantity": "two"}, {"expiresAt": "yesterday"}, {}, {"actor": "me"},
], ids=str)
def test_read_event_refuses_a_malformed_payload_with_a_value_error(payload):
    good = to_wire(COMMANDS[0])
    raw = Envelope("e", type_name(ReserveStock), "k", NOW.isoformat(), "e", None, None,
                   {**good, **payload} if payload else {}).encode()
    with pytest.raises(ValueError):
        read_event(raw)


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"eventId": "e"}', b'{"eventId": 1, "type": "T", "key": "k", '
                                 b'"occurredAt": "t", "payload": {}}', b'{"eventId": "e", "type": "ReserveStock", '
                                 b'"key": "k", "occurredAt": "t", "payload": [1]}', b"\xff"], ids=str)
def test_read_event_refuses_what_is_not_an_envelope_with_a_value_error(raw):
    with pytest.raises(ValueError):
        read_event(raw)


@pytest.mark.parametrize("parent", [
    str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex, "{" + str(uuid.uuid4()) + "}",
    "urn:uuid:" + str(uuid.uuid4()), "not-a-uuid", "x" * 36, "-" * 36, "0" * 36, "00 " * 12, "0" * 30 + "-----0",
])
def test_a_derived_ids_namespace_is_read_as_uuid_reads_it(parent):
    try:
        expected = uuid.UUID(parent).bytes
    except ValueError:
        expected = uuid.NAMESPACE_URL.bytes
    assert _namespace(parent) == expected
