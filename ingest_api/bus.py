"""Produce commands and wait for their results on `command.results`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from buyit.clients import IDLE_POLL_S, consumer_config, producer_config
from buyit.envelope import REPEATED, RESULTS, command_envelope, commands_topic
from state.common import Command

log = logging.getLogger(__name__)

KEEP_RESULTS = 20_000  # recent results kept for `GET /api/commands/{id}`


@dataclass(frozen=True)
class Result:
    """A command's outcome as the deciders answered it."""

    command_id: str
    ok: bool
    status: int
    body: dict | None
    error: str | None = None
    message: str | None = None
    details: dict | None = None
    requested_by: str | None = None
    repeated: bool = False  # not an answer: a retry of a request taken already (its answer is the first one's)

    @staticmethod
    def from_envelope(data: dict) -> "Result":
        p = data["payload"]
        return Result(data["correlationId"], bool(p["ok"]), int(p["status"]), p.get("body"), p.get("error"),
                      p.get("message"), p.get("details") or {}, data.get("requestedBy"),
                      data.get("type") == REPEATED)


class NotAcknowledged(RuntimeError):
    """The broker did not acknowledge a command in time: the caller must not be told it was accepted."""


def delivery_timeout_ms(ack_wait_s: float) -> int:
    """The producer's message.timeout.ms: inside the API's wait for an acknowledgement, so a command the
    API answered 503 for is never delivered later."""
    # librdkafka checks message timeouts about once a second, so leave it that second and a half more.
    return max(500, int(ack_wait_s * 1000) - 1500)


