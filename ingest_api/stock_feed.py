"""Live stock for seller dashboards: one Postgres poll per seller, however many dashboards watch it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ingest_api.errors import ApiError

POLL_S = 0.25
STREAMS_PER_SELLER = 5  # a seller's tabs and screens; more is a client bug or abuse
QUEUE_ROWS = 10_000  # a dashboard this far behind is dropped; it reconnects and starts from a snapshot


@dataclass
class _Watcher:
    rows: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_ROWS))
    fresh: bool = True  # has not had the full snapshot yet


class StockFeeds:
    """Fans one poll of a seller's stock rows out to every stream of that seller in this API process."""

    def __init__(self, reads, poll_s: float = POLL_S, per_seller: int = STREAMS_PER_SELLER):
        self._reads, self._poll_s, self._per_seller = reads, poll_s, per_seller
        self._watchers: dict[str, list[_Watcher]] = {}
        self._pollers: dict[str, asyncio.Task] = {}

    def watch(self, seller_id: str) -> _Watcher:
        """A new stream of the seller's stock: every row first, then each changed row. 429 past the cap."""
        watchers = self._watchers.setdefault(seller_id, [])
        if len(watchers) >= self._per_seller:
            raise ApiError(429, "too_many_streams",
                           f"at most {self._per_seller} stock streams per seller at once", retry_after=5)
        watcher = _Watcher()
        watchers.append(watcher)
        if seller_id not in self._pollers:
            self._pollers[seller_id] = asyncio.create_task(self._poll(seller_id))
        return watcher

    def leave(self, seller_id: str, watcher: _Watcher) -> None:
        watchers = self._watchers.get(seller_id, [])
        if watcher in watchers:
            watchers.remove(watcher)

    async def _poll(self, seller_id: str) -> None:
        seen: dict[str, int] = {}
        try:
            while self._watchers.get(seller_id):
                rows = await self._reads.all(
                    "SELECT s.*, p.name FROM stock s LEFT JOIN products p USING (product_id) "
                    "WHERE s.seller_id = %s ORDER BY s.product_id LIMIT 5000", seller_id)
                changed = [r for r in rows if seen.get(r["product_id"]) != r["version"]]
                seen.update((r["product_id"], r["version"]) for r in changed)
                for watcher in list(self._watchers.get(seller_id, [])):
                    batch = rows if watcher.fresh else changed
                    if watcher.rows.qsize() + len(batch) >= QUEUE_ROWS:  # too slow: let it go, not hold rows
                        self.leave(seller_id, watcher)
                        watcher.rows.put_nowait(None)
                        continue
                    for row in batch:
                        watcher.rows.put_nowait(row)
                    watcher.fresh = False
                await asyncio.sleep(self._poll_s)
        finally:
            self._pollers.pop(seller_id, None)
            if not self._watchers.get(seller_id):
                self._watchers.pop(seller_id, None)
