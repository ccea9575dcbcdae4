"""Deadlines kept by the timer step (dataflows/timers.py): told when they come sooner or were asked for,
asked for by their bucket with the decider's own command ids, asked again if lost, dropped when gone."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta

from buyit.envelope import command_envelope, decode
from dataflows.decider import ASK_AGAIN_S, DeciderLogic, Slot
from dataflows.timers import TIMERS, Scheduled, TimerBucket, bucket_of
from state.cart import AddCartItem
from state.common import Expire

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BUYER = "buyer-1"


def add(at: datetime, ttl_s: int = 900) -> tuple[str, object]:
    command = AddCartItem(command_id=str(uuid.uuid4()), now=at, buyer_id=BUYER, product_id="p1", sku="S1",
                          seller_id="s1", price_cents=100, currency="USD", quantity=1, reservation_ttl_s=ttl_s,
                          cart_ttl_s=ttl_s)
    return ("cart", command_envelope(command, BUYER))


def timers(outputs) -> list[tuple]:
    return [(bucket, payload) for topic, bucket, payload in outputs if topic == TIMERS]


def expire_at(now: datetime, version: int) -> tuple[str, object]:
    from state.common import derived_id
    command = Expire(command_id=derived_id(BUYER, f"expire/{now.isoformat()}/{version}"), now=now)
    return ("cart", command_envelope(command, BUYER))


def test_a_deadline_is_told_when_it_comes_sooner_and_not_when_it_moves_later():
    logic = Scheduled(None)
    outputs, _ = logic.on_item(add(NOW))
    due = logic.slot.state.expires_at
    assert timers(outputs) == [(bucket_of("cart", due), ("set", "cart", BUYER, due, "expire", logic.slot.state.version))]
    assert logic.notify_at() is None  # no Bytewax timer of its own
    outputs, _ = logic.on_item(add(NOW + timedelta(seconds=30)))  # the cart's expiry moves later: not told
    assert timers(outputs) == [] and logic.slot.told == (due, "expire")
    outputs, _ = logic.on_item(add(NOW + timedelta(seconds=40), ttl_s=60))  # sooner, and in another bucket
    sooner = logic.slot.state.expires_at
    assert sooner < due and bucket_of("cart", sooner) != bucket_of("cart", due)
    assert timers(outputs) == [(bucket_of("cart", due), ("drop", "cart", BUYER)),
                               (bucket_of("cart", sooner), ("set", "cart", BUYER, sooner, "expire",
                                                            logic.slot.state.version))]


def test_an_expire_asked_early_is_told_again_and_one_that_ends_the_deadline_drops_it():
    logic = Scheduled(None)
    logic.on_item(add(NOW))
    first = logic.slot.state.expires_at
    logic.on_item(add(NOW + timedelta(minutes=10)))  # expiry later: the bucket still holds the first
    later = logic.slot.state.expires_at
    outputs, _ = logic.on_item(expire_at(first, logic.slot.state.version))  # asked early: nothing expires
    assert logic.slot.state.status == "ACTIVE"
    assert timers(outputs)[-1] == (bucket_of("cart", later), ("set", "cart", BUYER, later, "expire",
                                                              logic.slot.state.version))
    outputs, _ = logic.on_item(expire_at(later, logic.slot.state.version))  # now it expires
    assert logic.slot.state.status == "EXPIRED"
    assert [payload[0] for _, payload in timers(outputs)] in (["drop"], ["drop", "set"], ["set"])
    assert logic.slot.told is None or logic.slot.told[0] > later  # whatever comes next (its retirement), if anything


def test_the_bucket_asks_with_the_decider_s_own_command_id_and_again_if_it_is_lost():
    scheduled, own = Scheduled(None), DeciderLogic(None)
    outputs, _ = scheduled.on_item(add(NOW))
    own.on_item(add(NOW))
    [(bucket, told)] = timers(outputs)
    due = told[3]
    fire = due + timedelta(seconds=1)
    bucket = TimerBucket(None, clock=lambda: fire)
    assert bucket.on_item(told) == ([], False)
    assert bucket.notify_at() == due
    own.clock = lambda: fire
    [(topic, key, value)] = bucket.on_notify()[0]
    [(own_topic, own_key, own_value)] = own.on_notify()[0]
    assert (topic, key, decode(value).event_id) == (own_topic, own_key, decode(own_value).event_id)
    assert bucket.notify_at() == fire + timedelta(seconds=ASK_AGAIN_S)  # asked: again only if it is lost
    again = fire + timedelta(seconds=ASK_AGAIN_S)
    bucket.clock = lambda: again
    assert decode(bucket.on_notify()[0][0][2]).type == "Expire"
    # decided: the aggregate tells its next deadline (or drops it), and the bucket takes that
    bucket.on_item(("set", "cart", BUYER, due + timedelta(hours=1), "retire", 7))
    assert bucket.notify_at() == due + timedelta(hours=1)
    assert bucket.on_item(("drop", "cart", BUYER)) == ([], True)  # empty: Bytewax may let it go
    assert bucket.notify_at() is None


def test_a_bucket_restored_from_a_snapshot_asks_as_before():
    bucket = TimerBucket(None)
    for i in range(5):
        bucket.on_item(("set", "order", f"o{i}", NOW + timedelta(seconds=10 * (5 - i)), "retire", i))
    restored = TimerBucket(pickle.loads(pickle.dumps(bucket.snapshot())), clock=lambda: NOW + timedelta(seconds=25))
    assert restored.notify_at() == NOW + timedelta(seconds=10)
    asked = [key for _, key, _ in restored.on_notify()[0]]
    assert asked == ["o4", "o3"]  # due at 10 s and 20 s, earliest first


def test_a_slot_of_an_older_build_keeps_its_own_timer_until_its_next_item():
    own = DeciderLogic(None)
    own.on_item(add(NOW))
    older = pickle.loads(pickle.dumps(own.slot))
    del older.__dict__["told"], older.__dict__["by_timer_step"]  # pickled before these fields existed
    logic = Scheduled(older)
    assert logic.notify_at() == older.state.expires_at  # Bytewax's timer, as before
    outputs, _ = logic.on_item(add(NOW + timedelta(seconds=5)))
    assert logic.notify_at() is None
    assert [payload[0] for _, payload in timers(outputs)] == ["set"]  # told, though the deadline moved later


def test_a_slot_s_fields_default_for_one_pickled_before_them():
    slot = Slot(aggregate="cart", key=BUYER, state=None)
    state = dict(slot.__dict__)
    del state["told"], state["by_timer_step"]
    restored = Slot.__new__(Slot)
    restored.__dict__.update(state)
    assert (restored.told, restored.by_timer_step) == (None, False)
