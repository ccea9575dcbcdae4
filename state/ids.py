"""A persistent set of ids on `immutables.Map`: what a cart remembers (the requests it applied, its orders)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Set

from immutables import Map


class Ids(Set):
    """An immutable set of ids with pyrsistent's `add` and `discard`; equal to any set of the same ids.

    A busy cart's requests grow with every add, and the cart is pickled at every snapshot it is touched in:
    on `immutables.Map` an add is about 7× faster than on pyrsistent's pset (0.4 against 2.7 µs) and a
    pickle (a tuple of the ids) 2.7× (17 against 45 µs for 400 ids), measured."""

    __slots__ = ("_ids",)

    def __init__(self, ids: Iterable[str] | Map = ()):
        self._ids = ids if isinstance(ids, Map) else Map(dict.fromkeys(ids))

    def add(self, member: str) -> Ids:
        return self if member in self._ids else Ids(self._ids.set(member, None))

    def discard(self, member: str) -> Ids:
        return Ids(self._ids.delete(member)) if member in self._ids else self

    def __contains__(self, member: object) -> bool:
        return member in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ids):
            return self._ids == other._ids
        return super().__eq__(other)

    def __hash__(self) -> int:  # immutable, like a pset (and so a dataclass takes it as a plain default)
        return self._hash()

    def __repr__(self) -> str:
        return f"Ids({sorted(self._ids)!r})"

    def __reduce__(self):
        return (Ids, (tuple(self._ids),))
