"""The map a product's reservations and tombstones are filed in: a map like any other, and a snapshot of it
pickles afresh only the drawers changed since the last one."""

from __future__ import annotations

import pickle
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from pyrsistent import pmap

from state import inventory
from state.filed import DRAWER, EMPTY, Filed
from tests.state.given import allocated, fold, refused, released, reserved, stock_created, stock_was_set

# A change: set a key (0..40, so keys come back after they went) to a value, or discard it.
changes = st.lists(st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers())), max_size=300)


@given(changes)
def test_it_holds_what_a_dict_holds(steps):
    filed, expected = EMPTY, {}
    for key, value in steps:
        if value is None:
            filed, _ = filed.discard(key), expected.pop(key, None)
        else:
            filed, expected[key] = filed.set(key, value), value
    assert (dict(filed.items()), sorted(filed), sorted(filed.values()), len(filed)) == (
        expected, sorted(expected), sorted(expected.values()), len(expected))
    assert all(filed[k] == v and filed.get(k) == v and k in filed for k, v in expected.items())
    assert (filed.get(41), 41 in filed, filed == expected, filed == pmap(expected)) == (None, False, True, True)
    assert pickle.loads(pickle.dumps(filed)) == expected


@given(changes)
def test_a_reloaded_map_takes_changes_like_the_original(steps):
    """Reloaded, drawers are numbered afresh: the same changes on both give the same map."""
    filed = Filed.of({k: k for k in range(0, 200, 3)})
    reloaded = pickle.loads(pickle.dumps(filed))
    for key, value in steps:
        filed = filed.discard(key) if value is None else filed.set(key, value)
        reloaded = reloaded.discard(key) if value is None else reloaded.set(key, value)
        assert reloaded == filed
    assert pickle.loads(pickle.dumps(reloaded)) == filed


def test_drawers_emptied_are_used_again():
    """Keys that come and go (a flash sale's carts) must not leave a drawer behind each: the snapshot walks them."""
    filed = EMPTY.set("kept", 0)
    for key in range(100 * DRAWER):
        filed = filed.set(key, key).discard(key)
    assert len(filed._drawers) == 2
    many = Filed.of({key: key for key in range(20 * DRAWER)})
    for key in range(20 * DRAWER):
        many = many.discard(key)
    for key in range(20 * DRAWER, 40 * DRAWER):
        many = many.set(key, key)
    assert (len(many._drawers), dict(many.items())) == (20, {k: k for k in range(20 * DRAWER, 40 * DRAWER)})


class Counted:
    """A value that counts how many times it was pickled."""

    pickled = 0

    def __init__(self, n: int):
        self.n = n

    def __reduce__(self):
        Counted.pickled += 1
        return (Counted, (self.n,))

    def __eq__(self, other):
        return isinstance(other, Counted) and other.n == self.n

    __hash__ = None


def test_a_snapshot_pickles_afresh_only_the_drawers_that_changed():
    filed = Filed.of({k: Counted(k) for k in range(10 * DRAWER)})
    first = pickle.dumps(filed)
    Counted.pickled = 0
    assert pickle.dumps(filed) == first and Counted.pickled == 0  # nothing changed: nothing pickled afresh

    changed = filed.set(5, Counted(-5)).discard(3 * DRAWER).set("new", Counted(1))
    again = pickle.dumps(changed)
    # the drawer of 5 (DRAWER values), the drawer 3 * DRAWER left (DRAWER - 1), the new key's drawer (1)
    assert Counted.pickled == 2 * DRAWER
    assert pickle.loads(again) == {**{k: Counted(k) for k in range(10 * DRAWER) if k != 3 * DRAWER},
                                   5: Counted(-5), "new": Counted(1)}
    assert pickle.dumps(filed) == first  # the older map is unchanged, and still pickles from its kept bytes


def test_a_product_pickles_without_its_indexes_and_rebuilds_them():
    stock = fold(inventory, [stock_created(), stock_was_set(10), reserved(2), allocated(3),
                             reserved(1, reservation_id="reservation-3", seq=1),
                             released(1, available=5, reservation_id="reservation-3", seq=2),
                             refused(9, available=5, seq=1, reservation_id="reservation-4")])
    assert stock.expiring and stock.forgetting  # something to rebuild
    kept = stock.__reduce__()[1][0]
    assert "expiring" not in kept and "forgetting" not in kept
    loaded = pickle.loads(pickle.dumps(stock))
    assert loaded == stock
    inventory.audit(loaded)


def test_a_product_holding_plain_maps_is_filed_when_it_pickles():
    """A product holding plain persistent maps (what an older build's states were) pickles, and loads filed."""
    stock = fold(inventory, [stock_created(), stock_was_set(10), reserved(2),
                             refused(9, available=8, seq=1, reservation_id="reservation-4")])
    older = replace(stock, reservations=pmap(dict(stock.reservations)), ended=pmap(dict(stock.ended)))
    loaded = pickle.loads(pickle.dumps(older))
    assert (type(loaded.reservations), type(loaded.ended), loaded) == (Filed, Filed, stock)
    inventory.audit(loaded)


def test_a_snapshot_pickled_by_the_previous_build_loads():
    """What the previous build wrote: every dataclass as a dict of its fields, plain persistent maps, the indexes
    included. It loads with its maps filed (so its very next snapshot is cheap) and works."""
    import copyreg
    import io

    stock = fold(inventory, [stock_created(), stock_was_set(10), reserved(2), allocated(3),
                             refused(9, available=5, seq=1, reservation_id="reservation-4")])
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {kind: lambda obj: (copyreg.__newobj__, (type(obj),), dict(vars(obj)))
                              for kind in (inventory.Reservation, inventory.Ended)}
    pickler.dispatch_table[inventory.Stock] = lambda obj: (copyreg.__newobj__, (inventory.Stock,), {
        **vars(obj), "reservations": pmap(dict(obj.reservations)), "ended": pmap(dict(obj.ended)),
        "expiring": _pyrsistent(obj.expiring), "forgetting": _pyrsistent(obj.forgetting)})
    pickler.dump(stock)
    loaded = pickle.loads(out.getvalue())
    assert (type(loaded.reservations), type(loaded.ended), loaded) == (Filed, Filed, stock)  # filed as it loads
    inventory.audit(loaded)
    again = pickle.loads(pickle.dumps(loaded))
    assert (type(again.reservations), again) == (Filed, stock)
    # and it folds on: a hold and a refusal change both indexes
    more = [reserved(1, reservation_id="reservation-5", seq=1),
            refused(9, available=4, seq=1, reservation_id="reservation-6")]
    for event in more:
        loaded, stock = inventory.evolve(loaded, event), inventory.evolve(stock, event)
    assert loaded == stock
    inventory.audit(loaded)


def _pyrsistent(index) -> object:
    """An index as builds before 2026-12-03 held it: a pmap of psets."""
    from pyrsistent import pset
    return pmap({at: pset(ids) for at, ids in index.items()})
