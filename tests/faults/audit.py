"""The audit after a fault-injection run: what the clients were told, held against the raw event log
(read from Kafka) and the Postgres views; nothing read from the code's own state.

Each check returns a list of problems, each a sentence naming what is wrong and where.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass

import psycopg

from tests.faults.client import Call

AGGREGATES = ("user", "catalog", "inventory", "cart", "order", "payment", "ledger")


@dataclass
class Fact:
    topic: str
    raw: bytes
    data: dict


def read_log(brokers: str, timeout: float = 60) -> list[Fact]:
    """Every record of every event topic, from the beginning to the end each had when asked (a broker
    just restarted may answer "not leader" for a while: asked again until `timeout`)."""
    from confluent_kafka import KafkaException
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _read_log(brokers)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _read_log(brokers: str) -> list[Fact]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "buyit-faults-audit",
                         "enable.auto.commit": False})
    out: list[Fact] = []
    try:
        for topic in (f"{a}.events" for a in AGGREGATES):
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            for p in parts:
                end = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
                seen, deadline = 0, time.monotonic() + 60
                while seen < end and time.monotonic() < deadline:
                    for msg in consumer.consume(500, 0.5):
                        if msg.error():
                            continue
                        out.append(Fact(topic, msg.value(), json.loads(msg.value())))
                        seen = msg.offset() + 1
                assert seen >= end, f"read {seen} of {end} records of {topic}[{p}]"
    finally:
        consumer.close()
    return out


def unique(log: list[Fact]) -> list[dict]:
    return list({f.data["eventId"]: f.data for f in log}.values())


# --- the log itself -------------------------------------------------------------------------------

def duplicates_are_identical(log: list[Fact]) -> list[str]:
    """A fact written twice (a replay after a crash) is the same bytes both times."""
    first: dict[str, bytes] = {}
    problems = []
    for f in log:
        known = first.setdefault(f.data["eventId"], f.raw)
        if known != f.raw:
            problems.append(f"event {f.data['eventId']} ({f.data['type']}) written twice with different bytes")
    return problems


def versions_are_contiguous(log: list[Fact]) -> list[str]:
    """Per aggregate, after dedupe by eventId, versions run 1..n: none missing, none taken twice."""
    by_key: dict[tuple, list[int]] = defaultdict(list)
    for e in {f.data["eventId"]: f for f in log}.values():
        by_key[(e.topic, e.data["key"])].append(e.data["version"])
    problems = []
    for (topic, key), versions in by_key.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            doubled = [v for v, n in Counter(versions).items() if n > 1]
            missing = sorted(set(range(1, max(versions) + 1)) - set(versions))
            problems.append(f"{topic} {key}: versions taken twice {doubled[:5]}, missing {missing[:5]}")
    return problems


# --- every answer held against the log ------------------------------------------------------------

def command_id(call: Call) -> str:
    """The id the API gives the command (the contract: one per caller, path and Idempotency-Key; one
    per Stripe event)."""
    if call.key is None:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"stripe-event:{call.extra['eventId']}"))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"buyit:{call.actor}:{call.path}:{call.key}"))


# kind -> {event type: how many the chain of a 2xx answer holds (an int, or a range)}
ON_SUCCESS = {
    "product": {"PRODUCT_CREATED": 1, "StockCreated": 1},
    "stock": {"StockUpdated": 1},
    "add": {"StockReserved": 1, "CartItemConfirmed": 1},
    "change": {"StockReserved": 1, "CartItemConfirmed": 1},
    "remove": {"CartItemRemoved": 1, "ReservationReleased": range(0, 2)},
    "checkout": {"CartCheckedOut": 1, "OrderPlaced": 1},
    "capture": {"PAYMENT_CAPTURED": range(0, 2)},
    "decline": {"PAYMENT_FAILED": range(0, 2)},
}
# what a refusal (4xx) must not have done
ON_REFUSAL = {"product": ("PRODUCT_CREATED",), "stock": ("StockUpdated",), "add": ("StockReserved", "CartItemConfirmed"),
              "change": ("CartItemConfirmed",), "remove": ("CartItemRemoved",)}
# (a refused checkout may have checked out and placed its order before an allocation failed: see below)


def every_request_answered(calls: list[Call]) -> dict[str, list[str]]:
    """Every request got a real answer before its deadline: retried through each outage, never a 5xx; and
    a request accepted (202) was decided in the end (apart: a chain whose last step decides nothing
    never answers, see tests/faults/test_crashes.py)."""
    def line(c: Call) -> str:
        return f"{c.kind} by {c.actor} (key {c.key}): answered {c.status or 'nothing'} after {c.attempts} tries, " \
               f"saw {c.seen[-5:]}"
    unanswered = [c for c in calls if not c.status or c.status >= 500]
    pending = [c for c in unanswered if not c.status and c.seen and c.seen[-1] == 202]
    return {"every request answered": [line(c) for c in unanswered if c not in pending],
            "every accepted request answered": [line(c) for c in pending]}


def answers_match_the_log(calls: list[Call], log: list[Fact]) -> list[str]:
    """Every 2xx applied exactly once (its chain of events holds each expected fact once), every refusal
    applied nothing, every request answered."""
    chains: dict[str, Counter] = defaultdict(Counter)
    placed: dict[str, list[str]] = defaultdict(list)  # chain -> orders placed in it
    reserved: dict[str, list[str]] = defaultdict(list)  # chain -> reservations it made
    cancelled, given_back = set(), set()
    for e in unique(log):
        chains[e["correlationId"]][e["type"]] += 1
        if e["type"] == "OrderPlaced":
            placed[e["correlationId"]].append(e["payload"]["orderId"])
        elif e["type"] == "OrderCancelled":
            cancelled.add(e["payload"]["orderId"])
        elif e["type"] == "StockReserved":
            reserved[e["correlationId"]].append(e["payload"]["reservationId"])
        elif e["type"] in ("ReservationReleased", "ReservationExpired"):
            given_back.add(e["payload"]["reservationId"])
    problems = []
    for call in calls:
        chain = chains.get(command_id(call), Counter())
        where = f"{call.kind} by {call.actor} (key {call.key}, answered {call.status} after {call.attempts} tries)"
        if not call.status or call.status >= 500:
            continue  # see `every_request_answered`
        if call.ok:
            for kind, wanted in ON_SUCCESS[call.kind].items():
                n = chain[kind]
                if (n not in wanted) if isinstance(wanted, range) else n != wanted:
                    problems.append(f"{where}: {n} {kind} in its chain, wanted {wanted}")
        else:
            for kind in ON_REFUSAL.get(call.kind, ()):
                # units reserved for a cart that moved on meanwhile (409 cart_changed) go back: refused, and
                # applied nothing in the end, if the reservation was released or expired
                kept = kind != "StockReserved" or any(r not in given_back for r in reserved[command_id(call)])
                if chain[kind] and kept:
                    problems.append(f"{where}: refused, yet {chain[kind]} {kind} in its chain")
            # all or nothing: a refused checkout may have placed its order, but only to cancel it
            for order_id in placed.get(command_id(call), ()) if call.kind == "checkout" else ():
                if order_id not in cancelled:
                    problems.append(f"{where}: refused, yet its order {order_id} stands")
    return problems


def payments_settled_once(calls: list[Call], log: list[Fact]) -> list[str]:
    """A payment whose success was delivered (2xx) is captured exactly once; each capture is booked once
    (one BUYER_EXTERNAL debit), and each confirmed order's sale once (one posting crediting sellers)."""
    events = unique(log)
    captured = Counter(e["payload"]["paymentId"] for e in events if e["type"] == "PAYMENT_CAPTURED")
    problems = [f"payment {p} captured {n} times" for p, n in captured.items() if n > 1]
    for p in {c.extra["paymentId"] for c in calls if c.kind == "capture" and c.ok}:
        if captured[p] != 1:
            problems.append(f"payment {p}: success delivered, captured {captured[p]} times")
    booked, sales = Counter(), Counter()
    for e in events:
        if e["type"] == "LedgerTransactionPosted":
            entries = e["payload"]["entries"]
            if any(x["accountId"] == "BUYER_EXTERNAL" and x["direction"] == "DEBIT" for x in entries):
                booked[e["payload"]["paymentId"]] += 1
            if any(x["accountId"].startswith("SELLER_PAYABLE_") and x["direction"] == "CREDIT" for x in entries):
                sales[e["payload"]["orderId"]] += 1
    for p in set(captured) | set(booked):
        if booked[p] != captured[p]:
            problems.append(f"payment {p}: captured {captured[p]} times, booked {booked[p]} times")
    confirmed = {e["payload"]["orderId"] for e in events if e["type"] == "OrderConfirmed"}
    for o in confirmed | set(sales):
        if sales[o] != (o in confirmed):
            problems.append(f"order {o}: confirmed {o in confirmed}, {sales[o]} sale postings")
    return problems


