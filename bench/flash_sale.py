"""Flash sale: N concurrent buyers after one hot SKU, ours (end to end) against a SERIALIZABLE baseline.

    python -m bench.flash_sale [--buyers 64] [--stock 2000] [--duration 15] [--client aiohttp|threads] [--keep]

(a) ours: a seller lists one product with `--stock` units; every buyer (own token; by default a
    coroutine on one aiohttp session, see --client) keeps POSTing /api/cart/items {quantity: 1} for it
    (each success raises that buyer's soft reservation by one) until `--duration` seconds have passed or it is refused for lack of stock. Each request goes
    HTTP -> API -> Kafka -> decision dataflow (cart, then inventory, then cart again) -> result.
(b) baseline, the spec's design taken literally, on the SAME embedded Postgres: one row
    `bench_inventory(product_id, available, reserved, total, version, CHECK (available >= 0))`;
    N threads, each with its own connection, loop: BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT;
    if available >= 1: UPDATE ... WHERE version = <read>; COMMIT; retrying serialization failures
    and 0-row updates up to `--retries` times with a tiny random backoff.

Everything runs against a private stack (in-memory broker) started here and stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from psycopg import IsolationLevel
from psycopg.errors import SerializationFailure

from bench._common import (api_url, cpu_delta, cpu_seconds, create_product, log_lines, private_stack, summary_ms,
                           table, token, wait_until)


# --- (a) ours, through the API ---

class Tally:
    """What the buyers saw: status counts, latencies, and a sample of each unexpected answer."""

    def __init__(self):
        self.codes: Counter = Counter()
        self.errors: Counter = Counter()
        self.samples: dict = {}
        self.ok_lat: list[float] = []
        self.all_lat: list[float] = []

    def failed(self, err: Exception) -> None:
        self.codes["exception"] += 1
        self.errors[f"{type(err).__name__}: {err}"[:120]] += 1

    def answered(self, status: int, text: str, seconds: float) -> bool:
        """Count one answer; True once this buyer should stop (sold out for quantity 1)."""
        self.all_lat.append(seconds)
        self.codes[status] += 1
        if status == 201:
            self.ok_lat.append(seconds)
            return False
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        error = body.get("error") if isinstance(body, dict) else None
        if status == 409 and error == "insufficient_stock":
            return True
        key = f"{status} {error}"
        self.errors[key] += 1
        self.samples.setdefault(key, str(body)[:300])
        return False

    def result(self, elapsed: float) -> dict:
        return {"codes": self.codes, "errors": self.errors, "samples": self.samples, "ok_lat": self.ok_lat,
                "all_lat": self.all_lat, "elapsed": elapsed}


async def _sale_aiohttp(base_url: str, pid: str, tokens: list[str], duration: float) -> dict:
    """Every buyer a coroutine on one aiohttp session: the lightest load generator (it shares the 2 cores)."""
    import aiohttp
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=len(tokens) + 4)
    async with aiohttp.ClientSession(base_url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        started = time.perf_counter()
        deadline = started + duration

        async def buyer(tok: str):
            headers = {"Authorization": f"Bearer {tok}"}
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    async with http.post("/api/cart/items", json={"productId": pid, "quantity": 1},
                                         headers=headers) as r:
                        status, text = r.status, await r.text()
                except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                    tally.failed(err)
                    continue
                if tally.answered(status, text, time.perf_counter() - t0):
                    return

        await asyncio.gather(*(buyer(t) for t in tokens))
        return tally.result(time.perf_counter() - started)


def _sale_threads(base_url: str, pid: str, tokens: list[str], duration: float) -> dict:
    """The same loop with one thread and one sync httpx.Client per buyer."""
    import concurrent.futures
    tally = Tally()  # Counter and list updates are atomic enough under the GIL
    gate = threading.Barrier(len(tokens) + 1)
    deadline = [0.0]

    def buyer(tok: str):
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {tok}"}, timeout=30) as http:
            gate.wait()
            while time.perf_counter() < deadline[0]:
                t0 = time.perf_counter()
                try:
                    r = http.post("/api/cart/items", json={"productId": pid, "quantity": 1})
                except httpx.HTTPError as err:
                    tally.failed(err)
                    continue
                if tally.answered(r.status_code, r.text, time.perf_counter() - t0):
                    return

    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        futures = [pool.submit(buyer, t) for t in tokens]
        deadline[0] = time.perf_counter() + 1e6
        gate.wait()
        started = time.perf_counter()
        deadline[0] = started + duration
        for f in futures:
            f.result()
        return tally.result(time.perf_counter() - started)


def run_ours(stack, buyers: int, units: int, duration: float, client: str = "aiohttp") -> dict:
    _, seller_tok = token(stack, "SELLER")
    seller = httpx.Client(base_url=api_url(stack), headers={"Authorization": f"Bearer {seller_tok}"}, timeout=30)
    try:
        pid = create_product(seller, f"HOT-{uuid.uuid4().hex[:6]}", units)
        people = [token(stack, "BUYER") for _ in range(buyers)]
        cpu0 = cpu_seconds(stack)
        tokens = [t for _, t in people]
        if client == "threads":
            out = _sale_threads(api_url(stack), pid, tokens, duration)
        else:
            out = asyncio.run(_sale_aiohttp(api_url(stack), pid, tokens, duration))
        out["cpu"] = cpu_delta(cpu0, cpu_seconds(stack))
        out["successes"] = out["codes"][201]

        # the read side is eventually consistent: wait for the stock view to settle
        def settled():
            first = seller.get(f"/api/inventory/stock/{pid}").json()
            time.sleep(1.0)
            second = seller.get(f"/api/inventory/stock/{pid}").json()
            return second if first["version"] == second["version"] else None
        out["stock"] = wait_until(settled, 30, "the stock view to settle")

        def cart_units(tok: str) -> int:
            r = httpx.get(f"{api_url(stack)}/api/cart", headers={"Authorization": f"Bearer {tok}"}, timeout=30)
            return sum(i["quantity"] for i in r.json()["items"] if i["productId"] == pid)
        out["cart_units"] = sum(cart_units(t) for _, t in people)
        out["hops"], out["record_counts"] = hop_breakdown(stack.env["KAFKA_BOOTSTRAP_SERVERS"])
        out["dead_letters"] = len(read_records(stack.env["KAFKA_BOOTSTRAP_SERVERS"], "dead.letters"))
        out["pid"] = pid
        return out
    finally:
        seller.close()


def read_records(bootstrap: str, topic: str) -> list[tuple[int, dict]]:
    """Every record of `topic` from the beginning: (producer timestamp ms, decoded envelope)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out, done, deadline = [], {p: ends[p] <= 0 for p in parts}, time.monotonic() + 20
        while not all(done.values()) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.1):
                if msg.error():
                    continue
                try:
                    out.append((msg.timestamp()[1], json.loads(msg.value())))
                except ValueError:
                    out.append((msg.timestamp()[1], {}))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done[msg.partition()] = True
        return out
    finally:
        consumer.close()


