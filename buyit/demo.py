"""Simulated sellers and shoppers for `buyit demo`: steady, harmless traffic against a running API."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter

import httpx

from buyit.identity import mint
from buyit.settings import Settings

SELLERS, PRODUCTS_PER_SELLER, BUYERS = 3, 4, 12
CATEGORIES = ("books", "garden", "kitchen", "toys")


class Shoppers:
    """A background thread: sellers list stocked products, then buyers browse and fill carts until `stop()`."""

    def __init__(self, url: str, settings: Settings, report_every_s: float = 5.0, seed: int | None = None,
                 stripe_api_base: str | None = None):
        self.url, self.settings, self.report_every_s = url.rstrip("/"), settings, report_every_s
        self.stripe_api_base = stripe_api_base  # localstripe's: buyers pay with a test card there
        self.rng = random.Random(seed)
        self.counts: Counter = Counter()  # "2xx", "4xx", "5xx", "err" and one count per action
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="buyit-shoppers", daemon=True)
        self._tokens: dict[str, str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the thread to finish its current request and wait for it."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- plumbing ---

    def _call(self, http: httpx.Client, action: str, user: str, role: str, method: str, path: str,
              **kwargs) -> httpx.Response | None:
        """One request as `user`; counted by status class, never raising (None on a transport error)."""
        if user not in self._tokens:
            self._tokens[user] = mint(self.settings, user, role, 24 * 3600)
        self.counts[action] += 1
        try:
            r = http.request(method, path, headers={"Authorization": f"Bearer {self._tokens[user]}"}, **kwargs)
        except httpx.HTTPError:
            self.counts["err"] += 1
            return None
        self.counts[f"{r.status_code // 100}xx"] += 1
        return r

    @staticmethod
    def _json(r: httpx.Response | None, ok: tuple[int, ...] = (200, 201)) -> dict:
        """The body of a successful answer as a dict; {} for anything else."""
        try:
            body = r.json() if r is not None and r.status_code in ok else {}
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _report(self, since: Counter, seconds: float) -> None:
        d = self.counts - since
        print(f"shoppers {seconds:.0f}s: {sum(d[a] for a in ('2xx', '4xx', '5xx', 'err'))} requests "
              f"(2xx {d['2xx']}, 4xx {d['4xx']}, 5xx {d['5xx']}, errors {d['err']}) | browse {d['browse']} "
              f"add {d['add']} change {d['change']} remove {d['remove']} restock {d['restock']} "
              f"checkout {d['checkout']} paid {d['paid']} fulfil {d['fulfil']}", flush=True)

    # --- the simulation ---

    def _list_products(self, http: httpx.Client) -> dict[str, str]:
        """Each seller registers and lists ACTIVE products with stock; returns product id -> seller id."""
        owners: dict[str, str] = {}
        for s in range(SELLERS):
            seller = f"demo-seller-{s}"
            self._call(http, "register", seller, "SELLER", "POST", "/api/users/me")
            for p in range(PRODUCTS_PER_SELLER):
                category = CATEGORIES[p % len(CATEGORIES)]
                body = {"sku": f"DEMO-{p}", "name": f"{category.title()} item {s}-{p}",
                        "category": category, "priceCents": self.rng.randint(199, 9999),
                        "currency": "USD", "status": "ACTIVE"}
                r = self._call(http, "create", seller, "SELLER", "POST", "/api/catalog/products", json=body)
                if pid := self._json(r, (201, 409)).get("productId"):
                    owners[pid] = seller  # 409 sku_taken: listed by an earlier demo run
        deadline = time.monotonic() + 30
        for pid, seller in owners.items():  # the stock record follows the product asynchronously
            while not self._stopping.is_set() and time.monotonic() < deadline:
                stock = self._json(self._call(http, "poll", seller, "SELLER", "GET", f"/api/inventory/stock/{pid}"))
                if "totalQuantity" in stock:
                    self._restock(http, pid, seller, stock["totalQuantity"])
                    break
                self._stopping.wait(0.2)
        return owners

    def _restock(self, http: httpx.Client, pid: str, seller: str, current: int) -> None:
        self._call(http, "restock", seller, "SELLER", "PUT", "/api/inventory/stock",
                   json={"productId": pid, "totalQuantity": current + self.rng.randint(20, 60)})

    def _shop(self, http: httpx.Client, owners: dict[str, str]) -> None:
        """One buyer's visit: browse, maybe add an item, maybe change or remove one; now and then a restock."""
        buyer = f"demo-buyer-{self.rng.randrange(BUYERS)}"
        if buyer not in self._tokens:
            self._call(http, "register", buyer, "BUYER", "POST", "/api/users/me")
        r = self._call(http, "browse", buyer, "BUYER", "GET", "/api/catalog/products/browse",
                       params={"category": self.rng.choice(CATEGORIES)} if self.rng.random() < 0.3 else {})
        items = self._json(r).get("items") or []
        if items and self.rng.random() < 0.7:
            product = self.rng.choice(items)
            r = self._call(http, "add", buyer, "BUYER", "POST", "/api/cart/items",
                           json={"productId": product["productId"], "quantity": self.rng.randint(1, 3)})
            cart = self._json(r).get("items") or []
            if cart and self.rng.random() < 0.3:
                item = self.rng.choice(cart)["itemId"]
                if self.rng.random() < 0.5:
                    self._call(http, "change", buyer, "BUYER", "PUT", f"/api/cart/items/{item}",
                               json={"quantity": self.rng.randint(1, 4)})
                else:
                    self._call(http, "remove", buyer, "BUYER", "DELETE", f"/api/cart/items/{item}")
        if self.stripe_api_base and self.rng.random() < 0.15:
            self._checkout(http, buyer)
        if owners and self.rng.random() < 0.2:
            self._fulfil(http, self.rng.choice(sorted(set(owners.values()))))
        if owners and self.rng.random() < 0.05:
            pid, seller = self.rng.choice(list(owners.items()))
            stock = self._json(self._call(http, "poll", seller, "SELLER", "GET", f"/api/inventory/stock/{pid}"))
            if "totalQuantity" in stock:
                self._restock(http, pid, seller, stock["totalQuantity"])

    def _checkout(self, http: httpx.Client, buyer: str) -> None:
        """Check out the buyer's cart and pay with a test card on localstripe, which then calls our webhook."""
        answer = self._json(self._call(http, "checkout", buyer, "BUYER", "POST", "/api/cart/checkout"))
        if answer.get("clientSecret"):
            try:
                pay_with_test_card(self.stripe_api_base, self.settings.stripe_api_key, answer["clientSecret"])
                self.counts["paid"] += 1
            except Exception:  # localstripe hiccup: the order simply stays unpaid and expires
                self.counts["err"] += 1

    def _fulfil(self, http: httpx.Client, seller: str) -> None:
        """Move one of the seller's shipments a step on; the carrier confirms deliveries by signed webhook."""
        shipments = self._json(self._call(http, "fulfil", seller, "SELLER", "GET", "/api/shipments",
                                          params={"limit": 100})).get("items") or []
        moving = [s for s in shipments if s["status"] in ("PENDING", "PROCESSING", "SHIPPED")]
        if not moving:
            return
        shipment = self.rng.choice(moving)
        sid = shipment["shipmentId"]
        if shipment["status"] == "PENDING":
            self._call(http, "fulfil", seller, "SELLER", "PUT", f"/api/shipments/{sid}/process")
        elif shipment["status"] == "PROCESSING":
            self._call(http, "fulfil", seller, "SELLER", "PUT", f"/api/shipments/{sid}/ship",
                       json={"trackingNumber": f"1Z{self.rng.randrange(10**10):010d}", "carrier": "UPS"})
        else:
            from ingest_api.routes.shipments import carrier_signature
            body, ts = json.dumps({"shipmentId": sid, "event": "delivered"}).encode(), str(int(time.time()))
            self.counts["fulfil"] += 1
            try:
                r = http.post(f"/api/shipments/{sid}/delivered", content=body, headers={
                    "X-Carrier-Timestamp": ts,
                    "X-Carrier-Signature": carrier_signature(self.settings.carrier_webhook_secret, ts, body)})
                self.counts[f"{r.status_code // 100}xx"] += 1
            except httpx.HTTPError:
                self.counts["err"] += 1

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as http:
            try:
                owners = self._list_products(http)
                print(f"shoppers: {len(owners)} products listed by {SELLERS} sellers; {BUYERS} buyers shopping",
                      flush=True)
                since, last = self.counts.copy(), time.monotonic()
                while not self._stopping.is_set():
                    try:
                        self._shop(http, owners)
                    except Exception:  # an unexpected answer: count it and carry on
                        self.counts["err"] += 1
                    if time.monotonic() - last >= self.report_every_s:
                        self._report(since, time.monotonic() - last)
                        since, last = self.counts.copy(), time.monotonic()
                    self._stopping.wait(self.rng.uniform(0.05, 0.3))
            except Exception as err:  # a malformed answer must not kill the demo silently
                print(f"shoppers stopped after an unexpected error: {err!r}", flush=True)


def intent_of(client_secret: str) -> str:
    """The PaymentIntent a client secret belongs to (Stripe's secrets are `{intent id}_secret_{...}`)."""
    return client_secret.split("_secret_")[0]


def pay_with_test_card(api_base: str, api_key: str, client_secret: str) -> str:
    """Confirm a PaymentIntent with a test card, as Stripe.js would (localstripe only: Stripe refuses raw numbers)."""
    import stripe
    client = stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=0)
    intent_id = intent_of(client_secret)
    method = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    # localstripe confirms only an intent that already carries its payment method
    client.v1.payment_intents.update(intent_id, params={"payment_method": method.id})
    client.v1.payment_intents.confirm(intent_id)
    return intent_id
