"""The decision operator's window of recent command ids per key, cheap to snapshot.

Bytewax snapshots the whole state of every key an epoch touched, every epoch (1 s). A busy key's window
(512 answers of one to two kilobytes each) was most of what it pickled: 0.4 MB for a buyer's cart in
`buyit demo`, a millisecond of pickling and 0.4 MB written to the recovery store every second it was
touched, and the same again for every other busy key. Here the entries are sealed in chunks whose
compressed pickle is made once, when a chunk fills; a snapshot copies those bytes and the open chunk.
"""

from __future__ import annotations

import pickle
import zlib
from collections import deque
from collections.abc import Iterable
from typing import Any

CHUNK = 32  # entries per sealed chunk: at most this many are pickled afresh at each snapshot


class _Sealed:
    """A full chunk: its pickle (zlib level 1: a fifth of the size of a demo cart's answers, about 2 µs an entry)
    and, once read, its entries."""

    __slots__ = ("last", "blob", "_entries")

    def __init__(self, last: int, blob: bytes, entries: dict | None = None):
        self.last, self.blob, self._entries = last, blob, entries

    def entries(self) -> dict:
        if self._entries is None:  # restored from a snapshot: unpickled on first use only
            self._entries = pickle.loads(zlib.decompress(self.blob))
        return self._entries


class Remembered:
    """The last `limit` command ids a key answered, each with what the decider keeps for it (its fingerprint
    and answer); older ones are forgotten, exactly: an id is remembered while fewer than `limit` ids came after it."""

    def __init__(self, limit: int):
        self.limit = limit
        self._count = 0  # ids remembered so far; each entry carries its ordinal
        self._open: dict[str, tuple] = {}
        self._sealed: deque[_Sealed] = deque()
        # Every entry still held, by id (the newest of an id seen again): a lookup in one dict instead of one
        # per chunk. Not pickled; None after a restore until the first lookup builds it.
        self._index: dict[str, tuple] | None = {}

    @classmethod
    def of(cls, limit: int, entries: Iterable[tuple[str, Any]]) -> Remembered:
        """A window holding `entries` (oldest first): what an older snapshot kept as an ordered dict."""
        window = cls(limit)
        for command_id, kept in entries:
            window.add(command_id, kept)
        return window

    def get(self, command_id: str) -> Any | None:
        """What was kept for `command_id`, or None if it is not (or no longer) remembered."""
        index = self._index
        if index is None:
            index = self._index = {}
            for chunk in self._sealed:  # oldest first: an id seen again ends at its last place
                index.update(chunk.entries())
            index.update(self._open)
        found = index.get(command_id)
        if found is None or found[0] <= self._count - self.limit:
            return None
        return found[1]

    def __contains__(self, command_id: str) -> bool:
        return self.get(command_id) is not None

    def add(self, command_id: str, kept: Any) -> None:
        """Remember `command_id` with `kept`; the oldest id beyond the window is forgotten."""
        self._count += 1
        entry = self._open[command_id] = (self._count, kept)
        index = self._index
        if index is not None:
            index[command_id] = entry
        if len(self._open) >= CHUNK:
            self._sealed.append(_Sealed(self._count, zlib.compress(pickle.dumps(self._open, 5), 1), self._open))
            self._open = {}
        while self._sealed and self._sealed[0].last <= self._count - self.limit:
            gone = self._sealed.popleft()
            if index is not None:
                for old_id, old in gone.entries().items():
                    if index.get(old_id) is old:  # not an id seen again since
                        del index[old_id]

    def clear(self) -> None:
        self._count, self._open, self._index = 0, {}, {}
        self._sealed.clear()

    def __getstate__(self) -> dict:
        return {"limit": self.limit, "count": self._count, "open": self._open,
                "sealed": [(chunk.last, chunk.blob) for chunk in self._sealed]}

    def __setstate__(self, state: dict) -> None:
        self.limit, self._count, self._open = state["limit"], state["count"], state["open"]
        self._sealed = deque(_Sealed(last, blob) for last, blob in state["sealed"])
        self._index = None
