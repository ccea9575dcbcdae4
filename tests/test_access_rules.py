"""Who may call what, and what each field accepts: the strict half of the hostile-input sweep (issue 13).

`tests/test_malformed_input.py` checks that nothing a client sends earns a 5xx; this module checks that
each answer is the *right* one. Every route the app serves has a row in `RULES` (a route without one
fails `test_every_route_has_a_rule`), naming the roles it lets through and one well-formed request
against real data. From that table:

- anonymous callers and every kind of junk token get exactly 401 on every non-public route;
- every role a route does not list gets exactly 403; a token naming no known role gets 403 too (it is
  a valid token, the caller is known, the account type is not one that may do anything: api.md's
  "403 wrong role");
- every other owner (another seller, another buyer) gets 403 or 404, while the owner itself gets through;
- every invalid typed field and query parameter gets exactly 422;
- an `Idempotency-Key` reused by another caller never replays the first caller's result.

Afterwards no dead letter may have been written while this module ran: what the API accepted, the
deciders must be able to decide.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Callable

import jwt
import pytest

from buyit.identity import _key_path, _private_key, kid
from ingest_api.commands import idempotent_command_id
from tests.conftest import Client
from tests.helpers import eventually, read_topic
from tests.payments import pay
from tests.test_identity import bad_tokens

pytestmark = pytest.mark.integration

SELLER, BUYER, ADMIN = "SELLER", "BUYER", "ADMIN"
ROLES = (SELLER, BUYER, ADMIN)
PUBLIC: frozenset = frozenset()
ANY = frozenset(ROLES)
SELLERS, BUYERS, ADMINS = frozenset({SELLER, ADMIN}), frozenset({BUYER, ADMIN}), frozenset({ADMIN})


# --- the world: two of each party, so each has someone else's things to reach for ----------------------------


def _party(stack, role: str, name: str) -> Client:
    c = Client(stack, f"rules-{name}-{uuid.uuid4().hex[:8]}", role)
    r = c.post("/api/users/me", json={"email": f"{name}@example.com"})
    assert r.status_code == 201, r.text
    return c


def _product(seller: Client, units: int, status: str = "ACTIVE") -> str:
    r = seller.post("/api/catalog/products", json={"sku": f"R-{uuid.uuid4().hex[:6]}", "name": "Rule target",
                                                   "priceCents": 1000, "currency": "USD", "status": status})
    assert r.status_code == 201, r.text
    pid = r.json()["productId"]
    eventually(lambda: seller.get(f"/api/inventory/stock/{pid}").status_code == 200, what="stock created")
    if units:
        r = seller.put("/api/inventory/stock", json={"productId": pid, "totalQuantity": units})
        assert r.status_code == 200, r.text
    return pid


class World:
    """Seller A with a paid shipment of buyer A's order; seller B and buyer B reach for them."""

    CHECKOUT_KEY = "rules-checkout"

    def __init__(self, stack):
        self.stack = stack
        self.started = datetime.now(UTC)
        self.seller, self.other_seller = _party(stack, SELLER, "seller-a"), _party(stack, SELLER, "seller-b")
        self.buyer, self.other_buyer = _party(stack, BUYER, "buyer-a"), _party(stack, BUYER, "buyer-b")
        self.admin = _party(stack, ADMIN, "admin")
        self.anonymous = Client(stack)
        self.product_id = _product(self.seller, 1000)
        self.other_product_id = _product(self.other_seller, 1000)  # a second page for every list
        self.draft_id = _product(self.seller, 0, status="DRAFT")
        eventually(lambda: self.anonymous.get(f"/api/inventory/availability/{self.product_id}").status_code == 200,
                   what="product listed")
        r = self.buyer.post("/api/cart/items", json={"productId": self.product_id, "quantity": 1})
        assert r.status_code == 201, r.text
        r = self.buyer.post("/api/cart/checkout", headers={"Idempotency-Key": self.CHECKOUT_KEY})
        assert r.status_code == 201, r.text
        self.order_id, self.payment_id = r.json()["orderId"], r.json()["paymentId"]
        self.checkout_command = idempotent_command_id(self.buyer.user_id, "/api/cart/checkout", self.CHECKOUT_KEY)
        pay(stack, r.json()["clientSecret"])
        order = eventually(lambda: (o := self.buyer.get(f"/api/orders/{self.order_id}").json())
                           .get("status") == "CONFIRMED" and o, what="order confirmed")
        self.shipment_id = order["shipments"][0]["shipmentId"]
        eventually(lambda: self.seller.get("/api/shipments", params={"orderId": self.order_id}).json()["items"],
                   what="the seller sees its paid shipment")
        self._paid_order(self.other_buyer, self.other_product_id)
        # an open cart of its own, so reaching for buyer A's item is about the item, not a closed cart
        assert self.other_buyer.post("/api/cart/items", json={"productId": self.other_product_id,
                                                              "quantity": 1}).status_code == 201
        r = self.buyer.post("/api/cart/items", json={"productId": self.product_id, "quantity": 1})
        assert r.status_code == 201, r.text
        self.item_id = r.json()["items"][0]["itemId"]
        self.payable = f"SELLER_PAYABLE_{self.seller.user_id}"
        eventually(lambda: self.seller.get(f"/api/ledger/accounts/{self.payable}").status_code == 200,
                   what="the seller's payable account")

    def _paid_order(self, buyer: Client, product_id: str) -> None:
        eventually(lambda: self.anonymous.get(f"/api/inventory/availability/{product_id}").status_code == 200,
                   what="product listed")
        assert buyer.post("/api/cart/items", json={"productId": product_id, "quantity": 1}).status_code == 201
        r = buyer.post("/api/cart/checkout")
        assert r.status_code == 201, r.text
        pay(self.stack, r.json()["clientSecret"])
        eventually(lambda: buyer.get(f"/api/orders/{r.json()['orderId']}").json().get("status") == "CONFIRMED",
                   what="the other order confirmed")

    def as_role(self, role: str) -> Client:
        """A caller of `role` who owns nothing in this world (so only its role decides)."""
        return {SELLER: self.other_seller, BUYER: self.other_buyer, ADMIN: self.admin}[role]

    def clients(self):
        return [self.seller, self.other_seller, self.buyer, self.other_buyer, self.admin, self.anonymous]


