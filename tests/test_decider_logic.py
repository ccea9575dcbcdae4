"""The one stateful operator every aggregate runs in (`DeciderLogic`), given/when/then, without Bytewax or Kafka:
what it answers, what it remembers, what it does with a broken decider, and how its timers ask for expiry."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime, timedelta


from buyit.envelope import command_envelope, decode
from dataflows import decider
from dataflows.decider import ASK_AGAIN_S, DeciderLogic
from state import cart, catalog
from state.common import SELLER, Actor

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
SELLER_1 = Actor("seller-1", SELLER)


def create(command_id: str = "create-1", name: str = "Mug") -> tuple[str, object]:
    return ("catalog", command_envelope(catalog.CreateProduct(
        command_id=command_id, now=NOW, actor=SELLER_1, product_id="p-1", seller_id="seller-1", sku="MUG",
        name=name, price_cents=1200, currency="USD", status="ACTIVE"), "p-1"))


def add(command_id: str = "add-1", quantity: int = 1) -> tuple[str, object]:
    return ("cart", command_envelope(cart.AddCartItem(
        command_id=command_id, now=NOW, actor=Actor("ann", "BUYER"), buyer_id="ann", product_id="p-1", sku="MUG",
        seller_id="seller-1", price_cents=1200, currency="USD", quantity=quantity, reservation_ttl_s=900,
        cart_ttl_s=600), "ann"))


def outputs(logic: DeciderLogic, item) -> list[tuple[str, dict]]:
    """(topic, decoded record) of everything `on_item` emitted."""
    return [(topic, json.loads(value)) for topic, _key, value in logic.on_item(item)[0]]


def kinds(out) -> list[tuple[str, str]]:
    return [(topic, record.get("type") or record.get("reason")) for topic, record in out]


class TestAnswers:
    def test_a_new_command_is_decided_recorded_and_answered(self):
        logic = DeciderLogic(None)
        out = outputs(logic, create())
        assert kinds(out) == [("catalog.events", "PRODUCT_CREATED"), ("inventory.commands", "CreateStock"),
                              ("command.results", "CommandSucceeded")]
        assert out[-1][1]["payload"]["body"]["productId"] == "p-1" and logic.slot.state.version == 1

    def test_the_same_command_again_is_answered_as_before_and_decides_nothing(self):
        logic = DeciderLogic(None)
        first = outputs(logic, create())
        again = outputs(logic, create())
        assert kinds(again) == [("command.results", "CommandSucceeded")]
        assert again[0][1]["payload"] == first[-1][1]["payload"] and logic.slot.state.version == 1

    def test_a_retry_of_a_request_a_later_step_answers_is_told_it_is_a_repeat(self):
        """A cart add is answered by inventory; its retry gets no answer here (that could pre-empt a refusal),
        but a "repeat" record, so the API answers with the first answer at once instead of waiting it out."""
        logic = DeciderLogic(None)
        first = outputs(logic, add())
        assert ("command.results", "CommandSucceeded") not in kinds(first)  # inventory answers it
        version = logic.slot.state.version
        again = outputs(logic, add())
        assert kinds(again) == [("command.results", "CommandRepeated")]
        assert again[0][1]["correlationId"] == "add-1" and logic.slot.state.version == version

    def test_the_same_id_with_another_request_is_a_conflict(self):
        logic = DeciderLogic(None)
        outputs(logic, create())
        out = outputs(logic, create(name="Cup"))
        assert kinds(out) == [("command.results", "CommandRejected")]
        assert (out[0][1]["payload"]["error"], out[0][1]["payload"]["status"]) == ("idempotency_conflict", 422)
        assert logic.slot.state.name == "Mug"

    def test_a_refusal_is_answered_and_remembered(self):
        logic = DeciderLogic(None)
        outputs(logic, create())
        refused = outputs(logic, create(command_id="create-2"))  # the SKU is taken: a business refusal
        assert kinds(refused) == [("command.results", "CommandRejected")]
        assert outputs(logic, create(command_id="create-2"))[0][1]["payload"] == refused[0][1]["payload"]
        assert logic.slot.state.version == 1

    def test_a_forgotten_id_is_known_by_state(self, monkeypatch):
        monkeypatch.setattr(decider, "RECENT_COMMANDS", 1)
        logic = DeciderLogic(None)
        outputs(logic, add("add-1"))
        outputs(logic, add("add-2", quantity=2))  # add-1 falls out of the remembered window
        assert kinds(outputs(logic, add("add-1"))) == [("command.results", "CommandSucceeded")]
        assert logic.slot.state.version == 3  # created, requested, requested: the late add-1 added nothing

    def test_a_snapshot_survives_a_restart_and_one_of_an_older_build_is_read(self):
        """The remembered window is part of the recovery snapshot: a retry after a restart is answered as before,
        from this build's snapshot and from one an older build wrote (the window as an ordered dict)."""
        logic = DeciderLogic(None)
        first = outputs(logic, create())
        restored = DeciderLogic(pickle.loads(pickle.dumps(logic.snapshot())))
        older = pickle.loads(pickle.dumps(logic.snapshot()))
        older.recent = OrderedDict([("create-1", logic.slot.recent.get("create-1"))])
        for resumed in (restored, DeciderLogic(older)):
            again = outputs(resumed, create())
            assert kinds(again) == [("command.results", "CommandSucceeded")]
            assert again[0][1]["payload"] == first[-1][1]["payload"]
            refused = outputs(resumed, create(command_id="create-2"))  # a new command is decided and remembered
            assert [r["payload"]["error"] for _, r in refused] == ["sku_taken"]
            assert outputs(resumed, create(command_id="create-2")) == refused


