"""Hot SKU: ours against the plain Postgres service a competent user would write, same load, one run.

    python -m bench.hot_sku [--buyers 64] [--duration 15] [--stock 10000000] [--warmup 15]
                            [--peer-pool 4] [--core-commands 20000] [--keep]

One SKU with `--stock` units (enough that it never sells out) and `--buyers` buyers, each with its
own RS256 token; every buyer is a coroutine on ONE aiohttp session (one connector, a connection
per buyer) looping POST /api/cart/items {"productId": pid, "quantity": 1} for `--warmup` seconds
(not counted) and then `--duration` seconds (counted: the answers that arrive inside that window).
The same load generator and the same tokens drive every side, on this machine, in this run, one
side at a time:

(b) the plain peer (`bench/peer_service.py`), measured first: FastAPI, PyJWT, a psycopg async pool,
    one transaction per request (a guarded UPDATE ... RETURNING, then an upsert of the cart line),
    one uvicorn worker, its tables in their own database on the Postgres the private stack started.
    Measured twice: `UPDATE ... WHERE available >= q` (the peer) and `SELECT ... FOR UPDATE` then
    UPDATE (a reference row). The stack's API, Kafka and dataflows are up but idle meanwhile.
(a) ours, then: POST /api/cart/items on the private stack's API (durable Kafka on disk); each
    request goes HTTP -> API -> Kafka -> decision dataflow (cart, inventory, cart) -> result.
(c) our decision core alone, last: ReserveStock commands for one SKU produced straight to
    `inventory.commands`, timed from the first produce until every one is decided on
    `inventory.events` (after a warm-up batch), as decisions per second.

Afterwards every side is checked against its own store: units reserved == 201 answers (warm-up,
window and drain included) == the buyers' cart lines, and available never below zero (ours: every
StockReserved on `inventory.events` and the settled stock view; the peer: its tables, whose CHECK
constraint forbids it). CPU seconds per process are those spent inside the counted window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
from psycopg.conninfo import make_conninfo

from bench import peer_service
from bench._common import (api_url, cpu_delta, cpu_seconds, create_product, log_lines, private_stack, summary_ms,
                           table, token, tree_cpu_seconds, wait_until)
from bench.flash_sale import Tally, read_records
from buyit.identity import jwks
from buyit.processes import Supervisor, free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parent.parent
PEER_DB = "bench_peer"
PEER_PRODUCT = "peer-hot-sku"
MACHINE = "the whole machine"


# --- the load: the same for every side ---

async def _drive(base_url: str, pid: str, tokens: list[str], warmup: float, duration: float, mark) -> dict:
    """Every buyer loops POST /api/cart/items on one shared session; answers are sorted by arrival into
    warm-up, the counted window and the drain after it. `mark("start")`, `mark("end")` run at the window's edges."""
    import aiohttp
    tallies = {"warm": Tally(), "window": Tally(), "drain": Tally()}
    connector = aiohttp.TCPConnector(limit=len(tokens) + 4)
    async with aiohttp.ClientSession(base_url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:
        opened = time.perf_counter()
        start, deadline = opened + warmup, opened + warmup + duration

        def tally(at: float) -> Tally:
            return tallies["warm" if at < start else "window" if at <= deadline else "drain"]

        async def buyer(tok: str):
            headers = {"Authorization": f"Bearer {tok}"}
            while (t0 := time.perf_counter()) < deadline:
                try:
                    async with http.post("/api/cart/items", json={"productId": pid, "quantity": 1},
                                         headers=headers) as r:
                        status, text = r.status, await r.text()
                except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                    tally(time.perf_counter()).failed(err)
                    continue
                t1 = time.perf_counter()
                if tally(t1).answered(status, text, t1 - t0):
                    return  # sold out: the stock was too small for this run

        async def edges():
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            mark("start")
            await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
            mark("end")

        await asyncio.gather(edges(), *(buyer(t) for t in tokens))
    return {name: t.result(duration) for name, t in tallies.items()}


def load(base_url: str, pid: str, tokens: list[str], warmup: float, duration: float, cpu_now) -> dict:
    """Run the load; the window's counts and latencies, every 201 of the run, CPU seconds in the window."""
    cpu: dict = {}

    def mark(edge: str):
        cpu[edge] = {**cpu_now(), MACHINE: machine_busy()}
    out = asyncio.run(_drive(base_url, pid, tokens, warmup, duration, mark))
    window = out["window"]
    lat = summary_ms(window["ok_lat"])
    codes = window["codes"]
    return {"ok": codes[201], "other": sum(v for k, v in codes.items() if k != 201), "codes": codes,
            "rate": codes[201] / duration, "p50": lat["p50"], "p99": lat["p99"], "max": lat["max"],
            "created": sum(part["codes"][201] for part in out.values()),
            "errors": sum((part["errors"] for part in out.values()), Counter()),
            "samples": {k: v for part in out.values() for k, v in part["samples"].items()},
            "cpu": cpu_delta(cpu["start"], cpu["end"]), "elapsed": duration}


def machine_busy() -> float:
    """CPU seconds all processes on the machine have spent so far (every CPU; idle, iowait, steal excluded)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))


# --- (b) the plain peer ---

def peer_database(stack) -> str:
    """A database of the peer's own on the stack's Postgres (made afresh); its URL."""
    url = stack.env["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PEER_DB}")
        conn.execute(f"CREATE DATABASE {PEER_DB}")
    return make_conninfo(url, dbname=PEER_DB)


def seed_peer(url: str, stock: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS cart_items, inventory")
        conn.execute(peer_service.SCHEMA)
        conn.execute("INSERT INTO inventory (product_id, total, available, reserved) VALUES (%s, %s, %s, 0)",
                     (PEER_PRODUCT, stock, stock))


def peer_store(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        total, available, reserved = conn.execute(
            "SELECT total, available, reserved FROM inventory WHERE product_id = %s", (PEER_PRODUCT,)).fetchone()
        lines, carts = conn.execute("SELECT coalesce(sum(quantity), 0), count(*) FROM cart_items "
                                    "WHERE product_id = %s", (PEER_PRODUCT,)).fetchone()
    return {"total": total, "available": available, "reserved": reserved, "cart_units": int(lines),
            "carts": carts, "lowest": None, "lowest_how": "CHECK (available >= 0)"}


@contextlib.contextmanager
def peer_process(stack, url: str, locking: str, pool_size: int):
    """The peer under one uvicorn worker on a free port; stopped (by its process group) on exit."""
    s = stack.settings
    port = free_port()
    env = {"PEER_DATABASE_URL": url, "PEER_JWKS": json.dumps(jwks(s)), "PEER_JWT_ISSUER": s.jwt_issuer,
           "PEER_JWT_AUDIENCE": s.jwt_audience, "PEER_USER_ID_CLAIM": s.jwt_user_id_claim,
           "PEER_ROLE_CLAIM": s.jwt_role_claim, "PEER_POOL_SIZE": str(pool_size), "PEER_LOCKING": locking}
    supervisor = Supervisor(stack.data / "logs")
    child = supervisor.start(f"peer-{locking}", [
        sys.executable, "-m", "uvicorn", "bench.peer_service:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"], env, cwd=ROOT)
    try:
        def healthy() -> bool:
            supervisor.check_alive()
            return port_open(port) and httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        wait_for(healthy, 30, f"the peer ({locking}) to answer")
        yield f"http://127.0.0.1:{port}", child.process.pid
    finally:
        supervisor.stop()


def run_peer(stack, url: str, tokens: list[str], locking: str, args) -> dict:
    seed_peer(url, args.stock)
    with peer_process(stack, url, locking, args.peer_pool) as (base_url, pid):
        def cpu_now():
            return {**cpu_seconds(stack), "peer (uvicorn)": tree_cpu_seconds(pid)}
        out = load(base_url, PEER_PRODUCT, tokens, args.warmup, args.duration, cpu_now)
    out["store"] = peer_store(url)
    return out


# --- (a) ours ---

def run_ours(stack, seller: httpx.Client, people: list[tuple[str, str]], args) -> dict:
    pid = create_product(seller, f"HOT-{uuid.uuid4().hex[:6]}", args.stock)
    out = load(api_url(stack), pid, [t for _, t in people], args.warmup, args.duration, lambda: cpu_seconds(stack))
    out["store"] = settled_stock(seller, pid)

    def cart_units(tok: str) -> int:
        r = httpx.get(f"{api_url(stack)}/api/cart", headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        return sum(i["quantity"] for i in r.json()["items"] if i["productId"] == pid)
    out["store"]["cart_units"] = sum(cart_units(t) for _, t in people)
    out["store"].update(lowest_available(stack, pid))
    return out


def settled_stock(seller: httpx.Client, pid: str) -> dict:
    """The stock view once its version stops moving (the read side is eventually consistent)."""
    def settled():
        first = seller.get(f"/api/inventory/stock/{pid}").json()
        time.sleep(1.0)
        second = seller.get(f"/api/inventory/stock/{pid}").json()
        return second if first["version"] == second["version"] else None
    st = wait_until(settled, 60, "the stock view to settle")
    return {"total": st["totalQuantity"], "available": st["availableQuantity"], "reserved": st["reservedQuantity"],
            "version": st["version"]}


def lowest_available(stack, pid: str) -> dict:
    """The lowest `available` any StockReserved for `pid` on `inventory.events` carried."""
    seen = [env["payload"]["available"] for _, env in read_records(stack.env["KAFKA_BOOTSTRAP_SERVERS"],
                                                                   "inventory.events")
            if env.get("type") == "StockReserved" and env.get("payload", {}).get("productId") == pid]
    return {"lowest": min(seen) if seen else None, "lowest_how": f"{len(seen)} StockReserved"}


# --- (c) our decision core alone ---

def run_core(stack, seller: httpx.Client, args) -> dict:
    """ReserveStock for one SKU straight to `inventory.commands` (as the cart step sends it): a warm-up
    batch, then `--core-commands` timed from the first produce to the last decision on `inventory.events`."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from buyit.envelope import command_envelope
    from state.inventory import ReserveStock
    pid = create_product(seller, f"CORE-{uuid.uuid4().hex[:6]}", args.stock)
    brokers = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    parts = consumer.list_topics("inventory.events", timeout=10).topics["inventory.events"].partitions
    consumer.assign([TopicPartition("inventory.events", p, consumer.get_watermark_offsets(
        TopicPartition("inventory.events", p), timeout=10)[1]) for p in parts])
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 2, "acks": "all"})
    outcomes: Counter = Counter()

    def batch(n: int) -> float:
        wanted = sum(outcomes.values()) + n
        now = datetime.now(UTC)
        started = time.perf_counter()
        for i in range(n):
            buyer = f"core-buyer-{i % args.buyers}"
            command = ReserveStock(command_id=str(uuid.uuid4()), now=now, product_id=pid,
                                   reservation_id=f"r-{pid}-{buyer}", cart_id=f"cart-{buyer}", buyer_id=buyer,
                                   quantity=1, mode="add", expires_at=now + timedelta(minutes=15))
            producer.produce("inventory.commands", command_envelope(command, pid).encode(), pid.encode())
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + 120
        while sum(outcomes.values()) < wanted and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.05):
                if msg.error() is None and msg.key() == pid.encode():
                    kind = json.loads(msg.value())["type"]
                    if kind in ("StockReserved", "ReservationRefused"):
                        outcomes[kind] += 1
        return time.perf_counter() - started

    try:
        batch(max(1, args.core_commands // 10))  # warm-up
        warm = Counter(outcomes)
        cpu0 = {**cpu_seconds(stack), MACHINE: machine_busy()}
        elapsed = batch(args.core_commands)
        cpu = cpu_delta(cpu0, {**cpu_seconds(stack), MACHINE: machine_busy()})
    finally:
        consumer.close()
    timed = outcomes - warm
    undecided = args.core_commands - sum(timed.values())
    store = settled_stock(seller, pid)
    store["cart_units"] = None  # no carts: commands went straight to the inventory decider
    store.update(lowest_available(stack, pid))
    return {"ok": timed["StockReserved"], "other": timed["ReservationRefused"] + undecided,
            "rate": sum(timed.values()) / elapsed, "elapsed": elapsed, "created": outcomes["StockReserved"],
            "store": store, "cpu": cpu}


# --- what each side promises about a 201 ---

def durability(stack) -> dict:
    """The settings that decide what an acknowledged request survives, read from the running services."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
    admin = AdminClient({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    broker_id = str(next(iter(admin.list_topics(timeout=10).brokers)))
    wanted = ("log.flush.interval.messages", "log.flush.interval.ms", "min.insync.replicas",
              "default.replication.factor")
    kafka = {}
    for resource, future in admin.describe_configs([ConfigResource(ResourceType.BROKER, broker_id)]).items():
        entries = future.result(10)
        kafka = {k: entries[k].value for k in wanted if k in entries}
    topics = [t for t in admin.list_topics(timeout=10).topics if not t.startswith("__")]
    overrides = []  # a topic may set its own flush.messages / flush.ms
    for resource, future in admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics]).items():
        entries = future.result(10)
        overrides += [f"{resource.name} {name}={entries[name].value}" for name in ("flush.messages", "flush.ms")
                      if name in entries and not entries[name].is_default]
    kafka["topic overrides"] = ", ".join(overrides) or "none"
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        pg = {name: conn.execute(f"SHOW {name}").fetchone()[0]
              for name in ("fsync", "synchronous_commit", "wal_sync_method", "commit_delay")}
    return {"kafka": kafka, "postgres": pg, "fsync_ms": fsync_latency_ms(stack.data)}


def fsync_latency_ms(folder: Path, n: int = 100) -> float:
    """The median time to rewrite 8 KiB in place and fdatasync it (as Postgres flushes WAL), in the stack's
    data directory: the disk both sides write to."""
    path = folder / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * 8192)
        os.fsync(fd)
        for _ in range(n):
            t0 = time.perf_counter()
            os.pwrite(fd, b"\1" * 8192, 0)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return summary_ms(times)["p50"]


# --- report ---

def check(side: dict) -> tuple[bool, str]:
    """Reserved units == 201 answers (== cart lines where there are carts), available never below zero."""
    st = side["store"]
    low = st["lowest"]
    ok = (st["reserved"] == side["created"] and (st["cart_units"] is None or st["cart_units"] == st["reserved"])
          and st["available"] >= 0 and (low is None or low >= 0) and st["available"] + st["reserved"] == st["total"])
    carts = "" if st["cart_units"] is None else f", carts {st['cart_units']}"
    low_text = st["lowest_how"] if low is None else f"lowest {low:,} in {st['lowest_how']}"
    return ok, (f"{'ok' if ok else 'FAILED'}: reserved {st['reserved']}, 201s {side['created']}{carts}; "
                f"available {st['available']:,}, {low_text}")


def cpu_table(sides: dict[str, dict]) -> str:
    cpus = [s["cpu"] for s in sides.values()]
    names = sorted({k for c in cpus for k in c if k != MACHINE}, key=lambda k: -max(c.get(k, 0.0) for c in cpus))
    ours = [sum(v for k, v in c.items() if k != MACHINE) for c in cpus]
    rows = [[name, *(c.get(name, float("nan")) for c in cpus)] for name in names]
    rows.append(["total of the processes above", *ours])
    rows.append(["  per request ok (per decision in (c)), ms", *(1000 * o / max(1, s["ok"])
                                                              for o, s in zip(ours, sides.values()))])
    rows.append(["other work on the machine", *(c[MACHINE] - o for c, o in zip(cpus, ours))])
    rows.append(["window seconds x CPUs", *(s["elapsed"] * (os.cpu_count() or 1) for s in sides.values())])
    return table(["CPU seconds in the counted window", *(name.split(":")[0] for name in sides)], rows)


def report(args, sides: dict[str, dict], facts: dict, load_avg: tuple[float, float]) -> bool:
    print()
    print(f"Hot SKU: {args.buyers} buyers (own tokens, one aiohttp session), one SKU with {args.stock:,} units, "
          f"POST /api/cart/items quantity 1, {args.warmup:.0f} s warm-up then {args.duration:.0f} s counted per side; "
          f"{os.cpu_count()} CPUs shared with the load generator; one side at a time, peer first.")
    rows, fine = [], True
    for name, s in sides.items():
        ok, text = check(s)
        fine = fine and ok and s["other"] == 0
        rows.append([name, s["ok"], s["other"], s["rate"], s.get("p50", float("nan")), s.get("p99", float("nan")),
                     text])
    print(table(["side", "requests ok", "other", "rate/s", "p50 ms", "p99 ms", "oversell check"], rows))
    print("  requests ok / other: 201s / any other answer or error among the answers that arrived inside the window;"
          " latency: those 201s, send to answer")
    print("  (c) counts ReserveStock decisions (StockReserved) instead of requests; its rate is decisions/s")
    print("  oversell check: units reserved in the side's own store == its 201s (warm-up and drain included) == the"
          " buyers' cart lines, available + reserved == total, available never below zero")
    for name, s in sides.items():
        if s.get("errors"):
            print(f"  {name} other answers: " + "; ".join(f"{k} x{v}" for k, v in s["errors"].most_common(5)))
            for k, v in list(s["samples"].items())[:3]:
                print(f"    e.g. {k}: {v}")

    ours, peer, core = sides[OURS], sides[PEER], sides[CORE]
    print()
    print(f"ours/peer rate: {ours['rate'] / peer['rate']:.2f}x   ours p99 vs peer p99: {ours['p99']:.1f} ms vs "
          f"{peer['p99']:.1f} ms ({ours['p99'] / peer['p99']:.2f}x)   "
          f"core/peer rate: {core['rate'] / peer['rate']:.2f}x")
    print()
    print(cpu_table(sides))
    print("  during the peer rows the stack's API, Kafka and dataflows were up but idle (their CPU is shown);"
          " postgres includes every backend, the peer's pool among them")
    print()
    k, pg = facts["kafka"], facts["postgres"]
    print("What a 201 survives:")
    print(f"  ours: Kafka producer acks=all (API and dataflows), single node (replication factor "
          f"{k.get('default.replication.factor')}, min.insync.replicas {k.get('min.insync.replicas')}); broker flush "
          f"policy = Kafka default: log.flush.interval.messages={k.get('log.flush.interval.messages')}, "
          f"log.flush.interval.ms={k.get('log.flush.interval.ms')} (i.e. unset; topic overrides: "
          f"{k['topic overrides']}), so an acknowledged record is in "
          f"the OS page cache, not fsynced per message: it survives a broker crash, not a machine crash")
    print(f"  peer: Postgres fsync={pg['fsync']}, synchronous_commit={pg['synchronous_commit']} "
          f"(wal_sync_method {pg['wal_sync_method']}, commit_delay {pg['commit_delay']}): each commit's WAL is "
          f"fsynced before the 201 (concurrent commits share a flush: group commit); it survives a machine crash")
    print(f"  this disk: rewriting 8 KiB + fdatasync takes {facts['fsync_ms']:.2f} ms (median), which bounds a "
          f"single hot row's commits to about {1000 / max(facts['fsync_ms'], 1e-3):,.0f}/s in the peer")
    print(f"1-min load average: {load_avg[0]:.1f} before, {load_avg[1]:.1f} after")
    return fine


PEER, PEER_FOR_UPDATE = "(b) peer: UPDATE ... RETURNING", "(b') peer: SELECT FOR UPDATE"
OURS, CORE = "(a) ours: POST /api/cart/items", "(c) ours: decision core"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buyers", type=int, default=64, help="concurrent buyers, each with its own token (default 64)")
    ap.add_argument("--duration", type=float, default=15.0, help="counted seconds per side (default 15)")
    # Kafka's JVM compiles its request paths (C2) once load starts: with a 2 s warm-up its compiler thread used
    # about a third of a core for the first 25 s of ours (seen with JFR), a cost a running broker has long paid.
    ap.add_argument("--warmup", type=float, default=15.0, help="uncounted seconds before each side (default 15)")
    ap.add_argument("--stock", type=int, default=10_000_000, help="units of the hot SKU (default 10,000,000)")
    ap.add_argument("--peer-pool", type=int, default=4,
                    help="the peer's Postgres pool size (default 4, psycopg_pool's own default; on 2 cores a hot "
                         "row did no better with 8, 16 or 64: more backends queue on its lock)")
    ap.add_argument("--core-commands", type=int, default=20_000,
                    help="ReserveStock commands timed in (c), after a tenth as many to warm up (default 20000)")
    ap.add_argument("--keep", action="store_true", help="keep the stack's data dir (logs) afterwards")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()[0]
    with private_stack("hot-sku", keep=args.keep) as stack:
        _, seller_token = token(stack, "SELLER")
        people = [token(stack, "BUYER") for _ in range(args.buyers)]
        tokens = [t for _, t in people]
        facts = durability(stack)
        sides: dict[str, dict] = {}
        url = peer_database(stack)
        print("measuring the peer ...", file=sys.stderr, flush=True)
        sides[PEER] = run_peer(stack, url, tokens, "update", args)
        print("measuring the peer with SELECT ... FOR UPDATE ...", file=sys.stderr, flush=True)
        sides[PEER_FOR_UPDATE] = run_peer(stack, url, tokens, "select_for_update", args)
        with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
            # nothing of the peer's left for autovacuum or a checkpoint to do during ours
            conn.execute(f"DROP DATABASE {PEER_DB} WITH (FORCE)")
            conn.execute("CHECKPOINT")
        with httpx.Client(base_url=api_url(stack), headers={"Authorization": f"Bearer {seller_token}"},
                          timeout=30) as seller:
            print("measuring ours ...", file=sys.stderr, flush=True)
            sides[OURS] = run_ours(stack, seller, people, args)
            print("measuring our decision core ...", file=sys.stderr, flush=True)
            sides[CORE] = run_core(stack, seller, args)
        trouble = log_lines(stack)
    sides = {name: sides[name] for name in (OURS, PEER, PEER_FOR_UPDATE, CORE)}
    fine = report(args, sides, facts, (load_before, os.getloadavg()[0]))
    if trouble:
        print("\nlog lines that look like trouble (stack and peer logs):")
        print("\n".join(trouble))
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())