@pytest.fixture(scope="module")
def world(stack):
    w = World(stack)
    yield w
    for c in w.clients():
        c.http.close()


# --- the rules: every route, who may call it, and one well-formed request -------------------------------------


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    json: object = None
    params: dict | None = None
    files: dict | None = None
    headers: dict = field(default_factory=dict)

    def send(self, client: Client):
        return client.request(self.method, self.path, json=self.json, params=self.params, files=self.files,
                              headers=self.headers)


@dataclass(frozen=True)
class Rule:
    roles: frozenset  # PUBLIC: no token needed
    request: Callable[[World], Req]


def _get(path: str, **params) -> Callable[[World], Req]:
    """A GET of `path` with `params`, both formatted with the world as `w`."""
    return lambda w: Req("GET", path.format(w=w), params={k: v.format(w=w) for k, v in params.items()} or None)


PNG = ("x.png", base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9a"
                                 "wAAAABJRU5ErkJggg=="), "image/png")

RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): Rule(PUBLIC, _get("/openapi.json")),
    ("GET", "/docs"): Rule(PUBLIC, _get("/docs")),
    ("GET", "/docs/oauth2-redirect"): Rule(PUBLIC, _get("/docs/oauth2-redirect")),
    ("GET", "/redoc"): Rule(PUBLIC, _get("/redoc")),
    ("GET", "/health"): Rule(PUBLIC, _get("/health")),
    ("GET", "/.well-known/jwks.json"): Rule(PUBLIC, _get("/.well-known/jwks.json")),
    ("GET", "/api/commands/{command_id}"): Rule(ANY, _get("/api/commands/{w.checkout_command}")),
    ("POST", "/api/users/me"): Rule(ANY, lambda w: Req("POST", "/api/users/me", {})),
    ("GET", "/api/users/me"): Rule(ANY, _get("/api/users/me")),
    ("POST", "/api/catalog/products"): Rule(SELLERS, lambda w: Req("POST", "/api/catalog/products", {
        "sku": "RULE-NEW", "name": "n", "priceCents": 1, "currency": "USD"})),
    ("PUT", "/api/catalog/products/{product_id}"): Rule(SELLERS, lambda w: Req(
        "PUT", f"/api/catalog/products/{w.product_id}", {"name": "Renamed"})),
    ("GET", "/api/catalog/products/browse"): Rule(PUBLIC, _get("/api/catalog/products/browse")),
    ("GET", "/api/catalog/products/by-seller/{seller_id}"): Rule(
        SELLERS, _get("/api/catalog/products/by-seller/{w.seller.user_id}")),
    ("GET", "/api/catalog/products/{product_id}"): Rule(PUBLIC, _get("/api/catalog/products/{w.product_id}")),
    ("POST", "/api/catalog/images/upload"): Rule(SELLERS, lambda w: Req(
        "POST", "/api/catalog/images/upload", files={"file": PNG})),
    ("POST", "/api/catalog/images/upload-url"): Rule(SELLERS, lambda w: Req(
        "POST", "/api/catalog/images/upload-url", {"url": "http://127.0.0.1:1/x.png"})),
    ("GET", "/images/{public_id}"): Rule(PUBLIC, _get("/images/unknown.png")),
    ("GET", "/api/inventory/stock/{product_id}"): Rule(SELLERS, _get("/api/inventory/stock/{w.product_id}")),
    ("PUT", "/api/inventory/stock"): Rule(SELLERS, lambda w: Req(
        "PUT", "/api/inventory/stock", {"productId": w.product_id, "totalQuantity": 1000})),
    ("GET", "/api/inventory/availability/{product_id}"): Rule(
        PUBLIC, _get("/api/inventory/availability/{w.product_id}")),
    ("GET", "/api/inventory/stream"): Rule(SELLERS, _get("/api/inventory/stream")),
    ("GET", "/api/cart"): Rule(BUYERS, _get("/api/cart")),
    ("POST", "/api/cart/items"): Rule(BUYERS, lambda w: Req(
        "POST", "/api/cart/items", {"productId": w.product_id, "quantity": 1})),
    ("PUT", "/api/cart/items/{item_id}"): Rule(BUYERS, lambda w: Req(
        "PUT", f"/api/cart/items/{w.item_id}", {"quantity": 2})),
    ("DELETE", "/api/cart/items/{item_id}"): Rule(BUYERS, lambda w: Req("DELETE", f"/api/cart/items/{w.item_id}")),
    ("POST", "/api/cart/checkout"): Rule(BUYERS, lambda w: Req("POST", "/api/cart/checkout")),
    ("GET", "/checkout/{payment_id}"): Rule(PUBLIC, _get("/checkout/{w.payment_id}")),
    ("GET", "/api/orders"): Rule(BUYERS, _get("/api/orders")),
    ("GET", "/api/orders/{order_id}"): Rule(BUYERS, _get("/api/orders/{w.order_id}")),
    ("POST", "/api/orders/{order_id}/cancel"): Rule(BUYERS, lambda w: Req("POST", f"/api/orders/{w.order_id}/cancel")),
    ("GET", "/api/payments"): Rule(ADMINS, _get("/api/payments")),
    ("GET", "/api/payments/{payment_id}"): Rule(BUYERS, _get("/api/payments/{w.payment_id}")),
    ("POST", "/api/payments/webhooks/stripe"): Rule(PUBLIC, lambda w: Req(  # Stripe-signed, not bearer
        "POST", "/api/payments/webhooks/stripe", {"id": "evt_x", "type": "payment_intent.succeeded"})),
    ("GET", "/api/shipments"): Rule(SELLERS, _get("/api/shipments")),
    ("PUT", "/api/shipments/{shipment_id}/process"): Rule(SELLERS, lambda w: Req(
        "PUT", f"/api/shipments/{w.shipment_id}/process")),
    ("PUT", "/api/shipments/{shipment_id}/ship"): Rule(SELLERS, lambda w: Req(
        "PUT", f"/api/shipments/{w.shipment_id}/ship", {"trackingNumber": "T-1", "carrier": "UPS"})),
    # the carrier signs its webhook (tested in test_fulfillment_api.py); a bearer token must be an admin's
    ("POST", "/api/shipments/{shipment_id}/delivered"): Rule(ADMINS, lambda w: Req(
        "POST", f"/api/shipments/{w.shipment_id}/delivered")),
    ("GET", "/api/ledger/accounts/{account_id}"): Rule(SELLERS, _get("/api/ledger/accounts/{w.payable}")),
    ("GET", "/api/ledger/transactions"): Rule(ADMINS, _get("/api/ledger/transactions")),
    ("GET", "/api/admin/analytics/sales-per-minute"): Rule(ADMINS, _get("/api/admin/analytics/sales-per-minute")),
    ("GET", "/api/admin/analytics/stock-alerts"): Rule(SELLERS, _get("/api/admin/analytics/stock-alerts")),
    ("GET", "/api/analytics/{name}"): Rule(SELLERS, _get("/api/analytics/sales-by-seller")),
    ("GET", "/api/analytics/windows"): Rule(SELLERS, _get("/api/analytics/windows")),
    ("GET", "/api/analytics/windows/funnel"): Rule(ADMINS, _get("/api/analytics/windows/funnel")),
    ("GET", "/api/analytics/sellers"): Rule(ADMINS, _get("/api/analytics/sellers")),
    # the page and its assets are public: they hold no data, the page signs in with a token it sends itself
    ("GET", "/dashboard"): Rule(PUBLIC, _get("/dashboard")),
    ("GET", "/dashboard/{asset}"): Rule(PUBLIC, _get("/dashboard/dashboard.js")),
}