# --- money and stock, folded from the log and read from the views ---------------------------------

def ledger_balances(log: list[Fact], database_url: str) -> list[str]:
    """Every transaction balanced, and the books per currency sum to zero, in the log and in the views."""
    problems, net = [], Counter()
    for e in unique(log):
        if e["type"] != "LedgerTransactionPosted":
            continue
        p = e["payload"]
        signed = [x["amountCents"] * (1 if x["direction"] == "CREDIT" else -1) for x in p["entries"]]
        if sum(signed) or any(x["amountCents"] < 0 for x in p["entries"]):
            problems.append(f"transaction {p['transactionId']} unbalanced: {p['entries']}")
        net[p["currency"]] += sum(signed)
    problems += [f"the log's books in {c} are off by {n}" for c, n in net.items() if n]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT currency, sum(CASE direction WHEN 'CREDIT' THEN amount_cents "
                            "ELSE -amount_cents END) FROM ledger_entries GROUP BY currency").fetchall()
    problems += [f"the views' books in {c} are off by {n}" for c, n in rows if n]
    return problems


BUCKETS = ("total", "available", "reserved", "allocated", "sold")


def fold_stock(log: list[Fact]) -> tuple[dict[str, dict], list[str]]:
    """Each product's buckets from its inventory events alone: units held per reservation id, soft or
    hard, and the total and sold count; checked at every step (never negative, and `available` as the
    event states it)."""
    by_product: dict[str, list[dict]] = defaultdict(list)
    for f in {f.data["eventId"]: f for f in log if f.topic == "inventory.events"}.values():
        by_product[f.data["key"]].append(f.data)
    folded, problems = {}, []
    for pid, events in by_product.items():
        total = sold = 0
        held: dict[str, tuple[str, int]] = {}  # reservation id -> (SOFT | HARD, units)
        for e in sorted(events, key=lambda e: e["version"]):
            p, t = e["payload"], e["type"]
            if t == "StockUpdated":
                total = p["totalQuantity"]
            elif t == "StockReserved":
                held[p["reservationId"]] = ("SOFT", p["quantity"])
            elif t in ("ReservationReleased", "ReservationExpired"):
                held.pop(p["reservationId"], None)
            elif t == "StockAllocated":
                held[p["reservationId"]] = ("HARD", p["quantity"])
            elif t == "ReservationFulfilled":
                held.pop(p["reservationId"], None)
                total, sold = total - p["quantity"], sold + p["quantity"]
            reserved = sum(q for k, q in held.values() if k == "SOFT")
            allocated = sum(q for k, q in held.values() if k == "HARD")
            levels = dict(total=total, available=total - reserved - allocated, reserved=reserved,
                          allocated=allocated, sold=sold)
            if any(v < 0 for v in levels.values()):
                problems.append(f"stock {pid} negative after {t} v{e['version']}: {levels}")
            stated = p.get("available", p.get("levels", {}).get("available"))
            if t != "LowStockAlert" and stated is not None and "Refused" not in t and stated != levels["available"]:
                problems.append(f"stock {pid}: {t} v{e['version']} says {stated} available, the fold {levels}")
        folded[pid] = {**levels, "version": max(e["version"] for e in events)}
    return folded, problems