class CommandBus:
    """One producer and one results consumer per API process."""

    def __init__(self, brokers: list[str], wait_s: float, ack_wait_s: float = 5.0):
        self.wait_s, self.ack_wait_s = wait_s, ack_wait_s
        # A command the broker has not acknowledged when the API gives up waiting is answered 503, so it must
        # never be delivered after that: the producer drops it (and reports so) before the API's wait ends.
        self._producer = Producer(producer_config(brokers, **{"message.timeout.ms": delivery_timeout_ms(ack_wait_s)}))
        self._consumer = Consumer(consumer_config(brokers, "buyit-api"))
        self._waiters: dict[str, list[asyncio.Future]] = {}  # command id -> requests waiting for its answer
        self._recent: OrderedDict[str, Result] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer.assign(self._results_ends())  # from the end: only answers to commands sent from now on
        for target in (self._consume, self._deliver):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)

    # A broker just started (or a partition just moved) answers "not leader" for a moment: wait it out.
    @retry(retry=retry_if_exception_type(KafkaException), stop=stop_after_delay(30), wait=wait_fixed(0.5),
           reraise=True)
    def _results_ends(self) -> list[TopicPartition]:
        meta = self._consumer.list_topics(RESULTS, timeout=10)
        parts = []
        for p in meta.topics[RESULTS].partitions:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(RESULTS, p), timeout=10)
            parts.append(TopicPartition(RESULTS, p, max(high, 0)))
        return parts

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._producer.flush(5)
        self._consumer.close()

    # --- sending ---

    async def send(self, aggregate: str, key: str, command: Command, wait: bool = True,
                   timeout: float | None = None) -> Result | None:
        """Produce `command` keyed by its aggregate; its result, or None if it did not come in time
        (`timeout`, by default the configured command wait)."""
        envelope = command_envelope(command, key)
        future = self._loop.create_future()
        self._add_waiter(envelope.event_id, future)
        loop = self._loop
        # A delivery failure wakes the request at once. A success is only looked at if the answer is late
        # (202, "accepted, not decided yet", is said only of a command the broker has acknowledged), so it
        # wakes the event loop only then: most answers come before anyone asks.
        delivery = _Delivery()

        def on_delivery(err, msg):
            if err is not None:
                loop.call_soon_threadsafe(_settle, future, err)
            delivery.err, delivery.done = err, True
            asked = delivery.asked
            if asked is not None:
                loop.call_soon_threadsafe(_report, asked, err)
        self._producer.produce(commands_topic(aggregate), envelope.encode(), key.encode(),
                               on_delivery=on_delivery)
        started = loop.time()
        try:
            if wait:
                try:
                    async with asyncio.timeout(self.wait_s if timeout is None else timeout):
                        return await future
                except TimeoutError:
                    pass
            delivered = delivery.asked = loop.create_future()
            if delivery.done:  # reported before it was asked for (or while): no wake-up is coming for it
                _report(delivered, delivery.err)
            try:  # no answer yet: "accepted" (202) only once the broker holds the command
                async with asyncio.timeout(max(0.0, self.ack_wait_s - (loop.time() - started))):
                    err = await delivered
            except TimeoutError:
                raise NotAcknowledged("the broker has not acknowledged the command") from None
            if err is not None:
                raise NotAcknowledged(f"could not produce the command: {err}")
            return None
        finally:
            self._drop_waiter(envelope.event_id, future)

    def broker_reachable(self, timeout: float) -> bool:
        """Whether the broker answers a metadata request (blocking: call it off the event loop)."""
        self._producer.list_topics(RESULTS, timeout=timeout)
        return True

    def recent(self, command_id: str) -> Result | None:
        with self._lock:
            return self._recent.get(command_id)

    async def wait(self, command_id: str, timeout: float) -> Result | None:
        """Wait up to `timeout` for the answer to a command sent earlier (the poll endpoint, a retry)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    future = self._loop.create_future()
                    with self._lock:
                        known = self._recent.get(command_id)
                        if known is None:
                            self._waiters.setdefault(command_id, []).append(future)
                    if known is not None:
                        return known
                    try:
                        result = await future
                    finally:
                        self._drop_waiter(command_id, future)
                    if not result.repeated:
                        return result
        except TimeoutError:
            return None

    def _add_waiter(self, command_id: str, future: asyncio.Future) -> None:
        with self._lock:
            self._waiters.setdefault(command_id, []).append(future)

    def _drop_waiter(self, command_id: str, future: asyncio.Future) -> None:
        with self._lock:
            waiting = self._waiters.get(command_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[command_id]

    # --- background threads ---

    def _deliver(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(IDLE_POLL_S)

    def _consume(self) -> None:
        while not self._stop.is_set():
            # poll() returns on the first record; consume() alone would sit out its whole timeout
            first = self._consumer.poll(IDLE_POLL_S)
            if first is None:
                continue
            answered = []
            for msg in [first, *self._consumer.consume(499, 0)]:
                if msg.error() is not None:
                    continue
                try:
                    result = Result.from_envelope(msgspec.json.decode(msg.value()))
                except (ValueError, KeyError, TypeError, msgspec.DecodeError):
                    log.warning("unreadable result record at offset %s", msg.offset())
                    continue
                with self._lock:
                    if not result.repeated and result.command_id not in self._recent:  # the first answer stands
                        self._recent[result.command_id] = result
                        while len(self._recent) > KEEP_RESULTS:
                            self._recent.popitem(last=False)
                    answered.extend((waiter, result) for waiter in self._waiters.get(result.command_id, ()))
            if answered:  # one wake-up of the event loop per batch, not one per answer
                self._loop.call_soon_threadsafe(_settle_results, answered)


class _Delivery:
    """A command's delivery report, written by the producer's thread, read by the request that sent it."""

    __slots__ = ("done", "err", "asked")

    def __init__(self):
        self.done, self.err = False, None
        self.asked: asyncio.Future | None = None  # set once the request waits on the report


def _settle(future: asyncio.Future, err) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(True)
    else:
        future.set_exception(NotAcknowledged(f"could not produce the command: {err}"))


def _report(delivered: asyncio.Future, err) -> None:
    """Record a delivery report: None once the broker holds the command, else the error."""
    if not delivered.done():
        delivered.set_result(err)


def _settle_results(answered: list[tuple[asyncio.Future, Result]]) -> None:
    for future, result in answered:
        if not future.done():
            future.set_result(result)
