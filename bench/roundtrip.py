"""Request/reply latency: the bare broker+dataflow round trip, and a command through the HTTP API.

    python -m bench.roundtrip [-n 500] [--warmup 50] [--keep]

(a) bare: confluent_kafka produces a `Ping` command envelope to `health.commands` and waits for
    the record with that correlationId on `command.results` (consumer assigned to every
    partition from the end, polled for one record at a time), N times, sequentially.
(b) API: `PUT /api/inventory/stock` with httpx, sequential, a seller's token, its own product.

Everything runs against a private stack (in-memory broker) started here and stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from bench._common import (api_url, cpu_delta, cpu_seconds, create_product, log_lines, private_stack,
                           summary_ms, table, token)
from buyit.envelope import RESULTS, command_envelope, commands_topic
from state.health import Ping


class BareRoundTrip:
    """A producer to `health.commands` and a results consumer assigned to all partitions from the end."""

    def __init__(self, bootstrap: str):
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "all"})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 5,
                                  "fetch.error.backoff.ms": 10})
        meta = self.consumer.list_topics(RESULTS, timeout=10)
        parts = []
        for p in meta.topics[RESULTS].partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(RESULTS, p), timeout=10)
            parts.append(TopicPartition(RESULTS, p, max(high, 0)))
        self.consumer.assign(parts)
        self.delivery_errors = 0

    def _delivered(self, err, msg):
        if err is not None:
            self.delivery_errors += 1

    def once(self, timeout: float = 10.0) -> float:
        """Seconds from produce to the matching result record (TimeoutError past `timeout`)."""
        envelope = command_envelope(Ping(command_id=str(uuid.uuid4()), now=datetime.now(UTC)), "ping")
        wanted = envelope.correlation_id
        value = envelope.encode()
        started = time.perf_counter()
        self.producer.produce(commands_topic("health"), value, b"ping", on_delivery=self._delivered)
        self.producer.poll(0)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            for msg in self.consumer.consume(1, 0.5):
                if msg.error() is not None:
                    continue
                if json.loads(msg.value()).get("correlationId") == wanted:
                    elapsed = time.perf_counter() - started
                    self.producer.poll(0)
                    return elapsed
        raise TimeoutError(f"no result for ping {wanted} within {timeout}s")

    def close(self):
        self.producer.flush(5)
        self.consumer.close()


def api_put_stock(stack, base_url: str, n: int, warmup: int) -> tuple[list[float], dict]:
    """Sequential PUT /api/inventory/stock on one product; (latencies of 200s, status counts)."""
    _, tok = token(stack, "SELLER")
    codes: dict = {}
    latencies = []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {tok}"}, timeout=30) as http:
        pid = create_product(http, f"RT-{uuid.uuid4().hex[:6]}")
        for i in range(warmup + n):
            started = time.perf_counter()
            try:
                r = http.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": 1000 + i})
                code = r.status_code
            except httpx.HTTPError as err:
                code = type(err).__name__
            elapsed = time.perf_counter() - started
            if i < warmup:
                continue
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                latencies.append(elapsed)
    return latencies, codes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=500, help="measured round trips per row (default 500)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measurement first (default 5)")
    ap.add_argument("--keep", action="store_true", help="keep the stack's data dir (logs) afterwards")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()[0]
    with private_stack("roundtrip", keep=args.keep) as stack:
        bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
        idle0 = cpu_seconds(stack)
        time.sleep(args.idle)  # what the stack burns doing nothing (consumers polling with short fetch waits)
        idle = cpu_delta(idle0, cpu_seconds(stack))
        cpu0 = cpu_seconds(stack)
        bare = BareRoundTrip(bootstrap)
        timeouts = 0
        try:
            for _ in range(args.warmup):
                bare.once()
            bare_lat = []
            for _ in range(args.n):
                try:
                    bare_lat.append(bare.once())
                except TimeoutError:
                    timeouts += 1
        finally:
            bare.close()
            delivery_errors = bare.delivery_errors
            bare = None  # drop the clients before the broker goes away
        api_lat, codes = api_put_stock(stack, api_url(stack), args.n, args.warmup)
        cpu = cpu_delta(cpu0, cpu_seconds(stack))
        trouble = log_lines(stack)

    a, b = summary_ms(bare_lat), summary_ms(api_lat)
    rows = [["(a) bare: Ping -> health.commands -> decide -> command.results", a["n"], a["p50"], a["p95"],
             a["p99"], a["mean"], a["max"]],
            ["(b) API: PUT /api/inventory/stock (httpx, sequential)", b["n"], b["p50"], b["p95"], b["p99"],
             b["mean"], b["max"]]]
    print()
    print("Round trip latency, ms (sequential, one request in flight; loopback; memory broker; 2-core box)")
    print(table(["path", "n", "p50", "p95", "p99", "mean", "max"], rows))
    print()
    print(f"ratio API/bare at p50: {b['p50'] / a['p50']:.2f}x"
          f"   (API p50 - bare p50 = {b['p50'] - a['p50']:.1f} ms)")
    print(f"bare timeouts (>10 s): {timeouts}   producer delivery errors: {delivery_errors}")
    print(f"API status counts: (b) {codes}")
    print(f"CPU use of the idle stack over {args.idle:.0f} s, % of one core: "
          + ", ".join(f"{k} {100 * v / args.idle:.0f}%" for k, v in sorted(idle.items(), key=lambda kv: -kv[1])
                      if v >= 0.01 and not k.startswith("bench")))
    print("CPU seconds used during the measurements, per process (incl. children): "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05))
    print(f"1-min load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} CPUs)")
    if trouble:
        print("\nlog lines that look like trouble:")
        print("\n".join(trouble))
    ok = timeouts == 0 and set(codes) == {200}
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