class TestBrokenDecider:
    def test_an_exception_keeps_the_state_dead_letters_the_record_and_answers_500(self, monkeypatch):
        logic = DeciderLogic(None)
        outputs(logic, create())
        before = logic.slot.state

        def broken(state, command):
            raise RuntimeError("a bug")
        monkeypatch.setitem(decider.AGGREGATES, "catalog", replace(catalog.AGGREGATE, decide=broken))
        out = outputs(logic, create(command_id="create-3"))
        assert kinds(out) == [("dead.letters", "decider_failed"), ("command.results", "CommandRejected")]
        assert out[1][1]["payload"]["status"] == 500 and "a bug" in out[0][1]["error"]
        assert logic.slot.state is before

    def test_a_command_that_does_not_decode_is_dead_lettered_and_answered_422(self):
        logic = DeciderLogic(None)
        name, envelope = create()
        broken = decode(envelope.encode().replace(b'"priceCents":1200', b'"priceCents":"lots"'))
        out = outputs(logic, (name, broken))
        assert kinds(out) == [("dead.letters", "undecodable_command"), ("command.results", "CommandRejected")]
        assert out[1][1]["payload"]["status"] == 422 and logic.slot.state.version == 0


class TestTimers:
    def logic_with_a_cart(self, clock) -> DeciderLogic:
        logic = DeciderLogic(None, clock=clock)
        outputs(logic, add())
        return logic

    def test_the_timer_is_the_aggregates_deadline(self):
        logic = self.logic_with_a_cart(lambda: NOW)
        assert logic.notify_at() == NOW + timedelta(seconds=600)

    def test_a_due_timer_asks_through_the_command_topic_and_decides_nothing(self):
        due = NOW + timedelta(seconds=600)
        logic = self.logic_with_a_cart(lambda: due)
        version = logic.slot.state.version
        asked = logic.on_notify()[0]
        assert [(topic, key) for topic, key, _ in asked] == [("cart.commands", "ann")]
        record = json.loads(asked[0][2])
        assert record["type"] == "Expire" and record["payload"]["now"] == due.isoformat()
        assert logic.slot.state.version == version

    def test_an_expiry_on_its_way_is_asked_for_again_only_if_lost(self):
        due = NOW + timedelta(seconds=600)
        logic = self.logic_with_a_cart(lambda: due)
        name, key, value = logic.on_notify()[0][0]
        assert logic.notify_at() == due + timedelta(seconds=ASK_AGAIN_S)
        out = outputs(logic, ("cart", decode(value)))  # it comes back from the log and is decided
        assert kinds(out)[0] == ("cart.events", "CartAbandoned")
        assert logic.notify_at() is None and logic.slot.asked is None

    def test_two_firings_never_share_an_id(self):
        clock = [NOW + timedelta(seconds=600)]
        logic = self.logic_with_a_cart(lambda: clock[0])
        first = decode(logic.on_notify()[0][0][2]).event_id
        clock[0] += timedelta(seconds=ASK_AGAIN_S)  # lost: asked again, later
        second = decode(logic.on_notify()[0][0][2]).event_id
        assert first != second
