"""`Ids`, the persistent set a cart keeps its request and order ids in, and carts pickled before it."""

from __future__ import annotations

import pickle
from functools import reduce

from immutables import Map
from pyrsistent import pmap, pset

from state import cart
from state.common import replace
from state.ids import Ids
from tests.state.test_cart import CHECKED_OUT


def test_ids_are_an_immutable_set():
    empty = Ids()
    one = empty.add("a")
    two = one.add("b")
    assert (len(empty), len(one), len(two)) == (0, 1, 2) and "a" in two and "c" not in two
    assert two.add("a") is two and two.discard("c") is two
    assert two.discard("a") == {"b"} and two == {"a", "b"} == frozenset(two) and two == pset({"a", "b"})
    assert pset({"a", "b"}) == two and {"a", "b"} == two and two != {"a"} and two != Ids(["a", "c"])
    assert hash(two) == hash(Ids(["b", "a"])) and pickle.loads(pickle.dumps(two)) == two
    assert sorted(two | {"c"}) == ["a", "b", "c"]  # the rest of a set's operations come with it


def test_a_cart_pickled_before_ids_loads_into_them_and_folds_on():
    state = reduce(cart.evolve, CHECKED_OUT, cart.initial_state())
    assert state.requests and state.orders and state.asks  # the fields the test is about are not empty
    older = replace(state, requests=pset(state.requests), earlier=pset(state.earlier), orders=pset(state.orders),
                    asks=pmap(dict(state.asks.items())))  # as builds before state/ids.py pickled it
    loaded = pickle.loads(pickle.dumps(older))
    assert [type(getattr(loaded, f)) for f in ("requests", "earlier", "orders", "asks")] == [Ids, Ids, Ids, Map]
    assert loaded == state == pickle.loads(pickle.dumps(state))
    assert cart.evolve(loaded, CHECKED_OUT[-1]) == cart.evolve(state, CHECKED_OUT[-1])  # adds to its orders
