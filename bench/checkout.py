"""Checkouts end to end (through the Stripe webhook capture), and the ledger's posting rate alone.

    python -m bench.checkout [--buyers 16] [--duration 20] [--postings 5000]

(a) end to end: each buyer (own thread, own token) loops: add one unit to its cart, check out
    (order, hard allocation, a PaymentIntent on localstripe), post the Stripe-signed
    `payment_intent.succeeded` webhook, and poll its order until CONFIRMED. (The webhook is signed
    here rather than sent by localstripe, which waits a second before each delivery.)
(b) ledger alone: `--postings` PostSale commands produced straight to `ledger.commands`
    (two sellers each), timed until every `LedgerTransactionPosted` is on `ledger.events` and
    until every transaction is in the Postgres view. Baseline in the same run: the spec's Ledger
    Service taken literally, one Postgres transaction per payment inserting the transaction and
    its 8 entries (8 threads, own connections), on the same embedded Postgres.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from bench._common import api_url, create_product, private_stack, summary_ms, table, token
from buyit.envelope import command_envelope
from state.ledger import PostSale, sale_entries
from tests.payments import signed_event


def end_to_end(stack, buyers: int, duration: float) -> dict:
    base = api_url(stack)
    seller_id, seller_token = token(stack, "SELLER")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {seller_token}"}, timeout=30) as seller:
        products = [create_product(seller, f"CO-{i}", 1_000_000) for i in range(2)]
    latencies, failures, lock = [], [], threading.Lock()
    stop_at = time.monotonic() + duration
    secret = stack.settings.stripe_webhook_secret

    def shopper(n: int) -> None:
        _, buyer_token = token(stack, "BUYER")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {buyer_token}"}, timeout=30) as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    r = http.post("/api/cart/items", json={"productId": products[n % 2], "quantity": 1})
                    assert r.status_code == 201, r.text
                    r = http.post("/api/cart/checkout")
                    assert r.status_code == 201, r.text
                    answer = r.json()
                    intent = answer["clientSecret"].split("_secret_")[0]
                    body, sig = signed_event(secret, "payment_intent.succeeded", intent, answer["paymentId"],
                                             answer["orderId"], 1000)
                    r = http.post("/api/payments/webhooks/stripe", content=body, headers={"Stripe-Signature": sig})
                    assert r.status_code == 200, r.text
                    deadline = time.monotonic() + 30
                    while http.get(f"/api/orders/{answer['orderId']}").json().get("status") != "CONFIRMED":
                        assert time.monotonic() < deadline, "order not confirmed within 30 s"
                        time.sleep(0.01)
                    with lock:
                        latencies.append(time.perf_counter() - started)
                    # the paid cart closes a moment after the order confirms; a new add waits for that
                    while http.get("/api/cart").json().get("status") == "CHECKOUT":
                        assert time.monotonic() < deadline, "cart not closed within 30 s"
                        time.sleep(0.01)
                except AssertionError as err:
                    with lock:
                        failures.append(str(err)[:200])

    started = time.monotonic()
    with ThreadPoolExecutor(buyers) as pool:
        list(pool.map(shopper, range(buyers)))
    elapsed = time.monotonic() - started
    return {"done": len(latencies), "failed": failures, "elapsed": elapsed, "latency": summary_ms(latencies)}


def ledger_alone(stack, postings: int) -> dict:
    brokers = stack.settings_for_children().brokers
    consumer = Consumer({"bootstrap.servers": ",".join(brokers), "group.id": "bench", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})
    parts = consumer.list_topics("ledger.events", timeout=10).topics["ledger.events"].partitions
    consumer.assign([TopicPartition("ledger.events", p, consumer.get_watermark_offsets(
        TopicPartition("ledger.events", p), timeout=10)[1]) for p in parts])
    producer = Producer({"bootstrap.servers": ",".join(brokers), "linger.ms": 5})
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(postings)]
    started = time.perf_counter()
    for pid in ids:
        command = PostSale(command_id=str(uuid.uuid4()), now=now, payment_id=pid, order_id=pid, currency="USD",
                           total_cents=7667, seller_subtotals=(("s1", 6666), ("s2", 1001)), fee_bps=1000)
        producer.produce("ledger.commands", command_envelope(command, pid).encode(), pid.encode())
        producer.poll(0)
    producer.flush(30)
    seen, deadline = set(), time.monotonic() + 120
    wanted = set(ids)
    while len(seen) < postings and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.1):
            if msg.error() is None:
                event = json.loads(msg.value())
                if event["type"] == "LedgerTransactionPosted" and event["key"] in wanted:
                    seen.add(event["key"])
    decided = time.perf_counter() - started
    consumer.close()
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        while time.monotonic() < deadline:
            n = conn.execute("SELECT count(*) FROM ledger_transactions WHERE payment_id = ANY(%s)", (ids,)).fetchone()[0]
            if n >= postings:
                break
            time.sleep(0.05)
    viewed = time.perf_counter() - started
    return {"posted": len(seen), "decided_s": decided, "viewed_s": viewed}


def ledger_baseline(stack, postings: int, threads: int = 8) -> dict:
    url = stack.env["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_entries, bench_transactions")
        conn.execute("CREATE TABLE bench_transactions (id text PRIMARY KEY, payment_id text UNIQUE, order_id text)")
        conn.execute("CREATE TABLE bench_entries (transaction_id text, seq int, account_id text, direction text, "
                      "amount_cents bigint, PRIMARY KEY (transaction_id, seq))")
    entries = sale_entries(7667, (("s1", 6666), ("s2", 1001)), 1000)

    def post(chunk: list[str]) -> None:
        with psycopg.connect(url) as conn:
            for pid in chunk:
                with conn.transaction():
                    conn.execute("INSERT INTO bench_transactions VALUES (%s, %s, %s)", (pid, pid, pid))
                    conn.cursor().executemany(
                        "INSERT INTO bench_entries VALUES (%s, %s, %s, %s, %s)",
                        [(pid, i, e.account_id, e.direction, e.amount_cents) for i, e in enumerate(entries)])
    ids = [str(uuid.uuid4()) for _ in range(postings)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, [ids[i::threads] for i in range(threads)]))
    return {"elapsed": time.perf_counter() - started}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=16)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--postings", type=int, default=5000)
    args = ap.parse_args(argv)
    with private_stack("checkout") as stack:
        e2e = end_to_end(stack, args.buyers, args.duration)
        ours = ledger_alone(stack, args.postings)
        base = ledger_baseline(stack, args.postings)
    lat = e2e["latency"]
    print(f"\n(a) checkouts end to end, {args.buyers} buyers for {args.duration:.0f} s "
          "(add to cart -> checkout -> PaymentIntent -> webhook -> order CONFIRMED in the view)")
    print(table(["completed", "checkouts/s", "p50 ms", "p95 ms", "p99 ms", "failed"],
                [[e2e["done"], e2e["done"] / e2e["elapsed"], lat["p50"], lat["p95"], lat["p99"], len(e2e["failed"])]]))
    for failure in e2e["failed"][:5]:
        print("   failure:", failure)
    ours_rate = args.postings / ours["decided_s"]
    base_rate = args.postings / base["elapsed"]
    print(f"\n(b) ledger postings alone, {args.postings} payments of two sellers each (8 entries)")
    print(table(["path", "postings/s", "seconds"], [
        ["ours: command -> decided event on ledger.events", ours_rate, ours["decided_s"]],
        ["ours: ... -> transaction in the Postgres view", args.postings / ours["viewed_s"], ours["viewed_s"]],
        ["baseline: Postgres txn per payment, 8 threads", base_rate, base["elapsed"]]]))
    print(f"ratio ours (decided) / baseline: {ours_rate / base_rate:.2f}x; posted {ours['posted']}/{args.postings}")
    return 0 if not e2e["failed"] and ours["posted"] == args.postings else 1


if __name__ == "__main__":
    raise SystemExit(main())
