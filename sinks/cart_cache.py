"""The Redis cart cache: `cart:{buyerId}` holds the active cart as JSON, expiring with the cart."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from sinks.views import json_text

# Write only if newer than what is cached, so replays and duplicates change nothing; returns the
# entries changed (1 or 0: a deletion of what is not there changes nothing).
_PUT = """
local held = redis.call('GET', KEYS[1])
if held then
  local ok, cart = pcall(cjson.decode, held)
  if ok and tonumber(cart['version']) and tonumber(cart['version']) >= tonumber(ARGV[2]) then return 0 end
end
if tonumber(ARGV[3]) <= 0 then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


def cache_key(buyer_id: str, prefix: str = "") -> str:
    """The cache entry of a buyer's cart; a replay that must not touch the live cache writes under a prefix."""
    return f"{prefix}cart:{buyer_id}"


def ttl_ms(view: dict, now: datetime) -> int:
    """How long the cache entry lives: until the cart expires; 0 (delete) once it is no longer active."""
    if view["status"] not in ("ACTIVE", "CHECKOUT") or not view.get("expiresAt"):
        return 0 if view["status"] != "CHECKOUT" else 3_600_000
    return max(0, int((datetime.fromisoformat(view["expiresAt"]) - now).total_seconds() * 1000))


class _Partition(StatelessSinkPartition):
    def __init__(self, url: str, prefix: str, tally: Counter | None):
        self._redis = redis.Redis.from_url(url)
        self._put = self._redis.register_script(_PUT)
        self._prefix = prefix
        self._tally = tally if tally is not None else Counter()

    def write_batch(self, items: list[dict]) -> None:
        now = datetime.now(UTC)
        # One write per cart, at its last place in the batch (a buyer's finished cart is deleted before the
        # next one is cached): an older view of a cart in the same batch would be a no-op.
        newest: dict[str, dict] = {}
        for view in items:
            held = newest.pop(view["cartId"], None)
            newest[view["cartId"]] = view if held is None or view["version"] >= held["version"] else held
        pipe = self._redis.pipeline(transaction=False)
        for view in newest.values():
            self._put(keys=[cache_key(view["buyerId"], self._prefix)],
                      args=[json_text(view), view["version"], ttl_ms(view, now)], client=pipe)
        self._tally["cart cache"] += sum(pipe.execute())

    def close(self) -> None:
        self._redis.close()


class CartCacheSink(DynamicSink):
    """A Bytewax sink of cart views into Redis (keys under `prefix`); `tally` counts the entries changed."""

    def __init__(self, url: str, prefix: str = "", tally: Counter | None = None):
        self._url, self._prefix, self._tally = url, prefix, tally

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._url, self._prefix, self._tally)