def hop_breakdown(bootstrap: str) -> tuple[list[list], dict]:
    """Per successful add, the time between the saga's records, from their producer timestamps (ms)."""
    first: dict[tuple[str, str], int] = {}
    for topic in ("cart.commands", "inventory.commands", "command.results"):
        for ts, env in read_records(bootstrap, topic):
            kind = "Result" if topic == "command.results" else env.get("type", "?")
            first.setdefault((kind, env.get("correlationId", "?")), ts)
    hops = {"API produce -> cart decided (ReserveStock out)": [],
            "ReserveStock -> inventory decided (ConfirmReservation out)": [],
            "ConfirmReservation -> cart decided (result out)": [],
            "API produce -> result out (whole saga in Kafka)": []}
    names = list(hops)
    for (kind, corr), t0 in first.items():
        if kind != "AddCartItem":
            continue
        t1, t2, t3 = (first.get(("ReserveStock", corr)), first.get(("ConfirmReservation", corr)),
                      first.get(("Result", corr)))
        if None in (t1, t2, t3):
            continue
        for name, d in zip(names, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            hops[name].append(d / 1000)
    counts = Counter(kind for kind, _ in first)
    rows = []
    for name, values in hops.items():
        m = summary_ms(values)
        rows.append([name, m["n"], m["p50"], m["p99"], m["mean"]])
    return rows, counts


# --- (b) the baseline, in Postgres ---

def run_baseline(url: str, workers: int, units: int, duration: float, retries: int) -> dict:
    pid = "bench-hot-1"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_inventory")
        conn.execute("CREATE TABLE bench_inventory (product_id text PRIMARY KEY, available int NOT NULL, "
                     "reserved int NOT NULL, total int NOT NULL, version int NOT NULL, CHECK (available >= 0))")
        conn.execute("INSERT INTO bench_inventory VALUES (%s, %s, 0, %s, 0)", (pid, units, units))

    lock = threading.Lock()
    tally: Counter = Counter()
    ok_lat: list[float] = []
    start_gate = threading.Barrier(workers + 1)
    stop_at = [0.0]
    connections = []
    try:
        for _ in range(workers):
            conn = psycopg.connect(url)
            conn.isolation_level = IsolationLevel.SERIALIZABLE  # each transaction: BEGIN ISOLATION LEVEL SERIALIZABLE
            connections.append(conn)
    except psycopg.OperationalError as err:
        for conn in connections:
            conn.close()
        return {"skipped": f"could not open {workers} connections (got {len(connections)}): "
                           f"{str(err).strip().splitlines()[-1]}"}

    def worker(conn):
        local: Counter = Counter()
        lat: list[float] = []
        try:
            start_gate.wait(60)
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                attempt, outcome = 0, None
                while outcome is None:
                    try:
                        available, version = conn.execute(
                            "SELECT available, version FROM bench_inventory WHERE product_id = %s", (pid,)).fetchone()
                        if available < 1:
                            conn.commit()
                            outcome = "sold_out"
                            break
                        cur = conn.execute("UPDATE bench_inventory SET available = available - 1, "
                                           "reserved = reserved + 1, version = version + 1 "
                                           "WHERE product_id = %s AND version = %s", (pid, version))
                        if cur.rowcount == 1:
                            conn.commit()
                            outcome = "ok"
                            break
                        conn.rollback()
                        local["retry: 0-row update (stale version)"] += 1
                    except SerializationFailure:
                        conn.rollback()
                        local["retry: serialization failure"] += 1
                    except psycopg.Error as err:
                        conn.rollback()
                        local[f"error: {type(err).__name__}"] += 1
                    attempt += 1
                    if attempt > retries:
                        outcome = "gave_up"
                        break
                    time.sleep(random.uniform(0, 0.001 * attempt))  # tiny backoff
                local[outcome] += 1
                if outcome == "ok":
                    lat.append(time.perf_counter() - t0)
                if outcome == "sold_out":
                    return
        finally:
            conn.close()
            with lock:
                tally.update(local)
                ok_lat.extend(lat)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in connections]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + duration + 1e6  # set for real once every thread is ready
    start_gate.wait(60)
    started = time.perf_counter()
    stop_at[0] = started + duration
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    with psycopg.connect(url, autocommit=True) as conn:
        available, reserved, total, version = conn.execute(
            "SELECT available, reserved, total, version FROM bench_inventory WHERE product_id = %s",
            (pid,)).fetchone()
        conn.execute("DROP TABLE bench_inventory")
    return {"tally": tally, "ok_lat": ok_lat, "elapsed": elapsed, "successes": tally["ok"],
            "stock": {"availableQuantity": available, "reservedQuantity": reserved, "totalQuantity": total,
                      "version": version}}