def stock_views(database_url: str) -> dict[str, dict]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT product_id, total_quantity, available_quantity, reserved_quantity, "
                            "allocated_quantity, sold_quantity, version FROM stock").fetchall()
    return {r[0]: dict(zip((*BUCKETS, "version"), r[1:])) for r in rows}


def stock_adds_up(log: list[Fact], database_url: str) -> list[str]:
    """The buckets add up and are never negative in the fold of the log, and the views say the same."""
    folded, problems = fold_stock(log)
    views = stock_views(database_url)
    for pid, levels in folded.items():
        row = views.get(pid)
        if row is None:
            problems.append(f"stock {pid}: in the log, not in the views")
        elif row != levels:
            problems.append(f"stock {pid}: views {row}, the log {levels}")
    for pid, row in views.items():
        if row["available"] + row["reserved"] + row["allocated"] != row["total"] or min(row.values()) < 0:
            problems.append(f"stock {pid}: the view's buckets do not add up: {row}")
    return problems


# --- the views against a rebuild -------------------------------------------------------------------

# Views known to depend on the order the projection reads its topics in (open; see tests/faults/test_crashes.py):
# the per-minute windows (their on-time/late split after a crash of the projection).
ORDER_DEPENDENT = ("sales_minutes", "cart_funnel_minutes")