PROTECTED = sorted(k for k, rule in RULES.items() if rule.roles)


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside (it follows GET)."""
    from ingest_api.app import create_app

    def flat(routes):
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # FastAPI >= 0.16x keeps included routers lazily
                for ctx in route.effective_route_contexts():
                    yield ctx.path, getattr(ctx.original_route, "methods", None) or ()
            else:
                yield route.path, getattr(route, "methods", None) or ()
    return {(m, path) for path, methods in flat(create_app().routes) for m in methods if m != "HEAD"}


def test_every_route_has_a_rule():
    served = app_routes()
    assert served - set(RULES) == set(), "routes without an access rule: add them to RULES"
    assert set(RULES) - served == set(), "rules for routes that are gone"


def _error(r, status: int, code: str | None = None):
    assert r.status_code == status, (r.request.method, str(r.request.url), r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body.get("message"), str) and (code is None or body.get("error") == code), r.text[:300]


# --- 401: no token, or one that does not verify ---------------------------------------------------------------


def _token_without(settings, *dropped: str, **claims) -> str:
    now = int(time.time())
    payload = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "someone", "iat": now,
               "exp": now + 600, settings.jwt_user_id_claim: "someone", settings.jwt_role_claim: BUYER, **claims}
    for name in dropped:
        payload.pop(name, None)
    return jwt.encode(payload, _private_key(_key_path(settings)), "RS256", headers={"kid": kid(settings)})


@pytest.fixture(scope="module")
def junk_clients(stack):
    tokens = bad_tokens(stack.settings)
    tokens["no-exp"] = _token_without(stack.settings, "exp")
    tokens["no-user"] = _token_without(stack.settings, "sub", stack.settings.jwt_user_id_claim)
    tokens["not-yet-valid"] = _token_without(stack.settings, nbf=int(time.time()) + 3600)
    made = {name: Client(stack, token=t) for name, t in tokens.items()}
    made["anonymous"] = Client(stack)
    made["basic-auth"] = Client(stack)
    made["basic-auth"].http.headers["Authorization"] = "Basic dXNlcjpwYXNz"
    made["empty-bearer"] = Client(stack)
    made["empty-bearer"].http.headers["Authorization"] = "Bearer"
    yield made
    for c in made.values():
        c.http.close()


@pytest.mark.parametrize("route", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_no_valid_token_is_401(world, junk_clients, route):
    request = RULES[route].request(world)
    for name, c in junk_clients.items():
        r = request.send(c)
        assert r.status_code == 401, (name, route, r.status_code, r.text[:300])
        _error(r, 401, "unauthorized")


WRITES = [k for k in PROTECTED if k[0] != "GET"]


@pytest.mark.parametrize("route", WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_no_token_is_401_whatever_the_body(world, route):
    """Who is asking comes before what they sent: a malformed body from nobody is 401 (from the wrong role
    403), not 422."""
    method, _ = route
    path = RULES[route].request(world).path
    for body in (b"{not json", b"[]", b'{"quantity": "x"}'):
        r = world.anonymous.request(method, path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 401, (route, body, r.status_code, r.text[:200])
        for role in ROLES:
            if role not in RULES[route].roles:
                r = world.as_role(role).request(method, path, content=body,
                                                headers={"content-type": "application/json"})
                assert r.status_code == 403, (route, role, body, r.status_code, r.text[:200])


# --- 403: the wrong role, or a role nobody knows ----------------------------------------------------------------


WRONG_ROLES = [(route, role) for route in PROTECTED for role in ROLES if role not in RULES[route].roles]


@pytest.mark.parametrize("route,role", WRONG_ROLES, ids=[f"{role} {m} {p}" for (m, p), role in WRONG_ROLES])
def test_wrong_role_is_403(world, route, role):
    _error(RULES[route].request(world).send(world.as_role(role)), 403, "forbidden")


@pytest.fixture(scope="module")
def roleless(stack):
    s = stack.settings
    tokens = {"no-role": _token_without(s, s.jwt_role_claim), "unknown-role": _token_without(
        s, **{s.jwt_role_claim: "SUPERUSER"}), "lowercase-role": _token_without(s, **{s.jwt_role_claim: "admin"}),
        "role-list": _token_without(s, **{s.jwt_role_claim: [ADMIN]}), "role-null": _token_without(
        s, **{s.jwt_role_claim: None}), "carrier": _token_without(s, **{s.jwt_role_claim: "CARRIER"})}
    made = {name: Client(stack, token=t) for name, t in tokens.items()}
    yield made
    for c in made.values():
        c.http.close()


@pytest.mark.parametrize("route", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_token_without_a_known_role_is_403(world, roleless, route):
    request = RULES[route].request(world)
    for name, c in roleless.items():
        r = request.send(c)
        assert r.status_code == 403, (name, route, r.status_code, r.text[:300])
        _error(r, 403, "forbidden")


def test_public_routes_need_no_token(world):
    for route, rule in RULES.items():
        if not rule.roles:
            r = rule.request(world).send(world.anonymous)
            assert r.status_code not in (401, 403), (route, r.status_code, r.text[:300])


# --- sub for user_id ---------------------------------------------------------------------------------------------


def test_sub_names_the_caller_when_user_id_is_missing(stack):
    s = stack.settings
    sub = f"sub-only-{uuid.uuid4().hex[:8]}"
    c = Client(stack, token=_token_without(s, s.jwt_user_id_claim, sub=sub))
    try:
        r = c.post("/api/users/me", json={})
        assert r.status_code == 201 and r.json()["userId"] == sub, r.text
        assert eventually(lambda: c.get("/api/users/me").json().get("userId") == sub, what="registered as sub")
    finally:
        c.http.close()


def test_user_id_wins_over_sub(stack):
    s = stack.settings
    uid = f"uid-{uuid.uuid4().hex[:8]}"
    c = Client(stack, token=_token_without(s, sub="someone-else", **{s.jwt_user_id_claim: uid}))
    try:
        r = c.post("/api/users/me", json={})
        assert r.status_code == 201 and r.json()["userId"] == uid, r.text
    finally:
        c.http.close()


# --- 403/404: another owner's things ---------------------------------------------------------------------------

# (who reaches, the request, the answer they get); the owner (first in the pair) must get through.
OWNED: dict[str, tuple[str, str, Callable[[World], Req], tuple[int, ...]]] = {
    "product update": ("seller", "other_seller", lambda w: Req(
        "PUT", f"/api/catalog/products/{w.product_id}", {"description": "mine now"}), (403,)),
    "draft product details": ("seller", "other_seller", _get("/api/catalog/products/{w.draft_id}"), (404,)),
    "draft product details, buyer": ("seller", "buyer", _get("/api/catalog/products/{w.draft_id}"), (404,)),
    "draft product details, anonymous": ("seller", "anonymous", _get("/api/catalog/products/{w.draft_id}"), (404,)),
    "products by seller": ("seller", "other_seller", _get("/api/catalog/products/by-seller/{w.seller.user_id}"),
                           (403,)),
    "stock read": ("seller", "other_seller", _get("/api/inventory/stock/{w.product_id}"), (403,)),
    "stock set": ("seller", "other_seller", lambda w: Req(
        "PUT", "/api/inventory/stock", {"productId": w.product_id, "totalQuantity": 1000}), (403,)),
    "stock alerts": ("seller", "other_seller", _get("/api/admin/analytics/stock-alerts", sellerId="{w.seller.user_id}"), (403,)),
    "named analytics": ("seller", "other_seller", _get("/api/analytics/sales-by-seller", sellerId="{w.seller.user_id}"),
                        (403,)),
    "live windows": ("seller", "other_seller", _get("/api/analytics/windows", sellerId="{w.seller.user_id}"), (403,)),
    "payable account": ("seller", "other_seller", _get("/api/ledger/accounts/{w.payable}"), (403,)),
    "revenue account": ("admin", "seller", _get("/api/ledger/accounts/BUYIT_REVENUE"), (403,)),
    "clearing account": ("admin", "seller", _get("/api/ledger/accounts/STRIPE_CLEARING"), (403,)),
    "shipment process": ("seller", "other_seller", lambda w: Req(
        "PUT", f"/api/shipments/{w.shipment_id}/process"), (404,)),
    "shipment ship": ("seller", "other_seller", lambda w: Req(
        "PUT", f"/api/shipments/{w.shipment_id}/ship", {"trackingNumber": "T-1", "carrier": "UPS"}), (404,)),
    "cart item change": ("buyer", "other_buyer", lambda w: Req(
        "PUT", f"/api/cart/items/{w.item_id}", {"quantity": 2}), (404,)),
    "cart item removal": ("buyer", "other_buyer", lambda w: Req("DELETE", f"/api/cart/items/{w.item_id}"), (404,)),
    "order": ("buyer", "other_buyer", _get("/api/orders/{w.order_id}"), (404,)),
    "order cancel": ("buyer", "other_buyer", lambda w: Req("POST", f"/api/orders/{w.order_id}/cancel"), (404,)),
    "payment": ("buyer", "other_buyer", _get("/api/payments/{w.payment_id}"), (404,)),
    "command result": ("buyer", "other_buyer", _get("/api/commands/{w.checkout_command}"), (404,)),
}
# The owner's requests change things, so they go in an order that keeps each one meaningful.
OWNER_ORDER = ["shipment process", "shipment ship", "cart item change", "cart item removal"]


def test_other_owners_are_refused_and_owners_get_through(world):
    """Everyone else first (nothing may change), then each owner: through the access checks, whatever the
    state then says (a CONFIRMED order cannot be cancelled: 409 is past the checks)."""
    for name, (owner, other, build, refused) in OWNED.items():
        r = build(world).send(getattr(world, other))
        assert r.status_code in refused, (name, r.status_code, r.text[:300])
        _error(r, r.status_code)
    for name in sorted(OWNED, key=lambda n: OWNER_ORDER.index(n) if n in OWNER_ORDER else -1):
        owner, _, build, _ = OWNED[name]
        r = build(world).send(getattr(world, owner))
        assert r.status_code not in (401, 403, 404) and r.status_code < 500, (name, r.status_code, r.text[:300])


def test_lists_show_only_the_callers_own(world):
    r = world.other_buyer.get("/api/orders", params={"buyerId": world.buyer.user_id})
    assert r.status_code == 200 and all(o["buyerId"] == world.other_buyer.user_id for o in r.json()["items"])
    r = world.other_seller.get("/api/shipments", params={"sellerId": world.seller.user_id})
    assert r.status_code == 200 and all(s["sellerId"] == world.other_seller.user_id for s in r.json()["items"])
    r = world.other_seller.get("/api/inventory/stream", params={"sellerId": world.seller.user_id})
    _error(r, 403, "forbidden")
    r = world.other_buyer.get("/api/cart")
    assert r.status_code == 200 and r.json()["buyerId"] == world.other_buyer.user_id
    assert all(i["itemId"] != world.item_id for i in r.json()["items"])


# --- Idempotency-Key: one caller's retry, never another caller's replay ------------------------------------------


def test_idempotency_key_reused_by_another_caller_is_a_new_command(world):
    key = f"shared-{uuid.uuid4().hex[:6]}"
    mine = world.seller.post("/api/catalog/products", headers={"Idempotency-Key": key},
                             json={"sku": "IDEM", "name": "Mine", "priceCents": 5, "currency": "USD"})
    theirs = world.other_seller.post("/api/catalog/products", headers={"Idempotency-Key": key},
                                     json={"sku": "IDEM", "name": "Theirs", "priceCents": 7, "currency": "USD"})
    assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
    assert theirs.json()["sellerId"] == world.other_seller.user_id and theirs.json()["name"] == "Theirs"
    assert theirs.json()["productId"] != mine.json()["productId"]
    again = world.seller.post("/api/catalog/products", headers={"Idempotency-Key": key},
                              json={"sku": "IDEM", "name": "Mine", "priceCents": 5, "currency": "USD"})
    assert again.status_code == 201 and again.json()["productId"] == mine.json()["productId"]


def test_idempotency_key_cannot_be_forged_across_callers_by_a_colon_in_the_user_id(world, stack):
    """User ids may hold ':' (any printable text): the key's derivation must not be a plain join, or user
    "eve" with key "/api/cart/checkout:k" and user "eve:/api/cart/checkout" with key "k" are one command,
    and the second checkout answers with the first buyer's order and client secret."""
    eve = f"eve-{uuid.uuid4().hex[:6]}"
    first, second = Client(stack, eve, BUYER), Client(stack, f"{eve}:/api/cart/checkout", BUYER)
    try:
        for c in (first, second):
            assert c.post("/api/cart/items", json={"productId": world.product_id, "quantity": 1}).status_code == 201
        a = first.post("/api/cart/checkout", headers={"Idempotency-Key": "/api/cart/checkout:k"})
        assert a.status_code == 201, a.text
        b = second.post("/api/cart/checkout", headers={"Idempotency-Key": "k"})
        assert b.status_code in (201, 202), b.text
        assert b.json()["orderId"] != a.json()["orderId"]
        assert b.json().get("clientSecret") != a.json()["clientSecret"]
        order = eventually(lambda: (r := second.get(f"/api/orders/{b.json()['orderId']}")).status_code == 200
                           and r.json(), what="the second buyer's own order")
        assert order["buyerId"] == second.user_id
    finally:
        first.http.close()
        second.http.close()