def run_core(stack, buyers: int, units: int) -> dict:
    """(c) the decision core alone: ReserveStock commands produced straight to `inventory.commands` for a
    second hot SKU (as the cart step does), timed until every one is decided on `inventory.events`."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from buyit.envelope import command_envelope
    from state.inventory import ReserveStock
    seller_id, seller_token = token(stack, "SELLER")
    with httpx.Client(base_url=api_url(stack), headers={"Authorization": f"Bearer {seller_token}"}, timeout=30) as h:
        pid = create_product(h, "CORE-1", units)
    brokers = ",".join(stack.settings_for_children().brokers)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bench", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})
    parts = consumer.list_topics("inventory.events", timeout=10).topics["inventory.events"].partitions
    consumer.assign([TopicPartition("inventory.events", p, consumer.get_watermark_offsets(
        TopicPartition("inventory.events", p), timeout=10)[1]) for p in parts])
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 2})
    sent = units + buyers  # every unit, then one refusal per buyer
    now = datetime.now(UTC)
    started = time.perf_counter()
    for n in range(sent):
        buyer = f"core-buyer-{n % buyers}"
        command = ReserveStock(command_id=str(uuid.uuid4()), now=now, product_id=pid, reservation_id=f"r-{buyer}",
                               cart_id=f"cart-{buyer}", buyer_id=buyer, quantity=1, mode="add",
                               expires_at=now + timedelta(minutes=15))
        producer.produce("inventory.commands", command_envelope(command, pid).encode(), pid.encode())
        producer.poll(0)
    producer.flush(30)
    outcomes: Counter = Counter()
    deadline = time.monotonic() + 120
    while sum(outcomes.values()) < sent and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.05):
            if msg.error() is None and msg.key() == pid.encode():
                kind = json.loads(msg.value())["type"]
                if kind in ("StockReserved", "ReservationRefused"):
                    outcomes[kind] += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"reserved": outcomes["StockReserved"], "refused": outcomes["ReservationRefused"], "elapsed": elapsed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=64, help="concurrent buyers / baseline workers (default 64)")
    ap.add_argument("--stock", type=int, default=2000, help="units of the hot SKU (default 2000)")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per side at most (default 15)")
    ap.add_argument("--retries", type=int, default=10, help="baseline retries per reservation (default 10)")
    ap.add_argument("--client", choices=("aiohttp", "threads"), default="aiohttp",
                    help="buyers' HTTP client in (a): aiohttp = every buyer a coroutine on one session, the "
                         "lightest load generator (default); threads = one thread and one sync httpx.Client "
                         "per buyer")
    ap.add_argument("--keep", action="store_true", help="keep the stack's data dir (logs) afterwards")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()[0]
    with private_stack("flash", keep=args.keep) as stack:
        ours = run_ours(stack, args.buyers, args.stock, args.duration, args.client)
        trouble = log_lines(stack)  # before the baseline, whose serialization failures Postgres logs
        base = run_baseline(stack.env["DATABASE_URL"], args.buyers, args.stock, args.duration, args.retries)
        core = run_core(stack, args.buyers, args.stock)
        command_wait = stack.settings.buyit_command_wait_s
    load_after = os.getloadavg()[0]

    codes = ours["codes"]
    o_lat, o_rate = summary_ms(ours["ok_lat"]), ours["successes"] / ours["elapsed"]
    o_other = sum(v for k, v in codes.items() if k not in (201, 409))
    rows = [["(a) ours: POST /api/cart/items", ours["successes"], codes[409], o_other, ours["elapsed"], o_rate,
             o_lat["p50"], o_lat["p99"], o_lat["max"]]]
    core_rate = core["reserved"] / core["elapsed"]
    rows.append(["(c) ours, decision core: ReserveStock via Kafka", core["reserved"], core["refused"],
                 args.stock + args.buyers - core["reserved"] - core["refused"], core["elapsed"], core_rate,
                 float("nan"), float("nan"), float("nan")])
    skipped = base.get("skipped")
    if not skipped:
        t = base["tally"]
        b_lat, b_rate = summary_ms(base["ok_lat"]), base["successes"] / base["elapsed"]
        b_retries = sum(v for k, v in t.items() if k.startswith("retry"))
        rows.append(["(b) baseline: SERIALIZABLE + version CAS", base["successes"], t["sold_out"], t["gave_up"],
                     base["elapsed"], b_rate, b_lat["p50"], b_lat["p99"], b_lat["max"]])
    print()
    print(f"Flash sale: {args.buyers} concurrent buyers, one SKU with {args.stock} units, up to {args.duration:.0f} s "
          f"per side, quantity 1 per request; buyers' client: {args.client}; loopback, memory broker, "
          f"{os.cpu_count()} CPUs shared with the load generator.")
    print("NOTE: ours is end to end (HTTP + JWT + API + Kafka + decision dataflow, cart->inventory->cart saga);"
          " the baseline is a bare SQL transaction loop on the same Postgres, no HTTP, no cart.")
    print(table(["side", "ok", "refused", "other", "elapsed s", "reserv/s", "p50 ms", "p99 ms", "max ms"], rows))
    print("  ok/refused/other: reservations made / refused for lack of stock / anything else (ours: not 201/409;"
          " baseline: gave up after retries)")
    print("  latency: successful reservations only, from first send to answer (baseline: including retries)")
    if skipped:
        print(f"  baseline skipped: {skipped}")
    elif b_rate:
        print(f"  ratio ours/baseline reservations/s: end to end {o_rate / b_rate:.2f}x, "
              f"decision core {core_rate / b_rate:.2f}x")
    print()
    st = ours["stock"]
    over = max(0, st["reservedQuantity"] - st["totalQuantity"])
    every = summary_ms(ours["all_lat"])
    print(f"(a) ours: status counts {dict(sorted(codes.items(), key=str))}; all-request latency p50 "
          f"{every['p50']:.1f} ms, p99 {every['p99']:.1f} ms (the API answers 202 after {command_wait:.0f} s)")
    print(f"    stock view: total {st['totalQuantity']}, reserved {st['reservedQuantity']}, "
          f"available {st['availableQuantity']}, version {st['version']}")
    print(f"    oversell = max(0, reserved - total) = {over};  successes == reserved: "
          f"{ours['successes'] == st['reservedQuantity']} ({ours['successes']} vs {st['reservedQuantity']});  "
          f"sum of buyers' cart quantities = {ours['cart_units']}")
    if ours["errors"]:
        print("    other answers: " + "; ".join(f"{k} x{v}" for k, v in ours["errors"].most_common()))
        for k, v in ours["samples"].items():
            print(f"      e.g. {k}: {v}")
    print(f"    records: {dict(ours['record_counts'])}; dead.letters: {ours['dead_letters']}")
    print("    where the time of a successful add goes (Kafka producer timestamps, ms resolution):")
    print("\n".join("      " + line for line in table(["span", "n", "p50", "p99", "mean"], ours["hops"]).splitlines()))
    consistent = over == 0 and ours["successes"] == st["reservedQuantity"] == ours["cart_units"]
    if not skipped:
        b = base["stock"]
        b_over = max(0, b["reservedQuantity"] - b["totalQuantity"])
        print(f"(b) baseline: {dict(t)}; retries {b_retries} ({b_retries / max(1, base['successes']):.2f} per "
              f"success); gave_up = still failing after {args.retries} retries while stock was left")
        print(f"    row: total {b['totalQuantity']}, reserved {b['reservedQuantity']}, available "
              f"{b['availableQuantity']}, version {b['version']}; oversell = {b_over}; successes == reserved: "
              f"{base['successes'] == b['reservedQuantity']}")
        consistent = consistent and b_over == 0 and base["successes"] == b["reservedQuantity"]
    print("CPU seconds during (a), per process (incl. children): "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(ours["cpu"].items(), key=lambda kv: -kv[1]) if v >= 0.05))
    print(f"1-min load average: {load_before:.1f} before, {load_after:.1f} after")
    if trouble:
        print("\nlog lines that look like trouble (stack logs, after (a)):")
        print("\n".join(trouble))
    return 0 if consistent and o_other == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
