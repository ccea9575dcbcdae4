"""`state.common.replace`, the fast `dataclasses.replace` every aggregate folds with: it copies fields
instead of calling `__init__`, so it is right only for dataclasses that `__init__` does nothing more for."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from datetime import UTC, datetime

import pytest

import state
from state.common import replace
from state.inventory import Reservation, Stock


def _dataclasses() -> list[type]:
    found = {}
    for module in pkgutil.iter_modules(state.__path__):
        for value in vars(importlib.import_module(f"state.{module.name}")).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__.startswith("state."):
                found[value] = None
    return list(found)


def test_there_are_dataclasses_to_check():
    assert len(_dataclasses()) > 50


@pytest.mark.parametrize("cls", _dataclasses(), ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_init_does_nothing_that_replace_skips(cls):
    assert not hasattr(cls, "__post_init__")
    assert "__slots__" not in vars(cls)
    for f in cls.__dataclass_fields__.values():
        assert f.init and f._field_type is not dataclasses._FIELD_INITVAR, f.name


def test_replace_is_dataclasses_replace():
    held = Reservation("r1", "c1", 2, "SOFT", datetime(2026, 1, 1, tzinfo=UTC))
    stock = Stock(product_id="p1", total=10, reserved=2, version=4)
    for before, changes in ((held, {"quantity": 3, "kind": "HARD"}), (stock, {"reserved": 3, "version": 5}),
                            (stock, {})):
        after = replace(before, **changes)
        assert after == dataclasses.replace(before, **changes) and type(after) is type(before)
        assert after is not before and after.__dict__ is not before.__dict__
    assert (stock.reserved, stock.version) == (2, 4)  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace(stock).reserved = 1


def test_an_unknown_field_is_refused():
    with pytest.raises(TypeError, match="reseved"):
        replace(Stock(), reseved=1)