def test_product_ids_of_two_sellers_never_meet_through_a_colon(stack):
    """Product ids derive from seller and SKU: seller "s" with SKU "b:c" and seller "s:b" with SKU "c" are
    two products, each its own seller's."""
    s = f"s-{uuid.uuid4().hex[:6]}"
    first, second = Client(stack, s, SELLER), Client(stack, f"{s}:b", SELLER)
    try:
        a = first.post("/api/catalog/products", json={"sku": "b:c", "name": "A", "priceCents": 1, "currency": "USD"})
        b = second.post("/api/catalog/products", json={"sku": "c", "name": "B", "priceCents": 2, "currency": "USD"})
        assert a.status_code == b.status_code == 201, (a.text, b.text)
        assert a.json()["productId"] != b.json()["productId"]
        assert b.json()["sellerId"] == second.user_id and b.json()["name"] == "B"
    finally:
        first.http.close()
        second.http.close()


# --- 422: every invalid typed field and query parameter ----------------------------------------------------------

HUGE = (2**63, 10**30, -(2**63) - 1)
NOT_INT = (1.5, "12", True, None, [], {}, "")
NOT_STR = (12, True, [], {}, 1.5)


def _ints(lo_bad) -> tuple:
    return (*lo_bad, *HUGE, *NOT_INT)


