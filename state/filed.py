"""A persistent map that a snapshot pickles drawer by drawer.

Bytewax pickles the whole state of every key an epoch touched, every epoch (1 s). A product that many
carts hold, or that sold to many orders, keeps an entry for each (a reservation, a tombstone): 75,000 of
them took 0.7 s to pickle, every second the product was touched, so a flash sale's product spent most of
its time being snapshotted. Here the entries are filed in drawers of `DRAWER` keys, in the order the keys
came; a drawer's pickle is made once and kept while the drawer is unchanged, so a snapshot pickles afresh
only the drawers changed since the last one and copies the others' bytes.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from typing import Any

from immutables import Map
from pyrsistent import PList, PVector, plist, pvector

# Keys per drawer: a change re-pickles its drawer (about 1.5 µs a reservation), and a snapshot copies one
# blob per drawer.
DRAWER = 32


class _Drawer:
    """Some entries (a dict never changed once made: a change makes a new drawer) and, once made, their pickle."""

    __slots__ = ("entries", "_blob")

    def __init__(self, entries: dict, blob: bytes | None = None):
        self.entries, self._blob = entries, blob

    def blob(self) -> bytes:
        if self._blob is None:
            self._blob = pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL)
        return self._blob

    def with_entry(self, key, value) -> _Drawer:
        entries = self.entries.copy()  # at most DRAWER entries: a C copy, cheaper than a persistent map's set
        entries[key] = value
        return _Drawer(entries)

    def without(self, key) -> _Drawer:
        entries = self.entries.copy()
        del entries[key]
        return _Drawer(entries)


_NONE = _Drawer({})


class Filed(Mapping):
    """An immutable map with pyrsistent's `set` and `discard`; equal to any mapping of the same items.
    `items()` and `values()` are one-pass iterators, not views."""

    __slots__ = ("_entries", "_drawers", "_open", "_room", "_free")

    def __init__(self, entries: Map = Map(), drawers: PVector = pvector(), open_: int = 0, room: int = 0,
                 free: PList = plist()):
        # key -> (number of its drawer, value): a read is one lookup; a C map (immutables), five to fifteen
        # times faster than pyrsistent's pmap for the sets and deletes every reservation makes
        self._entries = entries
        self._drawers = drawers  # number -> _Drawer (an emptied one is _NONE, its number free for a new drawer)
        self._open, self._room = open_, room  # the drawer new keys go into, and how many more it takes
        self._free = free  # numbers of emptied drawers: the next drawer opened takes one, so the list never grows

    @classmethod
    def of(cls, items: Mapping) -> Filed:
        """A `Filed` holding `items` (itself if it is one; else a plain or persistent map of an older snapshot)."""
        if isinstance(items, Filed):
            return items
        filed = cls()
        for key, value in items.items():
            filed = filed.set(key, value)
        return filed

    def __getitem__(self, key):
        return self._entries[key][1]

    def get(self, key, default=None):
        entry = self._entries.get(key)
        return default if entry is None else entry[1]

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator:
        for drawer in self._drawers:
            yield from drawer.entries

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        for drawer in self._drawers:
            yield from drawer.entries.items()

    def values(self) -> Iterator:  # type: ignore[override]
        for drawer in self._drawers:
            yield from drawer.entries.values()

    def set(self, key, value) -> Filed:
        """This map with `key` -> `value` (in its drawer, or a new key in the open one)."""
        entry = self._entries.get(key)
        if entry is not None:
            number = entry[0]
            drawers = self._drawers.set(number, self._drawers[number].with_entry(key, value))
            return Filed(self._entries.set(key, (number, value)), drawers, self._open, self._room, self._free)
        number, room, free = self._open, self._room, self._free
        if room == 0:  # the open drawer took its share: open it again if it has emptied, or an emptied one, or a new one
            if not (number < len(self._drawers) and not self._drawers[number].entries):
                number, free = (free.first, free.rest) if free else (len(self._drawers), free)
            room = DRAWER
        if number < len(self._drawers):
            drawers = self._drawers.set(number, self._drawers[number].with_entry(key, value))
        else:
            drawers = self._drawers.append(_Drawer({key: value}))
        return Filed(self._entries.set(key, (number, value)), drawers, number, room - 1, free)

    def discard(self, key) -> Filed:
        """This map without `key` (itself if `key` is not in it)."""
        entry = self._entries.get(key)
        if entry is None:
            return self
        number, drawer = entry[0], self._drawers[entry[0]]
        entries = self._entries.delete(key)
        if len(drawer.entries) > 1:
            return Filed(entries, self._drawers.set(number, drawer.without(key)), self._open, self._room, self._free)
        free = self._free if number == self._open else self._free.cons(number)  # the open one stays open
        return Filed(entries, self._drawers.set(number, _NONE), self._open, self._room, free)

    def __hash__(self) -> int:  # immutable, like a pmap (and so a dataclass takes it as a plain default)
        return hash(frozenset(self.items()))

    def __reduce__(self):
        return (_unfiled, (tuple(drawer.blob() for drawer in self._drawers if drawer.entries),))

    def __repr__(self) -> str:
        return f"Filed({dict(self.items())!r})"


def _unfiled(blobs: tuple[bytes, ...]) -> Filed:
    """A pickled `Filed` back, its drawers keeping their pickles (numbered afresh, the emptied ones gone; new keys
    go into a new drawer after them)."""
    entries: dict = {}
    drawers = []
    for number, blob in enumerate(blobs):
        drawer = _Drawer(pickle.loads(blob), blob)
        drawers.append(drawer)
        entries.update((key, (number, value)) for key, value in drawer.entries.items())
    return Filed(Map(entries), pvector(drawers), len(drawers), 0)


EMPTY = Filed()
