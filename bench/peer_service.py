"""The plain peer: POST /api/cart/items as a competent user would write it without Kafka.

FastAPI, an RS256 bearer token checked with PyJWT (signature against a JWKS, `iss`, `aud`, `exp`,
the caller's role), and one Postgres transaction per request from a psycopg async pool:

    update  (default)           UPDATE inventory SET available = available - q, reserved = reserved + q
                                 WHERE product_id = p AND available >= q RETURNING available
    select_for_update           SELECT available ... FOR UPDATE, then the same UPDATE without the guard

then, if stock was taken, an upsert of the buyer's cart line. 201 with the line, 409
{"error": "insufficient_stock"} when the stock is not there. The tables carry CHECK (available >= 0).

    PEER_DATABASE_URL=... PEER_JWKS='{"keys": [...]}' PEER_JWT_ISSUER=... PEER_JWT_AUDIENCE=... \\
        python -m uvicorn bench.peer_service:app --workers 1 --loop uvloop --http httptools

Optional: PEER_USER_ID_CLAIM (user_id), PEER_ROLE_CLAIM (account_type), PEER_POOL_SIZE (4, psycopg_pool's default),
PEER_LOCKING (update | select_for_update). `bench.hot_sku` starts it, seeds it and stops it.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SCHEMA = """
CREATE TABLE IF NOT EXISTS inventory (
    product_id text PRIMARY KEY,
    total integer NOT NULL,
    available integer NOT NULL CHECK (available >= 0),
    reserved integer NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);
CREATE TABLE IF NOT EXISTS cart_items (
    buyer_id text NOT NULL,
    product_id text NOT NULL REFERENCES inventory (product_id),
    quantity integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (buyer_id, product_id)
);
"""

LOCKINGS = ("update", "select_for_update")
ROLES = ("BUYER", "ADMIN")  # who may fill a cart

TAKE_GUARDED = ("UPDATE inventory SET available = available - %s, reserved = reserved + %s "
                "WHERE product_id = %s AND available >= %s RETURNING available")
LOCK_ROW = "SELECT available FROM inventory WHERE product_id = %s FOR UPDATE"
TAKE = ("UPDATE inventory SET available = available - %s, reserved = reserved + %s "
        "WHERE product_id = %s RETURNING available")
UPSERT_LINE = ("INSERT INTO cart_items (buyer_id, product_id, quantity) VALUES (%s, %s, %s) "
               "ON CONFLICT (buyer_id, product_id) DO UPDATE SET quantity = cart_items.quantity + excluded.quantity "
               "RETURNING quantity")


@dataclass(frozen=True)
class PeerConfig:
    database_url: str
    jwks: dict
    issuer: str
    audience: str
    user_id_claim: str = "user_id"
    role_claim: str = "account_type"
    pool_size: int = 4
    locking: str = "update"

    @staticmethod
    def from_env() -> "PeerConfig":
        env = os.environ
        locking = env.get("PEER_LOCKING", "update")
        if locking not in LOCKINGS:
            raise ValueError(f"PEER_LOCKING must be one of {LOCKINGS}, not {locking!r}")
        return PeerConfig(database_url=env["PEER_DATABASE_URL"], jwks=json.loads(env["PEER_JWKS"]),
                          issuer=env["PEER_JWT_ISSUER"], audience=env["PEER_JWT_AUDIENCE"],
                          user_id_claim=env.get("PEER_USER_ID_CLAIM", "user_id"),
                          role_claim=env.get("PEER_ROLE_CLAIM", "account_type"),
                          pool_size=int(env.get("PEER_POOL_SIZE", "4")), locking=locking)


class NewCartItem(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    product_id: Annotated[str, Field(min_length=1, max_length=128)]
    quantity: Annotated[int, Field(ge=1, le=10_000)]


class Refused(Exception):
    def __init__(self, status: int, error: str, message: str):
        self.status, self.error, self.message = status, error, message


def refusal(status: int, error: str, message: str = "") -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


class Verifier:
    """Bearer token -> buyer id, or Refused (401 / 403)."""

    def __init__(self, config: PeerConfig):
        self.config = config
        self.keys = {key.key_id: key.key for key in jwt.PyJWKSet.from_dict(config.jwks).keys}

    def buyer_id(self, header: str) -> str:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "unauthorized", "a bearer token is required")
        c = self.config
        try:
            key = self.keys.get(jwt.get_unverified_header(token).get("kid"))
            if key is None:
                raise jwt.InvalidTokenError("unknown signing key")
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=c.audience, issuer=c.issuer,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as err:
            raise Refused(401, "unauthorized", f"invalid token: {err}") from err
        if claims.get(c.role_claim) not in ROLES:
            raise Refused(403, "forbidden", "only buyers fill carts")
        user_id = claims.get(c.user_id_claim) or claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise Refused(401, "unauthorized", "the token names no user")
        return user_id


async def current_buyer(request: Request) -> str:
    """Inline on the event loop: verifying RS256 takes tens of microseconds and does no I/O."""
    return request.app.state.verifier.buyer_id(request.headers.get("authorization", ""))


async def _take_stock(conn, locking: str, product_id: str, quantity: int) -> int | None:
    """Units taken from `available` into `reserved`; the new available, or None if there are not enough."""
    if locking == "select_for_update":
        row = await (await conn.execute(LOCK_ROW, (product_id,))).fetchone()
        if row is None or row[0] < quantity:
            return None
        row = await (await conn.execute(TAKE, (quantity, quantity, product_id))).fetchone()
    else:
        row = await (await conn.execute(TAKE_GUARDED, (quantity, quantity, product_id, quantity))).fetchone()
    return None if row is None else row[0]


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        config = PeerConfig.from_env()
        app.state.config = config
        app.state.verifier = Verifier(config)
        pool = AsyncConnectionPool(config.database_url, min_size=config.pool_size, max_size=config.pool_size,
                                   open=False)
        await pool.open(wait=True, timeout=30)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="plain peer", lifespan=lifespan)

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused):
        return refusal(err.status, err.error, err.message)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/api/cart/items", status_code=201)
    async def add_item(request: Request, body: NewCartItem, buyer_id: Annotated[str, Depends(current_buyer)]):
        state = request.app.state
        async with state.pool.connection() as conn, conn.transaction():
            available = await _take_stock(conn, state.config.locking, body.product_id, body.quantity)
            if available is None:
                return refusal(409, "insufficient_stock", "not enough units available")
            cur = await conn.execute(UPSERT_LINE, (buyer_id, body.product_id, body.quantity))
            line = (await cur.fetchone())[0]
        return {"buyerId": buyer_id, "productId": body.product_id, "quantity": line, "available": available}

    return app


app = create_app()