def _text(max_len: int, required: bool = True) -> tuple:
    return (*NOT_STR, "x" * (max_len + 1), "a\x00b", *(("", None) if required else ()))


def _set(values: tuple) -> tuple:
    return tuple(v for v in values if v is not None)


CURRENCY = ("usd", "US", "USDX", "", 840, None, "U$D")
STATUS = ("active", "DELETED", "", 1, None, "ACTIVE ")

# (role, method, path, a valid body, {field: invalid values})
BODIES: dict[str, tuple[str, str, Callable[[World], str], dict, dict]] = {
    "new product": (SELLER, "POST", lambda w: "/api/catalog/products",
                    {"sku": "V-1", "name": "n", "priceCents": 1, "currency": "USD"},
                    {"sku": _text(64), "name": _text(200), "description": _text(5000, False) + (None,),
                     "category": _text(100, False) + (None,), "priceCents": _ints((-1,)), "currency": CURRENCY,
                     "status": STATUS, "imagePublicIds": ("x", [""], ["i"] * 21, [1], None, {}),
                     "sellerId": ("someone",)}),
    "product changes": (SELLER, "PUT", lambda w: f"/api/catalog/products/{w.product_id}", {"name": "n"},
                        # None leaves a field unchanged here: not an invalid value
                        {"sku": _set(_text(64)), "name": _set(_text(200)), "priceCents": _set(_ints((-1,))),
                         "currency": _set(CURRENCY), "status": _set(STATUS), "productId": ("x",)}),
    "stock level": (SELLER, "PUT", lambda w: "/api/inventory/stock", {"productId": "p", "totalQuantity": 1},
                    {"productId": _text(128), "totalQuantity": _ints((-1,)),
                     "expectedVersion": (-1, *HUGE, 1.5, "1", True), "lowStockThreshold": (-1, *HUGE, 1.5, True)}),
    "cart item": (BUYER, "POST", lambda w: "/api/cart/items", {"productId": "p", "quantity": 1},
                  {"productId": _text(128), "quantity": _ints((0, -1, 10_001))}),
    "cart item change": (BUYER, "PUT", lambda w: f"/api/cart/items/{w.item_id}", {"quantity": 1},
                         {"quantity": _ints((0, -1, 10_001))}),
    "tracking": (SELLER, "PUT", lambda w: f"/api/shipments/{w.shipment_id}/ship",
                 {"trackingNumber": "T", "carrier": "UPS"},
                 {"trackingNumber": _text(100), "carrier": _text(100)}),
    "registration": (BUYER, "POST", lambda w: "/api/users/me", {"email": "a@example.com"},
                     {"email": (*NOT_STR, "x" * 321, "a\x00b", "", "not-an-email"), "accountType": (ADMIN,)}),
    "image url": (SELLER, "POST", lambda w: "/api/catalog/images/upload-url", {"url": "http://127.0.0.1:1/x"},
                  {"url": _text(2048)}),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_invalid_body_fields_are_422(world, name):
    role, method, path, valid, fields = BODIES[name]
    caller, wrong = world.as_role(role), []
    for f, values in fields.items():
        for value in values:
            body = {**valid, f: value}
            if value is None and f in valid:
                body.pop(f)  # a required field left out
            r = caller.request(method, path(world), content=json.dumps(body), headers={"content-type":
                                                                                        "application/json"})
            if r.status_code != 422 or r.json().get("error") != "invalid":
                wrong.append(f"{f}={value!r:.40}: {r.status_code} {r.text[:200]}")
    assert not wrong, f"{name}: not 422:\n" + "\n".join(wrong)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


TAMPERED_CURSORS = ("%%%", "not base64!", "AA==", "YQBi", "x" * 501, "gICA", _b64("z" * 300), "////",
                    _b64(str(uuid.uuid4())), _b64("' OR 1=1 --"), _b64("zzzz"))

# (role, path, {param: invalid values}); every list takes limit and cursor
QUERIES: dict[str, tuple[str, str, dict]] = {
    "browse": (BUYER, "/api/catalog/products/browse",
               {"minPriceCents": ("-1", str(10**30), "1.5", "x", str(2**63)), "maxPriceCents": ("-5", str(10**13)),
                "category": ("x" * 101,), "q": ("x" * 201, "a\x00b")}),
    "by seller": (SELLER, "/api/catalog/products/by-seller/{own}", {}),
    "orders": (BUYER, "/api/orders", {"status": ("pending", "NOPE", "")}),
    "payments": (ADMIN, "/api/payments", {"state": ("captured", "NOPE", "")}),
    "shipments": (SELLER, "/api/shipments", {"status": ("shipped", "NOPE", "")}),
    "transactions": (ADMIN, "/api/ledger/transactions", {"orderId": ("x" * 129,)}),
    "stock alerts": (SELLER, "/api/admin/analytics/stock-alerts", {"limit": ("0", "1001", "x")}),
    "sales": (ADMIN, "/api/admin/analytics/sales-per-minute", {"since": ("yesterday", "2024-13-45", "1e309", "6.103515625e-05", "1700000000")}),
    "ledger account": (SELLER, "/api/ledger/accounts/{payable}", {"currency": ("usd", "USDX", "")}),
    "named analytics": (ADMIN, "/api/analytics/sales-by-seller",
                        {"bucket": ("week", ""), "limit": ("0", "1001", "x"), "since": ("yesterday", "1700000000"),
                         "until": ("2024-13-45",)}),
    "live windows": (SELLER, "/api/analytics/windows", {"since": ("yesterday", "1700000000")}),
}
PAGED = {"browse", "by seller", "orders", "payments", "shipments", "transactions"}


@pytest.mark.parametrize("name", list(QUERIES))
def test_invalid_query_parameters_are_422(world, name):
    role, template, params = QUERIES[name]
    caller = world.as_role(role)
    path = template.format(own=caller.user_id, payable=f"SELLER_PAYABLE_{caller.user_id}")
    if name in PAGED:
        params = {**params, "limit": ("0", "-1", "101", str(10**30), "x", "1.5"), "cursor": TAMPERED_CURSORS}
    wrong = []
    for p, values in params.items():
        for value in values:
            r = caller.get(path, params={p: value})
            if r.status_code != 422 or r.json().get("error") != "invalid":
                wrong.append(f"{p}={value!r:.40}: {r.status_code} {r.text[:200]}")
    assert not wrong, f"{name}: not 422:\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", sorted(PAGED))
