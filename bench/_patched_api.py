"""The API with one change to ingest_api/bus.py's results reader, to measure what it would gain.

`CommandBus._consume` calls `Consumer.consume(500, 0.05)`, and librdkafka's batch consume only
returns when it has 500 records or the 0.05 s timeout has passed, so at low load every result
waits out the rest of that 50 ms window. Here the consumer returns as soon as one record is
there (`poll(timeout)`) and then takes whatever else is already buffered (`consume(n - 1, 0)`).

Run as `uvicorn bench._patched_api:create_app --factory` (bench.roundtrip --patched does that).
"""

from __future__ import annotations

import ingest_api.bus as bus
from ingest_api.app import create_app as _create_app


class _FirstRecordReturns:
    """A Consumer whose `consume` returns once at least one record is in (or on timeout)."""

    def __init__(self, consumer):
        self._c = consumer

    def consume(self, num_messages: int = 1, timeout: float = -1):
        first = self._c.poll(timeout)
        if first is None:
            return []
        return [first, *self._c.consume(num_messages - 1, 0)] if num_messages > 1 else [first]

    def __getattr__(self, name):
        return getattr(self._c, name)


_original_init = bus.CommandBus.__init__


def _init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self._consumer = _FirstRecordReturns(self._consumer)


bus.CommandBus.__init__ = _init


def create_app():
    return _create_app()
