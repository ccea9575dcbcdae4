"""The decision operator's window of remembered command ids (dataflows/remembered.py)."""

from __future__ import annotations

import pickle
import random
import uuid
from collections import OrderedDict

import pytest

from dataflows.remembered import CHUNK, Remembered


CART = [str(uuid.UUID(int=random.Random(n).getrandbits(128))) for n in range(24)]  # one cart's items, products


def answer(i: int) -> tuple[str, tuple[str, str, bytes]]:
    """A fingerprint and an answer record like one to a buyer's cart: 1.3 KB of JSON, three fresh ids (event,
    correlation, causation) and the cart's own ids."""
    fresh = [str(uuid.UUID(int=random.Random(i * 10 + n + 1000).getrandbits(128))) for n in range(3)]
    body = ",".join(f'"{name}Id":"{ident}"' for name, ident in zip(["event", "item", "product"] * 9, fresh + CART))
    return f"fp-{i}", ("command.results", fresh[1], f"{{{body}}}".encode())


@pytest.mark.parametrize("limit", [1, 4, CHUNK - 1, CHUNK, 100, 512])
def test_exactly_the_last_limit_ids_are_remembered(limit):
    window, kept = Remembered(limit), {}
    for i in range(3 * limit + CHUNK + 5):
        kept[f"id-{i}"] = answer(i)
        window.add(f"id-{i}", kept[f"id-{i}"])
        newest = i + 1
        for j in {0, max(0, newest - limit - 1), max(0, newest - limit), newest - 1}:
            expected = kept[f"id-{j}"] if j >= newest - limit else None
            assert window.get(f"id-{j}") == expected, (limit, i, j)
    assert "id-0" not in window and f"id-{newest - 1}" in window


def test_an_id_seen_again_is_found_at_its_last_place():
    window = Remembered(50)
    window.add("again", answer(0))
    for i in range(60):  # "again" falls out of the window (and its chunk is sealed or dropped)
        window.add(f"id-{i}", answer(i + 1))
    assert window.get("again") is None
    window.add("again", answer(99))
    for i in range(40):  # its new entry is sealed in a newer chunk
        window.add(f"more-{i}", answer(i))
    assert window.get("again") == answer(99)


def test_a_snapshot_restores_the_same_window():
    window = Remembered(100)
    for i in range(250):
        window.add(f"id-{i}", answer(i))
    restored = pickle.loads(pickle.dumps(window))
    for i in range(250):
        assert restored.get(f"id-{i}") == window.get(f"id-{i}")
    restored.add("next", answer(1000))
    assert restored.get("id-150") is None and restored.get("id-151") is not None


def test_a_snapshot_pickles_only_the_open_chunk_afresh():
    """What made the change worth it: a full window of 512 cart-sized answers pickled every second."""
    window, plain = Remembered(512), OrderedDict()
    for i in range(512):
        window.add(f"id-{i}", answer(i))
        plain[f"id-{i}"] = answer(i)
    sealed_bytes = pickle.dumps(window)
    assert len(sealed_bytes) < len(pickle.dumps(plain)) / 3  # sealed chunks: compressed, pickled once


def test_a_window_from_an_older_snapshot_keeps_its_order():
    older = OrderedDict((f"id-{i}", answer(i)) for i in range(600))
    window = Remembered.of(512, older.items())
    assert window.get("id-87") is None and window.get("id-88") == older["id-88"]
    assert window.get("id-599") == older["id-599"]


@pytest.mark.parametrize("restored", [False, True], ids=["live", "restored"])
def test_what_falls_out_of_the_window_is_let_go(restored):
    """The lookup index holds no more than the window's chunks do, live or after a snapshot restores it."""
    window = Remembered(100)
    for i in range(150):
        window.add(f"id-{i % 120}", answer(i))  # some ids seen again
    if restored:
        window = pickle.loads(pickle.dumps(window))
    for i in range(150, 2000):
        window.add(f"id-{i}", answer(i))
        if i % 97 == 0 and i - 101 >= 150:
            assert window.get(f"id-{i - 50}") == answer(i - 50) and window.get(f"id-{i - 101}") is None
    held = sum(len(chunk.entries()) for chunk in window._sealed) + len(window._open)
    assert len(window._index) <= held <= 100 + CHUNK