def views_equal_a_rebuild(stack) -> dict[str, list[str]]:
    """Replay every event topic into a fresh schema (`buyit replay --schema`) and compare it with the live
    views (a window minute's parts summed), the order-dependent ones apart."""
    from buyit import replay
    from tests.test_replay import views
    settings = stack.settings.model_copy(update={"database_url": stack.env["DATABASE_URL"],
                                                 "redis_url": stack.env["REDIS_URL"],
                                                 "kafka_bootstrap_servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    url, schema = stack.env["DATABASE_URL"], f"faults_{uuid.uuid4().hex[:8]}"
    replay.run(settings, schema, progress=False)
    rebuilt, live = views(url, schema), views(url, "public")
    problems: dict[str, list[str]] = {"views equal a rebuild": [], "order-dependent views equal a rebuild": []}
    for table in rebuilt:
        if rebuilt[table] != live[table]:
            only_live = [r for r in live[table] if r not in rebuilt[table]]
            only_rebuilt = [r for r in rebuilt[table] if r not in live[table]]
            check = "order-dependent views equal a rebuild" if table in ORDER_DEPENDENT else "views equal a rebuild"
            problems[check].append(f"{table}: live views differ from the rebuild; only live {only_live[:3]}, "
                                   f"only rebuilt {only_rebuilt[:3]}")
    return problems


def everything(stack, calls: list[Call]) -> dict[str, list[str]]:
    """Every check, by name (an empty list: it held)."""
    log = read_log(stack.env["KAFKA_BOOTSTRAP_SERVERS"])
    url = stack.env["DATABASE_URL"]
    checks = {"every request answered": lambda: every_request_answered(calls),
              "identical duplicates": lambda: duplicates_are_identical(log),
              "contiguous versions": lambda: versions_are_contiguous(log),
              "2xx applied once": lambda: answers_match_the_log(calls, log),
              "payments settled once": lambda: payments_settled_once(calls, log),
              "ledger balanced": lambda: ledger_balances(log, url),
              "stock adds up": lambda: stock_adds_up(log, url),
              "views equal a rebuild": lambda: views_equal_a_rebuild(stack)}
    out = {}
    for name, check in checks.items():
        try:
            found = check()
        except Exception as err:  # one check failing to run must not hide the others' findings
            found = [f"the check itself failed: {type(err).__name__}: {err}"]
        out.update(found if isinstance(found, dict) else {name: found})
    return out