def test_a_cursor_handed_out_pages_on_and_a_tampered_one_is_422(world, name):
    """Our own cursors work on the list that made them, and only there; one byte changed is a 422."""
    role, template, _ = QUERIES[name]
    caller = world.admin if name != "by seller" else world.seller
    path = template.format(own=world.seller.user_id)
    r = caller.get(path, params={"limit": 1})
    assert r.status_code == 200, r.text
    cursor = r.json()["nextCursor"]
    if cursor is None:
        pytest.skip(f"{name}: one page only")
    assert caller.get(path, params={"limit": 1, "cursor": cursor}).status_code == 200
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    _error(caller.get(path, params={"limit": 1, "cursor": flipped}), 422, "invalid")
    elsewhere = "/api/orders" if name != "orders" else "/api/shipments"
    _error(world.admin.get(elsewhere, params={"cursor": cursor}), 422, "invalid")


# --- afterwards: nothing the API accepted was left undecided -----------------------------------------------------


def test_zz_no_dead_letters_from_the_sweep(world, stack):
    """Runs last in the module (pytest keeps file order): every record on `dead.letters` written since the
    world was built is this module's doing."""
    stack.supervisor.check_alive()
    assert world.anonymous.get("/health").status_code == 200
    dead = [d for d in read_topic(stack.settings_for_children().brokers, "dead.letters")
            if datetime.fromisoformat(d["at"]) >= world.started]
    assert dead == [], json.dumps(dead, indent=1)[:4000]
