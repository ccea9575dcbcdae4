"""A seeded market of sellers and buyers, each a thread doing one request at a time through the HTTP API.

Sellers list products and set their stock; buyers add, change and remove cart items, check out, and
pay (card confirmed at localstripe, then the `payment_intent.succeeded` webhook delivered by us, the way
Stripe redelivers: until it is answered 2xx, sometimes twice under one event id, sometimes again under
another), or are declined (`payment_intent.payment_failed`), or walk away so the short TTLs expire
their holds. Every request and its final answer is kept as a `Call` for the audit.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field

from buyit.identity import mint
from tests.faults.client import Call, Caller
from tests.payments import intent_of, pay, signed_event

WEBHOOK = "/api/payments/webhooks/stripe"


@dataclass
class Market:
    """What the actors share: the products listed so far, and every call made."""

    calls: list[Call] = field(default_factory=list)
    products: list[tuple[str, str]] = field(default_factory=list)  # (product id, currency)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: Call) -> Call:
        with self.lock:
            self.calls.append(call)
        return call

    def listed(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.products)


class Workload:
    """`sellers` + `buyers` threads over `stack`, choices drawn from `seed`, until `stop` is set."""

    def __init__(self, stack, seed: int, sellers: int = 2, buyers: int = 6, think_s: tuple[float, float] = (0.05, 0.4)):
        self.stack, self.seed, self.think_s = stack, seed, think_s
        self.market, self.stop = Market(), threading.Event()
        self.url = f"http://127.0.0.1:{stack.settings.buyit_api_port}"
        self.actors = ([("SELLER", f"s{seed}-{i}") for i in range(sellers)]
                       + [("BUYER", f"b{seed}-{i}") for i in range(buyers)])
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        for role, user_id in self.actors:
            target = self._seller if role == "SELLER" else self._buyer
            thread = threading.Thread(target=self._run, args=(target, user_id, role), name=user_id, daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self, timeout: float = 200) -> None:
        """Stop starting requests; let each actor finish the one in flight (it retries to its deadline)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, f"actors still busy: {stuck}"

    def _run(self, target, user_id: str, role: str) -> None:
        rng = random.Random(f"{self.seed}/{user_id}")
        caller = Caller(self.url, user_id, mint(self.stack.settings, user_id, role))
        try:
            while not self.stop.is_set():
                target(caller, rng)
                self.stop.wait(rng.uniform(*self.think_s))
        except Exception as err:  # a harness bug must fail the test, not vanish with the thread
            self.errors.append(f"{user_id}: {type(err).__name__}: {err}")
            raise
        finally:
            caller.close()

    # --- sellers ---

    def _seller(self, caller: Caller, rng: random.Random) -> None:
        mine = [p for p in self.market.listed() if p[0] in getattr(caller, "owned", ())]
        if len(mine) < 3 or rng.random() < 0.1:
            currency = "EUR" if rng.random() < 0.2 else "USD"
            sku = f"SKU-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
            c = self.market.record(caller.call("product", "POST", "/api/catalog/products", json={
                "sku": sku, "name": f"Thing {sku}", "priceCents": rng.randint(99, 4999), "currency": currency,
                "status": "ACTIVE"}, sku=sku))
            if c.ok:
                caller.owned = (*getattr(caller, "owned", ()), c.body["productId"])
                self._set_stock(caller, rng, c.body["productId"], currency)
            return
        pid, currency = rng.choice(mine)
        self._set_stock(caller, rng, pid, currency)

    def _set_stock(self, caller: Caller, rng: random.Random, pid: str, currency: str) -> None:
        total = rng.randint(0, 12)
        c = self.market.record(caller.call("stock", "PUT", "/api/inventory/stock",
                                           json={"productId": pid, "totalQuantity": total}, productId=pid))
        if c.status == 404:  # the stock is made from the product's event: not there yet, ask again later
            return
        if c.ok:
            with self.market.lock:
                if (pid, currency) not in self.market.products:
                    self.market.products.append((pid, currency))

    # --- buyers ---

    def _buyer(self, caller: Caller, rng: random.Random) -> None:
        products = self.market.listed()
        if not products:
            return
        items = getattr(caller, "items", [])
        roll = rng.random()
        if not items or roll < 0.4:
            pid, _ = rng.choice(products)
            c = self.market.record(caller.call("add", "POST", "/api/cart/items",
                                               json={"productId": pid, "quantity": rng.randint(1, 3)}, productId=pid))
        elif roll < 0.55:
            item = rng.choice(items)
            c = self.market.record(caller.call("change", "PUT", f"/api/cart/items/{item['itemId']}",
                                               json={"quantity": rng.randint(1, 3)}, itemId=item["itemId"]))
        elif roll < 0.65:
            item = rng.choice(items)
            c = self.market.record(caller.call("remove", "DELETE", f"/api/cart/items/{item['itemId']}",
                                               itemId=item["itemId"]))
        else:
            self._checkout(caller, rng)
            caller.items = []
            return
        if c.ok:
            caller.items = c.body.get("items", [])
        elif c.status == 404:  # the cart (or item) expired meanwhile: start afresh
            caller.items = []

    def _checkout(self, caller: Caller, rng: random.Random) -> None:
        c = self.market.record(caller.call("checkout", "POST", "/api/cart/checkout", redo_on_202=True))
        if not c.ok:
            return
        fate = rng.random()
        if fate < 0.6:
            try:
                pay(self.stack, c.body["clientSecret"])
            except Exception:  # noqa: BLE001 - the order was cancelled meanwhile; Stripe refuses: still deliver
                pass
            self._webhook(caller, rng, "capture", "payment_intent.succeeded", c.body)
        elif fate < 0.8:
            self._webhook(caller, rng, "decline", "payment_intent.payment_failed", c.body)
        # else: the buyer walks away; the hold expires and the order is cancelled

    def _webhook(self, caller: Caller, rng: random.Random, kind: str, stripe_kind: str, answer: dict) -> None:
        """Deliver a Stripe event until 2xx; sometimes the same event again, sometimes a second event."""
        intent_id = intent_of(answer["clientSecret"])
        amount = 0  # BuyIt captures what it asked for; Stripe's figure is not trusted
        event_id = f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex}"
        copies = [event_id] * (2 if rng.random() < 0.3 else 1)
        if rng.random() < 0.15:
            copies.append(f"evt_{uuid.UUID(int=rng.getrandbits(128)).hex}")
        for eid in copies:
            body, signature = signed_event(self.stack.settings.stripe_webhook_secret, stripe_kind, intent_id,
                                           answer["paymentId"], answer["orderId"], amount, event_id=eid)
            self.market.record(caller.call(kind, "POST", WEBHOOK, keyed=False, content=body, headers={
                "Stripe-Signature": signature, "Content-Type": "application/json"},
                paymentId=answer["paymentId"], orderId=answer["orderId"], eventId=eid))
